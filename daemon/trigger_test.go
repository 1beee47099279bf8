package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

func triggerConfig(t testing.TB, dir string, key crypto.Key) *config.Config {
	return triggerConfigWith(t, dir, key, "tcp/25", 60)
}

func triggerConfigWith(t testing.TB, dir string, key crypto.Key, out string, duration int) *config.Config {
	text := fmt.Sprintf(`[daemon]
realm = test
state-dir = %s
control-socket = %s
[trigger ident]
outbound = %s
inbound = tcp/113
duration = %d
[user alice]
index = 3
key = %s
ports = tcp/8080
`, dir, filepath.Join(dir, "ctl.sock"), out, duration, key.Encode())
	c, err := config.Parse("test.conf", []byte(text), dir, 0o600, config.OS)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chanSource delivers knock and trigger packets sent on its channels.
type chanSource struct {
	knocks chan pkt
	trigs  chan sniff.Packet
	done   chan struct{}
}

func (s *chanSource) Run(ctx context.Context, fn func(*sniff.Packet)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-s.knocks:
			fn(&sniff.Packet{Kind: sniff.Knock, Src: p.src, DstPort: p.port})
		case p := <-s.trigs:
			p.Kind = sniff.Trigger
			fn(&p)
		}
		s.done <- struct{}{}
	}
}
func (s *chanSource) Stats() sniff.Stats { return sniff.Stats{} }
func (s *chanSource) Close() error       { return nil }

// TestTriggerHost: in host mode a trigger packet becomes grants of the
// knocks' backend, from the remote server to the inbound port, and the
// status listing tells them from a knock's grant.
func TestTriggerHostMode(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	src := &chanSource{knocks: make(chan pkt), trigs: make(chan sniff.Packet), done: make(chan struct{})}
	logs := &syncBuffer{}
	cfg := triggerConfig(t, dir, key)
	if p := cfg.Protect(); len(p) != 2 || p[0].From != 113 || p[1].From != 8080 {
		t.Fatalf("protected ports %+v", p)
	}
	d := runDaemon(t, Options{
		Config:  cfg,
		Capture: func(*config.Config) (sniff.Capture, error) { return src, nil },
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
	})

	host, remote := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.1.1")
	send := func(p sniff.Packet) { src.trigs <- p; <-src.done }
	send(sniff.Packet{Src: host, Dst: remote, Transport: ports.TCP, DstPort: 24}) // no trigger
	send(sniff.Packet{Src: host, Dst: remote, Transport: ports.UDP, DstPort: 25}) // wrong protocol
	send(sniff.Packet{Src: host, Dst: remote, Transport: ports.TCP, DstPort: 25})
	src.knocks <- pkt{remote, 30000} // not a knock: status must not mistake it
	<-src.done

	var g firewall.Grant
	// The worker grants, then logs, then counts: wait for the count, which
	// comes last.
	waitFor(t, "the trigger's grant", func() bool {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		g = fw.grants[grantKey{remote, ports.TCP, 113}]
		return len(fw.grants) == 1 && g.Addr == remote && d.trig.opened.Load() == 1
	})
	if g.Timeout != time.Minute || g.User != "trigger@ident" {
		t.Errorf("grant %+v", g)
	}
	ctx := context.Background()
	fw.Grant(ctx, firewall.Grant{Addr: remote, Proto: ports.TCP, Port: 8080, Timeout: time.Minute})
	d.owners.Lock()
	d.owners.m[grantKey{remote, ports.TCP, 8080}] = owner{"alice", time.Now().Add(time.Minute)}
	d.owners.Unlock()
	s := d.Status(ctx)
	who := map[uint16]string{}
	for _, g := range s.Grants {
		who[g.Port] = g.Who()
	}
	if who[113] != "trigger ident" || who[8080] != "knock alice" || s.TriggersOpened != 1 {
		t.Errorf("status %+v", s)
	}
	if !strings.Contains(logs.String(), `msg="trigger: opened" trigger=ident remote=198.18.1.1 inside=198.18.0.1 inbound=tcp/113 timeout=1m0s`) {
		t.Errorf("log:\n%s", logs)
	}
}

// TestTriggerReload: a reload puts a trigger's new duration in force, and
// keeps the old triggers, with a warning, when the capture would have to
// change (new outbound ports).
func TestTriggerReload(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	logs := &syncBuffer{}
	next := triggerConfigWith(t, dir, key, "tcp/25", 600)
	d, err := New(Options{
		Config:  triggerConfig(t, dir, key),
		Reload:  func() (*config.Config, error) { return next, nil },
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	p := &sniff.Packet{Kind: sniff.Trigger, Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.1.1"), Transport: ports.TCP, DstPort: 25}
	d.HandleTrigger(p)
	if dec := <-d.trig.work; dec.Timeout != 10*time.Minute {
		t.Errorf("after reload: %+v", dec)
	}
	next = triggerConfigWith(t, dir, key, "tcp/26", 600)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `configuration change needs a restart; keeping the old value" key="trigger outbound, inside"`) {
		t.Errorf("log:\n%s", logs)
	}
	p.Dst = netip.MustParseAddr("198.18.1.2")
	d.HandleTrigger(p)
	if len(d.trig.work) != 1 || d.Config().Triggers[0].Out.From != 25 {
		t.Errorf("old trigger not kept: %d decisions, %+v", len(d.trig.work), d.Config().Triggers[0])
	}
}

// triggerDaemon returns a daemon that is not running, a packet that has
// opened its trigger and one that fires nothing.
func triggerDaemon(tb testing.TB) (d *Daemon, fires, other *sniff.Packet) {
	key, _ := crypto.GenerateKey()
	dir := tb.TempDir()
	d, err := New(Options{Config: triggerConfig(tb, dir, key), Backend: func(*config.Config) (firewall.Backend, error) {
		return &memBackend{grants: map[grantKey]firewall.Grant{}}, nil
	}})
	if err != nil {
		tb.Fatal(err)
	}
	host, remote := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.1.1")
	fires = &sniff.Packet{Kind: sniff.Trigger, Src: host, Dst: remote, Transport: ports.TCP, DstPort: 25}
	other = &sniff.Packet{Kind: sniff.Trigger, Src: host, Dst: remote, Transport: ports.TCP, DstPort: 443}
	d.HandleTrigger(fires) // opens: the one decision is queued
	<-d.trig.work
	return d, fires, other
}

// handle runs the packet path once, taking away what it queued (a
// renewal, once per refresh time).
func handle(d *Daemon, p *sniff.Packet) {
	d.handle(p)
	select {
	case <-d.trig.work:
	default:
	}
}

// BenchmarkHandleTrigger is the per-packet path of port triggering for
// packets that fire nothing and for renewals within the refresh time,
// which is what a busy inside host sends.
func BenchmarkHandleTrigger(b *testing.B) {
	d, fires, other := triggerDaemon(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i&1 == 0 {
			handle(d, fires)
		} else {
			handle(d, other)
		}
	}
}

// TestHandleTriggerAllocs: the packet path allocates nothing.
func TestHandleTriggerAllocs(t *testing.T) {
	d, fires, other := triggerDaemon(t)
	for _, p := range []*sniff.Packet{fires, other} {
		if n := testing.AllocsPerRun(1000, func() { handle(d, p) }); n != 0 {
			t.Errorf("port %d: %v allocations per packet", p.DstPort, n)
		}
	}
}
