package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
)

// RevokeFilter selects grants to close: by address (and optionally
// protocol/port), or by the user who made them.
type RevokeFilter struct {
	Addr  netip.Addr
	Proto ports.Proto
	Port  uint16 // 0: every port of Addr
	User  string
}

// ParseRevoke reads the control socket's revoke arguments: "ADDRESS
// [PROTO/PORT]" or "--user NAME".
func ParseRevoke(args []string) (RevokeFilter, error) {
	var f RevokeFilter
	switch {
	case len(args) == 2 && args[0] == "--user":
		f.User = args[1]
		return f, nil
	case len(args) == 1 || len(args) == 2:
		a, err := netip.ParseAddr(args[0])
		if err != nil || a.Zone() != "" {
			return f, fmt.Errorf("revoke: %q is not an IP address", args[0])
		}
		f.Addr = a.Unmap()
		if len(args) == 2 {
			r, err := ports.ParseRange(args[1])
			if err != nil || r.From != r.To {
				return f, fmt.Errorf("revoke: %q is not PROTO/PORT", args[1])
			}
			f.Proto, f.Port = r.Proto, r.From
		}
		return f, nil
	}
	return f, errors.New("revoke: give ADDRESS [PROTO/PORT] or --user NAME")
}

func (f RevokeFilter) match(g firewall.Grant, user string) bool {
	if f.User != "" {
		return user == f.User
	}
	return g.Addr.Unmap() == f.Addr && (f.Port == 0 || g.Proto == f.Proto && g.Port == f.Port)
}

// Revoke closes every open grant the filter selects, at once, and
// returns them. A grant by user is known only if this daemon made it.
func (d *Daemon) Revoke(ctx context.Context, f RevokeFilter, why string) ([]firewall.Grant, error) {
	fw := d.backend()
	gs, err := fw.List(ctx)
	if err != nil {
		return nil, err
	}
	d.owners.Lock()
	var todo []firewall.Grant
	for _, g := range gs {
		k := grantKey{g.Addr.Unmap(), g.Proto, g.Port}
		if f.match(g, d.owners.m[k].user) {
			g.User = d.owners.m[k].user
			todo = append(todo, g)
		}
	}
	d.owners.Unlock()
	var done []firewall.Grant
	var errs []error
	for _, g := range todo {
		if err := fw.Revoke(ctx, g); err != nil {
			errs = append(errs, err)
			continue
		}
		d.owners.Lock()
		delete(d.owners.m, grantKey{g.Addr.Unmap(), g.Proto, g.Port})
		d.owners.Unlock()
		d.log.Info("grant revoked", "why", why, "user", g.User, "addr", g.Addr, "proto", g.Proto.String(), "port", g.Port, "left", g.Timeout.Round(time.Second))
		done = append(done, g)
	}
	return done, errors.Join(errs...)
}

// revokeOrphans closes the grants of users the new configuration no
// longer has, and of ports their user may no longer open.
func (d *Daemon) revokeOrphans(ctx context.Context, cfg *config.Config) []firewall.Grant {
	users := map[string]*policy.User{}
	for _, u := range cfg.Users {
		users[u.Name] = u
	}
	d.owners.Lock()
	var todo []firewall.Grant
	for k, o := range d.owners.m {
		u, ok := users[o.user]
		if ok && slices.ContainsFunc(u.Ports, func(r ports.Range) bool {
			return r.Proto == k.proto && r.From <= k.port && k.port <= r.To
		}) {
			continue
		}
		todo = append(todo, firewall.Grant{Addr: k.addr, Proto: k.proto, Port: k.port, User: o.user})
	}
	d.owners.Unlock()
	var done []firewall.Grant
	for _, g := range todo {
		why := "user removed"
		if users[g.User] != nil {
			why = "port no longer allowed"
		}
		gs, err := d.Revoke(ctx, RevokeFilter{Addr: g.Addr, Proto: g.Proto, Port: g.Port}, why+" at reload")
		if err != nil {
			d.log.Error("grant not revoked at reload", "user", g.User, "addr", g.Addr, "err", err)
		}
		done = append(done, gs...)
	}
	return done
}

func grantList(gs []firewall.Grant) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = fmt.Sprintf("%s %s/%d", g.Addr, g.Proto, g.Port)
		if g.User != "" {
			s[i] += " (" + g.User + ")"
		}
	}
	return strings.Join(s, ", ")
}

// protectList is what the daemon's firewall keeps closed, in words.
func protectList(cfg *config.Config) string {
	var s []string
	for _, r := range cfg.Protect() {
		s = append(s, r.String())
	}
	s = append(s, fmt.Sprintf("the knock span %d-%d (tcp and udp)", cfg.Span.Base, cfg.Span.Last()))
	return strings.Join(s, ", ")
}

// stopSummary says what a stop leaves in the kernel.
func (d *Daemon) stopSummary(ctx context.Context, teardown bool) string {
	cfg := d.Config()
	if teardown {
		return RemoveSummary(cfg)
	}
	n := 0
	var longest time.Duration
	if gs, err := d.backend().List(ctx); err == nil {
		n = len(gs)
		for _, g := range gs {
			longest = max(longest, g.Timeout)
		}
	}
	s := "the drops stay in the kernel: " + protectList(cfg) + " stay closed"
	if n > 0 {
		s += fmt.Sprintf("; %d grants left to expire in the kernel (the last in %v)", n, longest.Round(time.Second))
	}
	return s + "; `cipherknockd remove` takes the firewall objects away"
}

// RemoveSummary says which ports removing the firewall objects of cfg
// makes reachable.
func RemoveSummary(cfg *config.Config) string {
	return "firewall objects removed: " + protectList(cfg) + " are now reachable from anyone unless the host's own firewall drops them"
}
