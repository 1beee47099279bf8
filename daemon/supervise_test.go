package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
)

// supBackend is a memory backend whose objects someone else can remove
// (flush), as a host's "nft flush ruleset" does; it tells a watcher.
type supBackend struct {
	*memBackend
	broken  atomic.Bool
	notify  bool // Watch hears of changes; else ErrNoNotifications
	mu      sync.Mutex
	changed func()
}

func (b *supBackend) Setup(ctx context.Context) error {
	if err := b.memBackend.Setup(ctx); err != nil {
		return err
	}
	b.broken.Store(false)
	return nil
}

func (b *supBackend) Grant(ctx context.Context, g firewall.Grant) error {
	if b.broken.Load() {
		return errors.New("nftables: grant: no such table")
	}
	return b.memBackend.Grant(ctx, g)
}

func (b *supBackend) Verify(context.Context) error {
	if b.broken.Load() {
		return errors.New("table inet cipherknock is missing")
	}
	return nil
}

func (b *supBackend) Watch(ctx context.Context, changed func()) error {
	if !b.notify {
		return firewall.ErrNoNotifications
	}
	b.mu.Lock()
	b.changed = changed
	b.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (b *supBackend) Protected() (bool, string) { return false, "the memory backend has no owner flag" }

// flush removes the objects and every grant, and tells the watcher.
func (b *supBackend) flush() {
	b.broken.Store(true)
	b.memBackend.mu.Lock()
	clear(b.memBackend.grants)
	b.memBackend.mu.Unlock()
	b.mu.Lock()
	changed := b.changed
	b.mu.Unlock()
	if changed != nil {
		changed()
	}
}

func (b *supBackend) watching() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed != nil
}

// TestRepairAfterFlush: when the firewall's objects are flushed, the
// daemon hears of it, sets them up again and puts back its grants with
// the time they had left; status counts the repair.
func TestRepairAfterFlush(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &supBackend{memBackend: &memBackend{grants: map[grantKey]firewall.Grant{}}, notify: true}
	dir := t.TempDir()
	h := startWith(t, dir, key, fw)
	h.send(client, seal(t, "test", key, 3, openKnock(8080, 30)))
	waitFor(t, "grant", func() bool { _, ok := fw.get(client, ports.TCP, 8080); return ok })
	waitFor(t, "watch", fw.watching)
	fw.flush()
	waitFor(t, "repair", func() bool { return h.d.sup.repairs.Load() == 1 })
	g, ok := fw.get(client, ports.TCP, 8080)
	if !ok || g.Timeout > 30*time.Second || g.Timeout < 25*time.Second || g.User != "alice" {
		t.Errorf("restored grant %+v (%v)", g, ok)
	}
	st := h.d.Status(context.Background())
	if st.FirewallRepairs != 1 || st.FirewallOwned || st.FirewallNote != "the memory backend has no owner flag" {
		t.Errorf("status %+v", st)
	}
	waitFor(t, "log", func() bool {
		return strings.Contains(h.logs.String(), `msg="firewall objects were changed by someone else; restored" firewall=memory what="table inet cipherknock is missing" grants=1`)
	})

	// A grant refused because the objects are gone: repaired, granted.
	fw.broken.Store(true)
	h.send(client, seal(t, "test", key, 3, crypto.Knock{Action: crypto.ActionOpen, Proto: ports.UDP, Port: 5001, Duration: 10}))
	waitFor(t, "grant after repair", func() bool { _, ok := fw.get(client, ports.UDP, 5001); return ok })
	if n := h.d.sup.repairs.Load(); n != 2 {
		t.Errorf("%d repairs", n)
	}

	// Objects that cannot be set up again: said, not counted.
	fw.memBackend.mu.Lock()
	fw.setupErr = errors.New("nftables: setup: operation not permitted")
	fw.memBackend.mu.Unlock()
	fw.flush()
	waitFor(t, "log", func() bool {
		return strings.Contains(h.logs.String(), `msg="firewall objects were changed by someone else and cannot be restored" firewall=memory what="table inet cipherknock is missing" err="nftables: setup: operation not permitted"`)
	})
	if n := h.d.sup.repairs.Load(); n != 2 {
		t.Errorf("%d repairs", n)
	}
}

// TestRepairPeriodic: a backend that sends no notifications is checked
// every firewall-check-interval, and says so once.
func TestRepairPeriodic(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &supBackend{memBackend: &memBackend{grants: map[grantKey]firewall.Grant{}}}
	dir := t.TempDir()
	h := startWith(t, dir, key, fw, "firewall-check-interval = 1")
	waitFor(t, "log", func() bool {
		return strings.Contains(h.logs.String(), `msg="firewall sends no change notifications; checking its objects periodically" firewall=memory interval=1s`)
	})
	fw.flush()
	waitFor(t, "repair", func() bool { return h.d.sup.repairs.Load() == 1 })
}

// TestStopNoRepair: once a remove has begun, nothing is repaired: a
// repair would put back what the teardown takes away.
func TestStopNoRepair(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &supBackend{memBackend: &memBackend{grants: map[grantKey]firewall.Grant{}}}
	d, err := New(Options{
		Config:  testConfig(t, t.TempDir(), key),
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	fw.broken.Store(true)
	d.Stop(true)
	if d.repair(context.Background(), time.Now()) || fw.setups != 0 {
		t.Error("repaired while tearing down")
	}
}

// TestReloadRevokesOrphans: a reload revokes the grants of a user it
// removed and of ports their user may no longer open, keeps the others,
// and says which.
func TestReloadRevokesOrphans(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	dir := t.TempDir()
	h := start(t, dir, key, fw)
	h.send(client, seal(t, "test", key, 3, openKnock(8080, 30)))
	h.send(client, seal(t, "test", key, 3, crypto.Knock{Action: crypto.ActionOpen, Proto: ports.UDP, Port: 5005, Duration: 40}))
	waitFor(t, "grants", func() bool { return h.d.counters.accepted.Load() == 2 })

	next := configText(t, dir, key, "", "alice", "tcp/8080")
	h.d.opts.Reload = func() (*config.Config, error) { return next, nil }
	msg, err := h.d.ReloadSummary()
	if err != nil {
		t.Fatal(err)
	}
	if want := "configuration reloaded: 1 grants revoked: 198.18.1.2 udp/5005 (alice); protected ports now tcp/8080, the knock span 20480-30719 (tcp and udp)"; msg != want {
		t.Errorf("got  %s\nwant %s", msg, want)
	}
	if _, ok := fw.get(client, ports.TCP, 8080); !ok {
		t.Error("tcp/8080 revoked")
	}
	next = configText(t, dir, key, "", "bob", "tcp/8080")
	msg, err = h.d.ReloadSummary()
	if err != nil {
		t.Fatal(err)
	}
	if want := "configuration reloaded: users added: bob; users removed: alice; 1 grants revoked: 198.18.1.2 tcp/8080 (alice)"; msg != want {
		t.Errorf("got  %s\nwant %s", msg, want)
	}
	if !strings.Contains(h.logs.String(), `msg="grant revoked" why="user removed at reload" user=alice`) ||
		!strings.Contains(h.logs.String(), `msg="grant revoked" why="port no longer allowed at reload" user=alice`) {
		t.Errorf("log:\n%s", h.logs)
	}
	if n := len(h.d.Status(context.Background()).Grants); n != 0 {
		t.Errorf("%d grants left", n)
	}

	// A revoke the backend refuses is logged; the reload goes on. (Index
	// 3 is bob's now.)
	h.send(client, seal(t, "test", key, 3, openKnock(8080, 30)))
	waitFor(t, "tcp/8080", func() bool { return h.d.counters.accepted.Load() == 3 })
	h.d.opts.Reload = func() (*config.Config, error) { return configText(t, dir, key, "", "carol", "tcp/8080"), nil }
	fw.mu.Lock()
	fw.revokeErr = errors.New("revoke refused")
	fw.mu.Unlock()
	if _, err := h.d.ReloadSummary(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.logs.String(), `msg="grant not revoked at reload" user=bob addr=198.18.1.2 err="revoke refused"`) {
		t.Errorf("log:\n%s", h.logs)
	}
}

// TestReloadNewBackend: a reload that changes the protected ports sets a
// new backend up and puts it in force; one whose setup fails leaves the
// old one in force, and so does one that cannot be made.
func TestReloadNewBackend(t *testing.T) {
	key, _ := crypto.GenerateKey()
	dir := t.TempDir()
	var made []*memBackend
	var makeErr error
	backend := func(*config.Config) (firewall.Backend, error) {
		if makeErr != nil {
			return nil, makeErr
		}
		b := &memBackend{grants: map[grantKey]firewall.Grant{}}
		if len(made) == 1 {
			b.setupErr = errors.New("nftables: setup: no memory")
		}
		made = append(made, b)
		return b, nil
	}
	cfg := testConfig(t, dir, key)
	d, err := New(Options{Config: cfg, Backend: backend, Log: slog.New(slog.DiscardHandler),
		Reload: func() (*config.Config, error) { return configText(t, dir, key, "", "alice", "tcp/22"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReloadSummary(); err == nil || err.Error() != "nftables: setup: no memory" {
		t.Fatalf("reload with a failing setup: %v", err)
	}
	if d.backend() != made[0] || d.Config() != cfg {
		t.Error("a failed reload changed the backend or the configuration")
	}
	msg, err := d.ReloadSummary()
	if err != nil || d.backend() != made[2] || made[2].setups != 1 || !strings.Contains(msg, "protected ports now tcp/22, the knock span") {
		t.Errorf("reload: %v %q, backend %p of %v", err, msg, d.backend(), made)
	}
	makeErr = errors.New("firewall: unknown backend")
	d.opts.Reload = func() (*config.Config, error) { return configText(t, dir, key, "", "alice", "tcp/23"), nil }
	if _, err := d.ReloadSummary(); err != makeErr {
		t.Errorf("reload: %v", err)
	}
	d.opts.Reload = func() (*config.Config, error) { return nil, errors.New("d.conf:3: bad line") }
	if _, err := d.ReloadSummary(); err == nil || err.Error() != "d.conf:3: bad line" {
		t.Errorf("reload: %v", err)
	}
	d.opts.Reload = nil
	if err := d.Reload(); err == nil || err.Error() != "this daemon cannot reload its configuration" {
		t.Errorf("reload: %v", err)
	}
}

// TestLockFirewall: a second daemon cannot take the lock of the same
// objects, and is told who holds it; a released lock can be taken.
func TestLockFirewall(t *testing.T) {
	old := LockDir
	LockDir = filepath.Join(t.TempDir(), "run")
	defer func() { LockDir = old }()
	l, err := LockFirewall("cipherknock", "d.conf")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("d.conf")
	_, err = LockFirewall("cipherknock", "other.conf")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another cipherknockd (pid %d, config %s) owns the firewall objects \"cipherknock\"", os.Getpid(), abs)) {
		t.Errorf("second lock: %v", err)
	}
	other, err := LockFirewall("other", "d.conf")
	if err != nil {
		t.Errorf("a lock for other objects: %v", err)
	}
	other.Release()
	l.Release()
	l.Release() // twice does nothing
	l, err = LockFirewall("cipherknock", "d.conf")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.Release()
	file := filepath.Join(t.TempDir(), "x")
	os.WriteFile(file, nil, 0o600)
	LockDir = filepath.Join(file, "sub")
	if _, err := LockFirewall("cipherknock", "d.conf"); err == nil || !strings.HasPrefix(err.Error(), "firewall lock: ") {
		t.Errorf("lock under a file: %v", err)
	}
}
