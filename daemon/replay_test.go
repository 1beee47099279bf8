package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
)

// TestPolicyRefusedNotReplayable: the replay ID is recorded before the
// policy decides (SPEC.md §7.2), so a knock refused for its source, or for
// the address it names, cannot be replayed from an address the policy
// accepts. (The daemon used to record only knocks the policy accepted.)
func TestPolicyRefusedNotReplayable(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	outside := netip.MustParseAddr("10.9.9.9") // outside sources = 198.18.0.0/16
	replayer := netip.MustParseAddr("198.18.7.7")

	// Refused for its source, replayed from an allowed one.
	pkts := seal(t, "test", key, 3, openKnock(8080, 30))
	h.send(outside, pkts)
	h.send(replayer, pkts)
	waitFor(t, "classes", func() bool {
		st := h.d.Status(context.Background())
		return st.Rejected[policy.ErrSource.Error()] == 1 && st.Rejected["replay"] == 1
	})

	// Refused for the address it names (not its source), replayed from
	// that address.
	k := openKnock(8080, 30)
	k.Mode, k.Addr = crypto.ModeIPv4, replayer
	pkts = seal(t, "test", key, 3, k)
	h.send(client, pkts)
	h.send(replayer, pkts)
	waitFor(t, "classes", func() bool {
		st := h.d.Status(context.Background())
		return st.Rejected[policy.ErrAddress.Error()] == 1 && st.Rejected["replay"] == 2
	})
	if _, ok := fw.get(replayer, ports.TCP, 8080); ok {
		t.Fatal("a knock refused by policy was granted to its replayer")
	}
}

// TestBoundRacer: a bound-mode knock raced from another address fails as
// a bad tag and records nothing, so the real knock that arrives after it
// still opens.
func TestBoundRacer(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	racer := netip.MustParseAddr("198.18.7.7")
	k := openKnock(8080, 30)
	k.Mode, k.Addr = crypto.ModeBound, client
	pkts := seal(t, "test", key, 3, k)
	h.send(racer, pkts)
	h.send(client, pkts)
	waitFor(t, "grant", func() bool { _, ok := fw.get(client, ports.TCP, 8080); return ok })
	st := h.d.Status(context.Background())
	if _, ok := fw.get(racer, ports.TCP, 8080); ok || st.Rejected["bad tag"] != 1 || st.Rejected["replay"] != 0 {
		t.Fatalf("racer: %+v", st)
	}
}

// TestGrantWaitsForSync: the capture goroutine records the knock and
// returns without waiting for the disk; the grant waits until the record
// is synced.
func TestGrantWaitsForSync(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	var synced atomic.Bool
	grantedUnsynced := make(chan bool, 1)
	fw.onGrant = func(firewall.Grant) { grantedUnsynced <- !synced.Load() }
	h := start(t, t.TempDir(), key, fw)
	started, release := make(chan struct{}, 1), make(chan struct{})
	h.d.replay.SetSyncFunc(func(int) error {
		started <- struct{}{}
		<-release
		synced.Store(true)
		return nil
	})
	// h.send returns once HandlePacket has returned for every packet:
	// the capture is not held up by the sync, which has not finished.
	h.send(client, seal(t, "test", key, 3, openKnock(8080, 30)))
	<-started
	if _, ok := fw.get(client, ports.TCP, 8080); ok || synced.Load() {
		t.Fatal("granted before the replay record was synced")
	}
	close(release)
	if <-grantedUnsynced {
		t.Fatal("the firewall was asked before the sync returned")
	}
}

// TestSyncFailureRefusesGrant: when the record cannot be made durable,
// the knock is refused, and it stays a replay.
func TestSyncFailureRefusesGrant(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	h.d.replay.SetSyncFunc(func(int) error { return errors.New("injected I/O error") })
	pkts := seal(t, "test", key, 3, openKnock(8080, 30))
	h.send(client, pkts)
	waitFor(t, "refusal", func() bool {
		return h.d.Status(context.Background()).Rejected[ErrReplayWrite.Error()] == 1
	})
	if _, ok := fw.get(client, ports.TCP, 8080); ok {
		t.Fatal("granted although the replay record was not synced")
	}
	h.send(netip.MustParseAddr("198.18.7.7"), pkts)
	waitFor(t, "replay", func() bool { return h.d.Status(context.Background()).Rejected["replay"] == 1 })
}

// TestUsersCannotFillReplayCache: two users knocking in a loop cannot
// lock a third out of a shared replay cache.
func TestUsersCannotFillReplayCache(t *testing.T) {
	dir := t.TempDir()
	keys := make([]crypto.Key, 3)
	text := fmt.Sprintf("[daemon]\nrealm = test\nstate-dir = %s\ncontrol-socket = %s\nreplay-cache-size = 96\n", dir, filepath.Join(dir, "ctl.sock"))
	for i := range keys {
		keys[i], _ = crypto.GenerateKey()
		text += fmt.Sprintf("[user u%d]\nindex = %d\nkey = %s\nports = tcp/8080\n", i, i, keys[i].Encode())
	}
	cfg, err := config.Parse("test.conf", []byte(text), dir, 0o600, config.OS)
	if err != nil {
		t.Fatal(err)
	}
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	d, err := New(Options{Config: cfg, Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := crypto.NewRealm("test", nil)
	knock := func(user int, src netip.Addr) {
		k := openKnock(8080, 30)
		k.Time = uint32(time.Now().Unix())
		k.RandomNonce()
		b, err := crypto.Seal(nil, r, uint16(user), crypto.NewUser(&keys[user]), &k)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range encoding.DefaultSpan.AppendPorts(nil, b) {
			d.HandlePacket(src, p)
		}
	}
	for n := range 200 {
		knock(n%2, netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}))
		for len(d.work) > 0 { // let the worker keep up
			<-d.work
		}
	}
	d.rej.Lock()
	full := d.rej.total[classOf(errFull())]
	d.rej.Unlock()
	if full == 0 {
		t.Fatal("the looping users never met their limit")
	}
	third := netip.MustParseAddr("198.18.200.1")
	knock(2, third)
	select {
	case j := <-d.work:
		if j.g.Addr != third {
			t.Fatalf("grant for %v", j.g.Addr)
		}
	default:
		t.Fatalf("the third user was locked out; status %+v", d.Status(context.Background()).Rejected)
	}
	d.replay.Close()
}

func errFull() error {
	for _, c := range classes {
		if strings.Contains(c.Error(), "full") {
			return c
		}
	}
	return nil
}

// BenchmarkHandleKnockSlowDisk completes one knock per iteration while
// every fdatasync takes 10 ms: the packet path does not wait for it (the
// worker does), so a knock costs microseconds, not the sync.
func BenchmarkHandleKnockSlowDisk(b *testing.B) {
	key, _ := crypto.GenerateKey()
	d := benchDaemon(b, key)
	d.replay.SetSyncFunc(func(int) error { time.Sleep(10 * time.Millisecond); return nil })
	go func() { // a worker that only syncs, as the real one does first
		for j := range d.work {
			d.replay.Sync(j.seq)
		}
	}()
	r, _ := crypto.NewRealm("test", nil)
	u := crypto.NewUser(&key)
	const n = 4096
	knocks := make([][]uint16, n)
	for i := range knocks {
		k := openKnock(8080, 30)
		k.Time = uint32(time.Now().Unix())
		k.RandomNonce()
		bb, _ := crypto.Seal(nil, r, 3, u, &k)
		knocks[i] = encoding.DefaultSpan.AppendPorts(nil, bb)
	}
	src := netip.MustParseAddr("198.18.1.2")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for _, p := range knocks[i%n] {
			d.HandlePacket(src, p)
		}
		i++
	}
	b.StopTimer()
	close(d.work)
}

// TestClockStepNoDoubleAccept: one knock, accepted, then the clock steps
// an hour forward (another knock makes the cache expire entries) and back:
// the first knock replayed is refused. The cache used to forget it at the
// forward step and accept it again after the step back.
func TestClockStepNoDoubleAccept(t *testing.T) {
	key, _ := crypto.GenerateKey()
	dir := t.TempDir()
	var now atomic.Int64
	now.Store(time.Now().Unix())
	cfg := testConfig(t, dir, key)
	d, err := New(Options{Config: cfg, Backend: func(*config.Config) (firewall.Backend, error) {
		return &memBackend{grants: map[grantKey]firewall.Grant{}}, nil
	}, Log: slog.New(slog.DiscardHandler), Clock: func() time.Time { return time.Unix(now.Load(), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.replay.Close() })
	t0 := now.Load()
	knockAt := func(ts int64) []uint16 {
		k := openKnock(8080, 30)
		k.Time = uint32(ts)
		return seal(t, "test", key, 3, k)
	}
	accepted := func(ports []uint16, src netip.Addr) bool {
		before := len(d.work)
		for _, p := range ports {
			d.HandlePacket(src, p)
		}
		return len(d.work) > before
	}
	first := knockAt(t0)
	if !accepted(first, client) {
		t.Fatal("first knock refused")
	}
	now.Store(t0 + 3600)
	if !accepted(knockAt(t0+3600), netip.MustParseAddr("198.18.3.3")) {
		t.Fatal("knock while the clock is ahead refused")
	}
	now.Store(t0 + 1)
	if accepted(first, netip.MustParseAddr("198.18.7.7")) {
		t.Fatal("one knock accepted twice after the clock stepped forward and back")
	}
}
