package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

// natDaemon runs a NAT gateway's daemon whose forwards go to the kernel's
// nftables in ns, fed by src.
func natDaemon(t *testing.T, ns *nstest.NS, cfg *config.Config, src *chanSource, logs *syncBuffer) (*Daemon, func(teardown bool)) {
	t.Helper()
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	d, err := New(Options{
		Config:  cfg,
		Capture: captureOf(src),
		Backend: func(*config.Config) (firewall.Backend, error) {
			return &memBackend{grants: map[grantKey]firewall.Grant{}}, nil
		},
		NAT: func(cfg *config.Config) (*firewall.NAT, error) {
			return firewall.NewNAT(firewall.NATOptions{Outside: cfg.TriggerOutside(), NetNS: int(h)})
		},
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(context.Background()) }()
	waitFor(t, "running", func() bool { return strings.Contains(logs.String(), "cipherknockd running") })
	stopped := false
	stop := func(teardown bool) {
		if stopped {
			return
		}
		stopped = true
		d.Stop(teardown)
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { stop(true) })
	return d, stop
}

// TestTriggerNATDaemon: on a NAT gateway a trigger packet becomes a
// forward in the kernel's NAT table, which status lists with the trigger
// and the inside host; a restarted daemon finds the forward again, and a
// remove takes the table away. The kernel's nftables are the oracle
// (nft list).
func TestTriggerNATDaemon(t *testing.T) {
	nstest.RequireTool(t, "nft")
	ns := nstest.New(t, "dnat")
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	conf := func() *config.Config {
		return configText(t, dir, key, "trigger-mode = nat\n[trigger ident]\noutbound = tcp/25\ninbound = tcp/113\nduration = 60\ninside = lo", "alice", "tcp/8080")
	}
	src := &chanSource{knocks: make(chan pkt), trigs: make(chan sniff.Packet), done: make(chan struct{})}
	logs := &syncBuffer{}
	d, stop := natDaemon(t, ns, conf(), src, logs)

	inside, remote := netip.MustParseAddr("192.168.7.5"), netip.MustParseAddr("198.51.100.25")
	src.trigs <- sniff.Packet{Src: inside, Dst: remote, Transport: ports.TCP, DstPort: 25, Ifindex: 1} // lo
	<-src.done
	var g GrantStatus
	waitFor(t, "the forward", func() bool {
		st := d.Status(context.Background())
		if len(st.Grants) != 1 || st.GrantsError != "" {
			return false
		}
		g = st.Grants[0]
		return st.TriggersOpened == 1
	})
	if g.Addr != remote || g.Proto != ports.TCP || g.Port != 113 || g.Kind != KindTrigger || g.Trigger != "ident" ||
		g.Inside != netip.AddrPortFrom(inside, 113) || g.Left <= 50*time.Second || g.Who() != "trigger ident -> 192.168.7.5:113" {
		t.Errorf("forward %+v", g)
	}
	if out := ns.Run("nft", "list", "ruleset"); !strings.Contains(out, "192.168.7.5") {
		t.Errorf("the kernel holds no forward:\n%s", out)
	}

	// A restart keeps the forward and finds it again.
	stop(false)
	logs2 := &syncBuffer{}
	d, stop = natDaemon(t, ns, conf(), src, logs2)
	if !strings.Contains(logs2.String(), `msg="trigger: forwards restored from the kernel" count=1`) {
		t.Errorf("log:\n%s", logs2)
	}
	st := d.Status(context.Background())
	if len(st.Grants) != 1 || st.Grants[0].Trigger != "ident" {
		t.Errorf("after restart: %+v", st.Grants)
	}
	// A reload learns the forwards the kernel holds, too.
	d.opts.Reload = func() (*config.Config, error) { return conf(), nil }
	if _, err := d.ReloadSummary(); err != nil {
		t.Fatal(err)
	}

	stop(true)
	if out := ns.Run("nft", "list", "ruleset"); strings.Contains(out, "192.168.7.5") {
		t.Errorf("remove left the forward:\n%s", out)
	}

	// TeardownNAT, for a remove with no daemon running, in the
	// namespace of its caller.
	if err := ns.Do(func() error { return TeardownNAT(context.Background(), conf()) }); err != nil {
		t.Errorf("TeardownNAT of a removed table: %v", err)
	}
	if err := TeardownNAT(context.Background(), testConfig(t, dir, key)); err != nil {
		t.Errorf("TeardownNAT without triggers: %v", err)
	}
}

// TestTriggerHostExpiry: a host-mode trigger's grant is forgotten, and
// its mapping logged as expired, once its time is over.
func TestTriggerHostExpiry(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	src := &chanSource{knocks: make(chan pkt), trigs: make(chan sniff.Packet), done: make(chan struct{})}
	logs := &syncBuffer{}
	d := runDaemon(t, Options{
		Config:  triggerConfigWith(t, dir, key, "tcp/25", 1),
		Capture: captureOf(src),
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
	})
	src.trigs <- sniff.Packet{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.1.1"), Transport: ports.TCP, DstPort: 25}
	<-src.done
	waitFor(t, "expiry", func() bool {
		d.trig.mu.Lock()
		defer d.trig.mu.Unlock()
		return d.trig.opened.Load() == 1 && len(d.trig.hosts) == 0 &&
			strings.Contains(logs.String(), `msg="trigger: expired" trigger=ident remote=198.18.1.1 inside=198.18.0.1 inbound=tcp/113`)
	})
}
