package daemon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
)

// Supervising the firewall objects. Others may remove them (a host's
// "nft flush ruleset", which Debian's nftables.service runs on every
// start, reload and stop; "iptables -F"; "iptables-restore"), and then
// every protected port answers anyone. The daemon listens to the kernel's
// change notifications where there are some, checks its objects every
// FirewallCheck interval as well, and when they are not as Setup made
// them, sets them up again and puts back every grant it made that has
// time left, with that time.

// supervisor serialises repairs: a notification, the periodic check and a
// refused grant may all ask for one at once.
type supervisor struct {
	mu      sync.Mutex
	kick    chan struct{}
	repairs atomic.Uint64
}

func (d *Daemon) kickRepair() {
	select {
	case d.sup.kick <- struct{}{}:
	default:
	}
}

// supervise runs until ctx is done.
func (d *Daemon) supervise(ctx context.Context) {
	var watchStop context.CancelFunc = func() {}
	var watched firewall.Backend
	watch := func() {
		fw := d.backend()
		if fw == watched {
			return
		}
		watchStop()
		watched = fw
		sv, ok := fw.(firewall.Supervised)
		if !ok {
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		watchStop = cancel
		go func() {
			err := sv.Watch(wctx, d.kickRepair)
			switch {
			case err == nil, wctx.Err() != nil:
			case errors.Is(err, firewall.ErrNoNotifications):
				d.log.Info("firewall sends no change notifications; checking its objects periodically", "firewall", fw.Name(), "interval", d.Config().FirewallCheck)
			default:
				d.log.Warn("firewall change notifications unavailable; checking its objects periodically", "firewall", fw.Name(), "err", err, "interval", d.Config().FirewallCheck)
			}
		}()
	}
	defer func() { watchStop() }()
	watch()
	t := time.NewTicker(d.Config().FirewallCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.sup.kick:
		case <-t.C:
		}
		watch() // the backend may have changed at a reload
		d.repair(ctx, time.Now())
	}
}

// repair checks the firewall objects and restores them if they are not
// as they should be. It reports whether it had to.
func (d *Daemon) repair(ctx context.Context, noticed time.Time) bool {
	d.sup.mu.Lock()
	defer d.sup.mu.Unlock()
	fw := d.backend()
	sv, ok := fw.(firewall.Supervised)
	if !ok || d.life.teardown.Load() {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	verr := sv.Verify(cctx)
	if verr == nil {
		return false
	}
	if err := fw.Setup(cctx); err != nil {
		d.log.Error("firewall objects were changed by someone else and cannot be restored", "firewall", fw.Name(), "what", verr.Error(), "err", err)
		return false
	}
	n := d.restoreGrants(cctx, fw)
	took := time.Since(noticed)
	d.sup.repairs.Add(1)
	d.log.Warn("firewall objects were changed by someone else; restored", "firewall", fw.Name(), "what", verr.Error(), "grants", n, "took", took.Round(time.Microsecond))
	return true
}

// restoreGrants grants again, with their time left, the grants this
// daemon made (knocks, host-mode triggers) that the kernel no longer
// holds. A NAT gateway's forwards live in a table of their own, which is
// not supervised.
func (d *Daemon) restoreGrants(ctx context.Context, fw firewall.Backend) int {
	have := map[grantKey]bool{}
	if gs, err := fw.List(ctx); err == nil {
		for _, g := range gs {
			have[grantKey{g.Addr.Unmap(), g.Proto, g.Port}] = true
		}
	}
	now := time.Now()
	d.owners.Lock()
	var todo []firewall.Grant
	for k, o := range d.owners.m {
		left := o.expires.Sub(now)
		if left < time.Second || have[k] {
			continue
		}
		todo = append(todo, firewall.Grant{Addr: k.addr, Proto: k.proto, Port: k.port, Timeout: left.Truncate(time.Millisecond), User: o.user})
	}
	d.owners.Unlock()
	if t := d.trig; t != nil && t.nat == nil {
		// Host-mode triggers' grants go through the same backend.
		t.mu.Lock()
		for k, h := range t.hosts {
			left := h.expires.Sub(now)
			if left < time.Second || have[k] {
				continue
			}
			todo = append(todo, firewall.Grant{Addr: k.addr, Proto: k.proto, Port: k.port, Timeout: left.Truncate(time.Millisecond), User: config.TriggerGrantUser(h.rule)})
		}
		t.mu.Unlock()
	}
	n := 0
	for _, g := range todo {
		if err := fw.Grant(ctx, g); err != nil {
			d.log.Error("grant not restored", "user", g.User, "addr", g.Addr, "proto", g.Proto.String(), "port", g.Port, "err", err)
			continue
		}
		n++
	}
	return n
}
