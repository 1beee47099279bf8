package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/replay"
	"github.com/cipherknock/cipherknock/sniff"
)

// memBackend keeps grants in memory; the real backends are tested against
// the kernel in their own packages and in e2e.
type memBackend struct {
	mu       sync.Mutex
	grants   map[grantKey]firewall.Grant
	setups   int
	torndown bool
	protect  []ports.Range
	onGrant  func(firewall.Grant) // called before a grant is recorded

	// Errors to return, when set.
	setupErr, grantErr, revokeErr, listErr, teardownErr error
}

func (m *memBackend) Name() string { return "memory" }
func (m *memBackend) Setup(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.setupErr != nil {
		return m.setupErr
	}
	m.setups++
	return nil
}
func (m *memBackend) Grant(_ context.Context, g firewall.Grant) error {
	if m.onGrant != nil {
		m.onGrant(g)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.grantErr != nil {
		return m.grantErr
	}
	m.grants[grantKey{g.Addr, g.Proto, g.Port}] = g
	return nil
}
func (m *memBackend) Revoke(_ context.Context, g firewall.Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revokeErr != nil {
		return m.revokeErr
	}
	delete(m.grants, grantKey{g.Addr, g.Proto, g.Port})
	return nil
}
func (m *memBackend) List(context.Context) ([]firewall.Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return nil, m.listErr
	}
	var out []firewall.Grant
	for _, g := range m.grants {
		out = append(out, g)
	}
	return out, nil
}
func (m *memBackend) Teardown(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.teardownErr != nil {
		return m.teardownErr
	}
	m.torndown = true
	clear(m.grants)
	return nil
}
func (m *memBackend) get(a netip.Addr, p ports.Proto, port uint16) (firewall.Grant, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[grantKey{a, p, port}]
	return g, ok
}

// chanCapture is a capture whose Run is run; it counts what it delivers
// and whether it was closed.
type chanCapture struct {
	run       func(ctx context.Context, fn func(*sniff.Packet)) error
	delivered atomic.Uint64
	closed    atomic.Bool
}

func (c *chanCapture) Run(ctx context.Context, fn func(*sniff.Packet)) error {
	return c.run(ctx, func(p *sniff.Packet) { c.delivered.Add(1); fn(p) })
}
func (c *chanCapture) Stats() sniff.Stats { return sniff.Stats{Delivered: c.delivered.Load()} }
func (c *chanCapture) Close() error       { c.closed.Store(true); return nil }

func captureOf(c sniff.Capture) func(*config.Config) (sniff.Capture, error) {
	return func(*config.Config) (sniff.Capture, error) { return c, nil }
}

type pkt struct {
	src  netip.Addr
	port uint16
}

type harness struct {
	t       *testing.T
	d       *Daemon
	fw      *memBackend
	pkts    chan pkt
	logs    *syncBuffer
	cfg     *config.Config
	key     crypto.Key
	cancel  context.CancelFunc
	runErr  chan error
	handled chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t *testing.T, dir string, key crypto.Key) *config.Config {
	return configText(t, dir, key, "", "alice", "tcp/8080, udp/5000-5010")
}

// configText is the test configuration with extra [daemon] lines, and
// user (index 3, key) allowed ports.
func configText(t *testing.T, dir string, key crypto.Key, extra, user, ports string) *config.Config {
	text := fmt.Sprintf(`[daemon]
realm = test
state-dir = %s
control-socket = %s
reject-log-interval = 1
%s
[user %s]
index = 3
key = %s
ports = %s
max-duration = 60
sources = 198.18.0.0/16
`, dir, filepath.Join(dir, "ctl.sock"), extra, user, key.Encode(), ports)
	c, err := config.Parse("test.conf", []byte(text), dir, 0o600, config.OS)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, dir string, key crypto.Key, fw *memBackend) *harness {
	h := startWith(t, dir, key, fw)
	h.fw = fw
	return h
}

// startWith runs a daemon on backend fw, with extra [daemon] lines.
func startWith(t *testing.T, dir string, key crypto.Key, fw firewall.Backend, extra ...string) *harness {
	h := &harness{t: t, pkts: make(chan pkt), logs: &syncBuffer{}, key: key, runErr: make(chan error, 1), handled: make(chan struct{})}
	conf := func() *config.Config {
		return configText(t, dir, key, strings.Join(extra, "\n"), "alice", "tcp/8080, udp/5000-5010")
	}
	h.cfg = conf()
	d, err := New(Options{
		Config: h.cfg,
		Reload: func() (*config.Config, error) { return conf(), nil },
		Capture: func(*config.Config) (sniff.Capture, error) {
			return &chanCapture{run: func(ctx context.Context, fn func(*sniff.Packet)) error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case p := <-h.pkts:
						fn(&sniff.Packet{Src: p.src, DstPort: p.port})
						h.handled <- struct{}{}
					}
				}
			}}, nil
		},
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(h.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- d.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.runErr; err != nil {
		h.t.Error(err)
	}
}

func (h *harness) send(src netip.Addr, seq []uint16) {
	for _, p := range seq {
		h.pkts <- pkt{src, p}
		<-h.handled
	}
}

// seal returns the ports of a knock.
func seal(t testing.TB, realm string, key crypto.Key, index uint16, k crypto.Knock) []uint16 {
	r, err := crypto.NewRealm(realm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.Time == 0 {
		k.Time = uint32(time.Now().Unix())
	}
	k.RandomNonce()
	b, err := crypto.Seal(nil, r, index, crypto.NewUser(&key), &k)
	if err != nil {
		t.Fatal(err)
	}
	return encoding.DefaultSpan.AppendPorts(nil, b)
}

func openKnock(port, dur uint16) crypto.Knock {
	return crypto.Knock{Action: crypto.ActionOpen, Proto: ports.TCP, Port: port, Duration: dur}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var client = netip.MustParseAddr("198.18.1.2")

func TestGrantAndReplay(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	dir := t.TempDir()
	// By the time the firewall is asked, the knock is on disk: a crash
	// right after the grant cannot let it in again.
	onDisk := make(chan int, 1)
	fw.onGrant = func(firewall.Grant) {
		rc, _, err := replay.Open(filepath.Join(dir, ReplayFile), 10, time.Now().Unix())
		if err != nil {
			t.Error(err)
			return
		}
		onDisk <- rc.Len()
	}
	h := start(t, dir, key, fw)
	pkts := seal(t, "test", key, 3, openKnock(8080, 30))
	// Reordered and duplicated.
	shuffled := append([]uint16{}, pkts...)
	for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	shuffled = append(shuffled[:5:5], append(shuffled[3:6:6], shuffled[5:]...)...)
	h.send(client, shuffled)
	waitFor(t, "grant", func() bool { _, ok := fw.get(client, ports.TCP, 8080); return ok })
	if n := <-onDisk; n != 1 {
		t.Fatalf("replay cache on disk holds %d entries when the grant is made", n)
	}
	fw.onGrant = nil
	g, _ := fw.get(client, ports.TCP, 8080)
	if g.Timeout != 30*time.Second {
		t.Errorf("timeout %v", g.Timeout)
	}
	waitFor(t, "accept log", func() bool { return strings.Contains(h.logs.String(), "knock accepted") })
	line := h.logs.String()
	for _, want := range []string{"user=alice", "addr=198.18.1.2", "proto=tcp", "port=8080", "duration=30s"} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %s: %s", want, line)
		}
	}
	if strings.Contains(line, key.Encode()[7:20]) {
		t.Error("log reveals the key")
	}
	st := h.d.Status(context.Background())
	if len(st.Grants) != 1 || st.Grants[0].User != "alice" || st.Accepted != 1 {
		t.Errorf("status: %+v", st)
	}
	// Status through the control socket.
	r, err := Request(h.cfg.ControlSocket, "status")
	if err != nil || len(r.Status.Grants) != 1 {
		t.Fatalf("control status: %v %+v", err, r)
	}

	// The same knock again from the same source (a client's second
	// pass): ignored, and not counted as a replay.
	h.send(client, pkts)
	if st := h.d.Status(context.Background()); st.Duplicates != 1 || len(st.Rejected) != 0 {
		t.Errorf("second pass: %+v", st)
	}

	// The same knock again, from elsewhere: a replay.
	other := netip.MustParseAddr("198.18.9.9")
	h.send(other, pkts)
	waitFor(t, "replay summary", func() bool { return strings.Contains(h.logs.String(), `class=replay count=1 last-source=198.18.9.9`) })
	if _, ok := fw.get(other, ports.TCP, 8080); ok {
		t.Fatal("replay granted")
	}

	// After a restart, still a replay.
	h.stop()
	h2 := start(t, dir, key, fw)
	h2.send(other, pkts)
	waitFor(t, "replay after restart", func() bool { return strings.Contains(h2.logs.String(), `class=replay count=1`) })
	if _, ok := fw.get(other, ports.TCP, 8080); ok {
		t.Fatal("replay granted after restart")
	}
}

func TestRejectClasses(t *testing.T) {
	key, _ := crypto.GenerateKey()
	wrong, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	stale := openKnock(8080, 10)
	stale.Time = uint32(time.Now().Unix() - 3600)
	udp := openKnock(5005, 10)
	udp.Proto = ports.UDP
	other := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: netip.MustParseAddr("198.18.7.7"), Proto: ports.TCP, Port: 8080, Duration: 5}
	cases := []struct {
		ports []uint16
		src   netip.Addr
		class string
	}{
		{seal(t, "test", wrong, 3, openKnock(8080, 10)), client, "bad tag"},
		{seal(t, "other", key, 3, openKnock(8080, 10)), client, "bad tag"},
		{seal(t, "test", key, 4, openKnock(8080, 10)), client, "unknown user or wrong realm key"},
		{seal(t, "test", key, 3, stale), client, "stale"},
		{seal(t, "test", key, 3, openKnock(22, 10)), client, "policy: port"},
		{seal(t, "test", key, 3, openKnock(8080, 61)), client, "policy: duration"},
		{seal(t, "test", key, 3, openKnock(8080, 10)), netip.MustParseAddr("192.0.2.1"), "policy: source"},
		{seal(t, "test", key, 3, other), client, "policy: address"},
	}
	for _, c := range cases {
		h.send(c.src, c.ports)
	}
	for _, c := range cases {
		waitFor(t, c.class, func() bool {
			return strings.Contains(h.logs.String(), fmt.Sprintf("class=%q", c.class)) || strings.Contains(h.logs.String(), "class="+c.class+" ")
		})
	}
	if n := len(fw.grants); n != 0 {
		t.Fatalf("%d grants", n)
	}
	// A good one still goes through, and a close knock revokes it.
	h.send(client, seal(t, "test", key, 3, udp))
	waitFor(t, "udp grant", func() bool { _, ok := fw.get(client, ports.UDP, 5005); return ok })
	cl := crypto.Knock{Action: crypto.ActionClose, Proto: ports.UDP, Port: 5005}
	h.send(client, seal(t, "test", key, 3, cl))
	waitFor(t, "revoke", func() bool { _, ok := fw.get(client, ports.UDP, 5005); return !ok })
}

func TestStopTearsDown(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	waitFor(t, "setup", func() bool { fw.mu.Lock(); defer fw.mu.Unlock(); return fw.setups == 1 })
	waitFor(t, "socket", func() bool { _, err := Request(h.cfg.ControlSocket, "status"); return err == nil })
	if _, err := Request(h.cfg.ControlSocket, "reload"); err != nil {
		t.Fatal(err)
	}
	if _, err := Request(h.cfg.ControlSocket, "remove"); err != nil {
		t.Fatal(err)
	}
	if err := <-h.runErr; err != nil {
		t.Fatal(err)
	}
	h.cancel = nil
	if !fw.torndown {
		t.Fatal("not torn down")
	}
}

// BenchmarkHandlePacket is the per-packet path for packets that do not
// complete a knock: span check, table, assembler.
func BenchmarkHandlePacket(b *testing.B) {
	key, _ := crypto.GenerateKey()
	d := benchDaemon(b, key)
	srcs := make([]netip.Addr, 4096)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.HandlePacket(srcs[i%len(srcs)], encoding.DefaultBase+uint16(256+i%(39*256)))
	}
}

// BenchmarkHandleForgedKnock is the path of a complete knock that fails
// to open (a forged tag): the last packet, the open, the rejection count.
func BenchmarkHandleForgedKnock(b *testing.B) {
	key, _ := crypto.GenerateKey()
	wrong, _ := crypto.GenerateKey()
	d := benchDaemon(b, key)
	ports := seal(b, "test", wrong, 3, openKnock(8080, 10))
	for _, p := range ports[1:] {
		d.HandlePacket(client, p)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Complete it, then refill all but the header for the next round.
		d.HandlePacket(client, ports[0])
		for _, p := range ports[1:] {
			d.HandlePacket(client, p)
		}
	}
}

func benchDaemon(b testing.TB, key crypto.Key) *Daemon { return benchDaemonSources(b, key, 0) }

func testConfigB(b testing.TB, dir string, key crypto.Key) *config.Config {
	text := fmt.Sprintf("[daemon]\nrealm = test\nstate-dir = %s\n[user alice]\nindex = 3\nkey = %s\nports = tcp/8080\n", dir, key.Encode())
	c, err := config.Parse("bench.conf", []byte(text), dir, 0o600, config.OS)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// FuzzHandlePacket feeds arbitrary packet sequences (source address byte,
// port) through the per-packet path of a small table: it must not panic,
// must keep the table within its capacity, and must grant nothing, since
// the fuzzer does not know the key.
func FuzzHandlePacket(f *testing.F) {
	key, _ := crypto.GenerateKey()
	other, _ := crypto.GenerateKey()
	ports := seal(f, "test", other, 3, openKnock(8080, 10)) // a complete knock, forged
	var seed []byte
	for _, p := range ports {
		seed = append(seed, 2, byte(p>>8), byte(p))
	}
	f.Add(seed)
	f.Add([]byte{1, 0x50, 0x10, 1, 0x50, 0x10, 3, 0xff, 0xff})
	d := benchDaemonSources(f, key, 16)
	f.Fuzz(func(t *testing.T, data []byte) {
		for i := 0; i+3 <= len(data); i += 3 {
			src := netip.AddrFrom4([4]byte{198, 18, 0, data[i]})
			if data[i]&0x80 != 0 {
				src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: data[i]})
			}
			d.HandlePacket(src, uint16(data[i+1])<<8|uint16(data[i+2]))
		}
		if d.in.table.Live > d.in.table.Cap() || d.in.table.Live < 0 {
			t.Fatalf("table holds %d of %d", d.in.table.Live, d.in.table.Cap())
		}
		if len(d.work) != 0 {
			t.Fatal("garbage produced a grant")
		}
	})
}

func TestControlSocketMode(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	waitFor(t, "socket", func() bool { _, err := Request(h.cfg.ControlSocket, "status"); return err == nil })
	st, err := os.Stat(h.cfg.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket mode %v", st.Mode())
	}
	if _, err := Request(h.cfg.ControlSocket, "bogus"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("bogus command: %v", err)
	}
}

// TestSpoofedHeader: a header of a shorter mode injected from the knock's
// own source does not stall the real knock (SPEC.md §10.2), and the failed
// shorter reading is not counted as a rejection.
func TestSpoofedHeader(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	k := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: client, Proto: ports.TCP, Port: 8080, Duration: 10}
	pkts := seal(t, "test", key, 3, k)
	spoofed := encoding.DefaultSpan.Port(0, crypto.Header(crypto.ModeSource))
	h.send(client, append([]uint16{spoofed}, pkts...))
	waitFor(t, "grant", func() bool { _, ok := fw.get(client, ports.TCP, 8080); return ok })
	if st := h.d.Status(context.Background()); len(st.Rejected) != 0 || st.Sources != 0 {
		t.Errorf("status: %+v", st)
	}
}

// TestRejectDebugLog checks that at log-level debug each rejection is
// logged at once, with its class and source, up to the rate limit, and
// that at info none is.
func TestRejectDebugLog(t *testing.T) {
	key, _ := crypto.GenerateKey()
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		logs := &syncBuffer{}
		d, err := New(Options{
			Config:  testConfig(t, t.TempDir(), key),
			Capture: func(*config.Config) (sniff.Capture, error) { return &chanCapture{}, nil },
			Backend: func(*config.Config) (firewall.Backend, error) { return &memBackend{}, nil },
			Log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})),
		})
		if err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("198.51.100.7")
		for range 3 * rejectLogBurst {
			d.reject(crypto.ErrUnknownUser, src)
		}
		n := strings.Count(logs.String(), `msg="knock rejected" class="unknown user or wrong realm key" source=198.51.100.7`)
		want := rejectLogBurst
		if level == slog.LevelInfo {
			want = 0
		}
		if n != want {
			t.Errorf("level %v: %d rejections logged, want %d:\n%s", level, n, want, logs.String())
		}
		if got := d.rej.total[classOf(crypto.ErrUnknownUser)]; got != 3*rejectLogBurst {
			t.Errorf("level %v: %d rejections counted, want %d", level, got, 3*rejectLogBurst)
		}
	}
}

// TestRejectTokens checks the rate limit of the debug log: a burst, then
// rejectLogRate a second.
func TestRejectTokens(t *testing.T) {
	var b tokens
	now := time.Unix(1e9, 0)
	n := 0
	for range 100 {
		if b.take(now) {
			n++
		}
	}
	if n != rejectLogBurst {
		t.Errorf("burst of %d, want %d", n, rejectLogBurst)
	}
	n = 0
	for i := range 1000 { // 10 s in steps of 10 ms
		if b.take(now.Add(time.Duration(i+1) * 10 * time.Millisecond)) {
			n++
		}
	}
	if n < 10*rejectLogRate-1 || n > 10*rejectLogRate+1 {
		t.Errorf("%d in 10 s, want about %d", n, 10*rejectLogRate)
	}
}

// runDaemon makes a daemon of opts and runs it until the test ends, when
// Run must return without an error.
func runDaemon(t *testing.T, opts Options) *Daemon {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	return d
}
