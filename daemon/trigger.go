package daemon

// Port triggering in the daemon (package trigger): the capture hands
// connection attempts to trigger ports to HandleTrigger, which asks the
// engine and queues its decisions; a worker of their own carries them
// out, never the packet path. On a NAT gateway (trigger-mode = nat) a
// decision becomes forwards in firewall.NAT; on a host it becomes grants
// of the same backend as the knocks. Both expire in the kernel.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/sniff"
	"github.com/cipherknock/cipherknock/trigger"
)

// triggerQueue is how many decisions may wait for the trigger worker.
const triggerQueue = 256

// expireInterval is how often mappings that ended are forgotten and
// logged, and the inside interfaces looked up again.
const expireInterval = time.Second

// triggers is the daemon's port-triggering state; nil without triggers.
type triggers struct {
	nat    *firewall.NAT // trigger-mode = nat; nil on a host
	engine atomic.Pointer[trigger.Engine]
	work   chan trigger.Decision
	ds     []trigger.Decision // the packet path's scratch
	pkt    trigger.Packet     // the packet path's scratch
	busy   atomic.Uint64      // decisions dropped because the queue was full
	opened atomic.Uint64

	mu    sync.Mutex
	hosts map[grantKey]hostGrant // host mode: who made each grant
	wg    sync.WaitGroup
}

type hostGrant struct {
	rule    string
	expires time.Time
}

func newEngine(cfg *config.Config) (*trigger.Engine, error) {
	return trigger.NewEngine(cfg.Triggers, trigger.Options{
		NAT:         cfg.TriggerMode == config.TriggerNAT,
		MaxMappings: cfg.TriggerMaxMappings,
	})
}

// newTriggers prepares port triggering for cfg, changing nothing in the
// kernel. It returns nil when cfg has no triggers.
func newTriggers(opts Options, cfg *config.Config) (*triggers, error) {
	if len(cfg.Triggers) == 0 {
		return nil, nil
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	t := &triggers{work: make(chan trigger.Decision, triggerQueue), hosts: map[grantKey]hostGrant{}, ds: make([]trigger.Decision, 0, 8)}
	t.engine.Store(e)
	if cfg.TriggerMode == config.TriggerNAT {
		newNAT := opts.NAT
		if newNAT == nil {
			newNAT = NewNAT
		}
		if t.nat, err = newNAT(cfg); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// NewNAT returns the NAT forwarder for cfg's triggers.
func NewNAT(cfg *config.Config) (*firewall.NAT, error) {
	return firewall.NewNAT(firewall.NATOptions{Outside: cfg.TriggerOutside()})
}

// setupTriggers creates the NAT table (keeping its forwards) and tells the
// engine about the forwards the kernel holds.
func (d *Daemon) setupTriggers(ctx context.Context) error {
	t := d.trig
	if t == nil || t.nat == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.nat.Setup(sctx); err != nil {
		return fmt.Errorf("trigger: %w", err) // "nat: setup: ..."
	}
	return d.restoreTriggers(sctx, t.engine.Load())
}

func (d *Daemon) restoreTriggers(ctx context.Context, e *trigger.Engine) error {
	fs, err := d.trig.nat.List(ctx)
	if err != nil {
		return fmt.Errorf("trigger nat: %w", err)
	}
	skipped := e.Restore(fs, time.Now())
	if len(skipped) > 0 {
		d.log.Warn("trigger: forwards no trigger accounts for are left to expire", "count", len(skipped))
	}
	if n := len(fs) - len(skipped); n > 0 {
		d.log.Info("trigger: forwards restored from the kernel", "count", n)
	}
	return nil
}

// startTriggers starts the trigger worker and the expiry ticker; the
// returned function stops them once the capture has stopped.
func (d *Daemon) startTriggers(ctx context.Context) func() {
	t := d.trig
	if t == nil {
		return func() {}
	}
	t.wg.Add(2)
	go func() { defer t.wg.Done(); d.triggerWorker() }()
	go func() { defer t.wg.Done(); d.expireTriggers(ctx) }()
	cfg := d.Config()
	d.log.Info("port triggering", "mode", cfg.TriggerMode, "triggers", len(cfg.Triggers))
	return func() {
		close(t.work)
		t.wg.Wait()
	}
}

// HandleTrigger is the per-packet path of port triggering: it asks the
// engine what the capture's trigger packet p opens and queues the
// decisions for the trigger worker. It is called from the capture
// goroutine only.
func (d *Daemon) HandleTrigger(p *sniff.Packet) {
	t := d.trig
	if t == nil {
		return
	}
	t.pkt = trigger.Packet{Inside: p.Src, Remote: p.Dst, Proto: p.Transport, DstPort: p.DstPort, Ifindex: p.Ifindex}
	t.ds = t.engine.Load().Observe(&t.pkt, time.Now(), t.ds[:0])
	for _, dec := range t.ds {
		select {
		case t.work <- dec:
		default:
			t.busy.Add(1)
		}
	}
}

// triggerWorker carries decisions out, one at a time, until the queue is
// closed.
func (d *Daemon) triggerWorker() {
	t := d.trig
	for dec := range t.work {
		e := t.engine.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if t.nat != nil {
			err = trigger.ApplyNAT(ctx, t.nat, e, d.log, dec)
		} else {
			err = d.applyHost(ctx, e, dec)
		}
		cancel()
		if err == nil && dec.Action == trigger.Open && !dec.Renewed {
			t.opened.Add(1)
		}
	}
}

// applyHost carries a decision out on a host: one grant per inbound
// port, from the remote server, through the knocks' backend.
func (d *Daemon) applyHost(ctx context.Context, e *trigger.Engine, dec trigger.Decision) error {
	t := d.trig
	if dec.Action == trigger.Open {
		fw := d.backend()
		for _, g := range dec.Grants() {
			g.User = config.TriggerGrantUser(dec.Rule.Name)
			if err := fw.Grant(ctx, g); err != nil {
				e.Cancel(dec)
				d.log.Error("trigger: grant failed", "trigger", dec.Rule.Name, "remote", dec.Remote,
					"inside", dec.Inside, "proto", g.Proto.String(), "port", g.Port, "err", err)
				return err
			}
			t.mu.Lock()
			t.hosts[grantKey{g.Addr.Unmap(), g.Proto, g.Port}] = hostGrant{dec.Rule.Name, time.Now().Add(g.Timeout)}
			t.mu.Unlock()
		}
	}
	dec.Log(d.log)
	return nil
}

// expireTriggers forgets the mappings the kernel has closed, logging
// each, until ctx is done.
func (d *Daemon) expireTriggers(ctx context.Context) {
	t := d.trig
	tick := time.NewTicker(expireInterval)
	defer tick.Stop()
	var ms []trigger.Mapping
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			e := t.engine.Load()
			ms = e.Expire(now, ms[:0])
			for _, m := range ms {
				d.log.Info("trigger: expired", "trigger", m.Rule.Name, "remote", m.Remote, "inside", m.Inside,
					"inbound", m.In.String())
			}
			t.mu.Lock()
			for k, h := range t.hosts {
				if now.After(h.expires) {
					delete(t.hosts, k)
				}
			}
			t.mu.Unlock()
			if n%10 == 0 {
				e.Resolve() // inside interfaces that came or went
			}
		}
	}
}

// reloadTriggers builds the engine for a new configuration, keeping
// what needs a restart, and returns the function that puts it in force
// once the rest of the reload has succeeded. On a NAT gateway the new
// engine learns the forwards in the kernel.
func (d *Daemon) reloadTriggers(cfg, old *config.Config) (commit func(), err error) {
	t := d.trig
	keep := func(name string, changed bool) {
		if changed {
			d.log.Warn("configuration change needs a restart; keeping the old value", "key", name)
		}
	}
	if t == nil {
		keep("trigger", len(cfg.Triggers) > 0)
		cfg.Triggers = nil
		return func() {}, nil
	}
	if len(cfg.Triggers) == 0 || !sameCapture(cfg, old) {
		// The capture was set up for the old outbound ports and inside
		// interfaces.
		keep("trigger outbound, inside", true)
		cfg.Triggers = old.Triggers
	}
	if t.nat != nil && !slices.Equal(cfg.TriggerOutside(), old.TriggerOutside()) {
		keep("outside", true) // the NAT table's chains were set up for them
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	if t.nat != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.restoreTriggers(ctx, e); err != nil {
			return nil, err
		}
	}
	return func() { t.engine.Store(e) }, nil
}

// sameCapture reports whether two configurations' triggers capture the
// same packets.
func sameCapture(a, b *config.Config) bool {
	if len(a.Triggers) != len(b.Triggers) {
		return false
	}
	for i, r := range a.Triggers {
		o := b.Triggers[i]
		if r.Out != o.Out || !slices.Equal(r.Inside, o.Inside) {
			return false
		}
	}
	return true
}

// teardownTriggers removes the NAT table (on stop with teardown).
func (d *Daemon) teardownTriggers(ctx context.Context) error {
	if d.trig == nil || d.trig.nat == nil {
		return nil
	}
	if err := d.trig.nat.Teardown(ctx); err != nil {
		return fmt.Errorf("trigger nat: %w", err)
	}
	return nil
}

func (d *Daemon) closeTriggers() {
	if d.trig != nil && d.trig.nat != nil {
		d.trig.nat.Close()
	}
}

// TeardownNAT removes the NAT table of cfg's triggers, for a stop while
// no daemon runs. Without a NAT gateway's triggers it does nothing.
func TeardownNAT(ctx context.Context, cfg *config.Config) error {
	if cfg.TriggerMode != config.TriggerNAT || len(cfg.Triggers) == 0 {
		return nil
	}
	n, err := NewNAT(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Teardown(ctx)
}

// triggerStatus marks the grants triggers made, and adds the NAT
// gateway's forwards. The error is the NAT table's, if it cannot be
// listed.
func (d *Daemon) triggerStatus(ctx context.Context, s *Status) error {
	for i := range s.Grants {
		if s.Grants[i].User != "" {
			s.Grants[i].Kind = KindKnock
		}
	}
	t := d.trig
	if t == nil {
		return nil
	}
	s.TriggersOpened = t.opened.Load()
	s.TriggersBusy = t.busy.Load()
	if t.nat == nil {
		now := time.Now()
		t.mu.Lock()
		for i := range s.Grants {
			g := &s.Grants[i]
			if h, ok := t.hosts[grantKey{g.Addr.Unmap(), g.Proto, g.Port}]; ok && (g.User == "" || h.expires.After(now)) {
				g.Kind, g.Trigger, g.User = KindTrigger, h.rule, ""
			}
		}
		t.mu.Unlock()
		return nil
	}
	fs, err := t.nat.List(ctx)
	if err != nil {
		return fmt.Errorf("trigger nat: %w", err)
	}
	ms := t.engine.Load().Mappings(time.Now(), nil)
	for _, f := range fs {
		g := GrantStatus{Addr: f.Remote, Proto: f.Proto, Port: f.Port, Left: f.Timeout, Kind: KindTrigger, Inside: f.To}
		for _, m := range ms {
			if m.Remote == f.Remote.Unmap() && m.In.Proto == f.Proto && m.In.From <= f.Port && f.Port <= m.In.To && m.Inside == f.To.Addr().Unmap() {
				g.Trigger = m.Rule.Name
				break
			}
		}
		s.Grants = append(s.Grants, g)
	}
	return nil
}
