// Package e2e runs the real cipherknockd and cipherknock binaries against
// the real kernel firewall, in throwaway network namespaces: a server
// namespace running the daemon and a protected TCP service, a client
// namespace that knocks, and a third that must stay shut out.
//
// The tests need root (they skip otherwise) and the ip, iptables and ipset
// commands. They wait on state with deadlines and never assert on timing.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

var (
	bin       string // directory holding the built binaries
	daemonBin string
	clientBin string
)

// coverDirEnv names an absolute directory: when set, TestMain builds the
// binaries with -cover and they write their coverage counters there
// (GOCOVERDIR), to be merged with the unit tests' by go tool covdata.
const coverDirEnv = "CIPHERKNOCK_E2E_COVERDIR"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "ck-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin = dir
		build := []string{"build"}
		if cov := os.Getenv(coverDirEnv); cov != "" {
			// The binaries count what these tests reach, in the mode
			// of the unit tests (-race implies atomic) so the two merge.
			// Writable by all: TestDoctor runs the daemon unprivileged.
			if err := os.MkdirAll(cov, 0o755); err != nil || os.Chmod(cov, 0o1777) != nil {
				fmt.Fprintln(os.Stderr, "coverage directory:", cov, err)
				return 1
			}
			build = append(build, "-cover", "-covermode=atomic", "-coverpkg=github.com/cipherknock/cipherknock/...")
			os.Setenv("GOCOVERDIR", cov) // inherited by every process the tests start
		}
		daemonBin = filepath.Join(dir, "cipherknockd")
		if out, err := exec.Command("go", append(build, "-o", daemonBin, "../cmd/cipherknockd")...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building cipherknockd: %v\n%s", err, out)
			return 1
		}
		clientBin = filepath.Join(dir, "cipherknock")
		if out, err := exec.Command("go", append(build, "-o", clientBin, "../cmd/cipherknock")...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building cipherknock: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

const (
	realm       = "e2e"
	userIndex   = 1
	servicePort = 8080
)

// world is one test's namespaces, daemon and service.
type world struct {
	t                     *testing.T
	dir                   string
	server, client, third *nstest.NS
	srvAddr               netip.Addr // the server's address towards the client
	srvAddr3              netip.Addr // the server's address towards the third namespace
	clientAddr, thirdAddr netip.Addr
	srvAddr6, clientAddr6 netip.Addr
	key                   crypto.Key
	conf                  string
	d                     *daemonProc
	extra                 string   // appended to [daemon]
	env                   []string // the daemon's environment, when set

	// wrap, if set, runs the daemon through a command (setpriv, say);
	// stdin, if set, is the daemon's standard input.
	wrap  []string
	stdin func() io.Reader
}

type daemonProc struct {
	cmd  *exec.Cmd
	log  string // file
	done chan struct{}
}

func requireTools(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	if daemonBin == "" {
		nstest.Skip(t, "needs root: the binaries are built by TestMain when running as root")
	}
}

// newWorld creates the namespaces, the key, the configuration and the
// service, and starts the daemon with the iptables backend; extra lines
// go to the [daemon] section.
func newWorld(t *testing.T, extra string) *world { return newWorldFW(t, "iptables", extra) }

// newWorldFW is newWorld with the firewall backend fw.
func newWorldFW(t *testing.T, fw, extra string) *world { return newWorldPrep(t, fw, extra, nil) }

// newWorldPrep is newWorldFW with prep called before the daemon starts.
func newWorldPrep(t *testing.T, fw, extra string, prep func(*world)) *world {
	requireTools(t)
	if fw == "command" && !strings.Contains(extra, "command-drops") {
		// The command backend drops nothing itself; these tests are
		// about its grants, not the host ruleset's drops
		// (TestCommandWithoutDrops is).
		extra += "\ncommand-drops = yes"
	}
	w := &world{t: t, dir: t.TempDir(), extra: extra}
	w.server = nstest.New(t, "srv")
	w.client = nstest.New(t, "cli")
	w.third = nstest.New(t, "trd")
	ls, lc := nstest.Connect(w.server, w.client, 1)
	ls3, l3 := nstest.Connect(w.server, w.third, 2)
	w.srvAddr, w.clientAddr = ls.Addr4, lc.Addr4
	w.srvAddr3, w.thirdAddr = ls3.Addr4, l3.Addr4
	w.srvAddr6, w.clientAddr6 = ls.Addr6, lc.Addr6
	var err error
	if w.key, err = crypto.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	w.writeFile("alice.key", w.key.Encode()+"\n", 0o600)
	w.conf = w.writeFile("cipherknockd.conf", fmt.Sprintf(`[daemon]
realm = %s
firewall = %s
state-dir = %s
control-socket = %s
reject-log-interval = 1
%s
[user alice]
index = %d
key-file = alice.key
ports = tcp/%d
max-duration = 30
`, realm, fw, filepath.Join(w.dir, "state"), filepath.Join(w.dir, "state", "control.sock"), extra, userIndex, servicePort), 0o600)

	svc := w.server.Command(daemonBin, "demo-service", "--listen", fmt.Sprintf(":%d", servicePort))
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Process.Kill(); svc.Wait() })
	if prep != nil {
		prep(w)
	}
	w.d = w.startDaemon()
	t.Cleanup(func() {
		w.stopDaemon()
		// Leave nothing behind even when a test failed half way.
		w.server.Try(daemonBin, "remove", "-c", w.conf)
	})
	return w
}

func (w *world) writeFile(name, content string, mode os.FileMode) string {
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		w.t.Fatal(err)
	}
	return p
}

var logSeq sync.Mutex
var logN int

func (w *world) startDaemon() *daemonProc {
	w.t.Helper()
	logSeq.Lock()
	logN++
	name := filepath.Join(w.dir, fmt.Sprintf("daemon-%d.log", logN))
	logSeq.Unlock()
	f, err := os.Create(name)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	cmd := w.server.Command(append(slices.Clone(w.wrap), daemonBin, "run", "-c", w.conf)...)
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = f, f
	if w.stdin != nil {
		cmd.Stdin = w.stdin()
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, log: name, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	w.d = p
	w.waitLog("cipherknockd running")
	return p
}

// stopDaemon stops the daemon with SIGTERM, if it runs.
func (w *world) stopDaemon() {
	if w.d == nil {
		return
	}
	w.d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.d.done:
	case <-time.After(10 * time.Second):
		w.d.cmd.Process.Kill()
		<-w.d.done
	}
	w.d = nil
}

func (w *world) killDaemon() {
	w.d.cmd.Process.Kill()
	<-w.d.done
	w.d = nil
}

func (w *world) logText() string {
	if w.d == nil {
		return ""
	}
	b, _ := os.ReadFile(w.d.log)
	return string(b)
}

// waitLog waits until the current daemon's log holds every one of subs.
func (w *world) waitLog(subs ...string) string {
	w.t.Helper()
	var text string
	ok := poll(15*time.Second, func() bool {
		text = w.logText()
		for _, s := range subs {
			if !strings.Contains(text, s) {
				return false
			}
		}
		return true
	})
	if !ok {
		select {
		case <-w.d.done:
			w.t.Fatalf("daemon exited; log:\n%s", text)
		default:
		}
		w.t.Fatalf("log lacks %q:\n%s", subs, text)
	}
	return text
}

func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial tries a new connection to the service from ns and reads its
// greeting; it reports whether that worked.
func dial(ns *nstest.NS, to netip.Addr) bool {
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(to, servicePort).String(), 700*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return err == nil
}

// establish opens a connection to the service from ns, to check later that
// an established connection outlives its grant.
func establish(t *testing.T, ns *nstest.NS, to netip.Addr) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(to, servicePort).String(), 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return c
}

func echo(c net.Conn) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		err = fmt.Errorf("echo %q", line)
	}
	return err
}

// knockSpec describes a knock the tests seal themselves, for the cases the
// client refuses to make (stale times, wrong realms, forged keys) and for
// recording a knock to replay it.
type knockSpec struct {
	realm string
	key   crypto.Key
	index uint16
	k     crypto.Knock
}

func (w *world) spec(port, dur uint16) knockSpec {
	return knockSpec{realm: realm, key: w.key, index: userIndex,
		k: crypto.Knock{Action: crypto.ActionOpen, Proto: ports.TCP, Port: port, Duration: dur}}
}

// ports seals the knock and returns its destination ports.
func (s knockSpec) ports(t *testing.T) []uint16 {
	r, err := crypto.NewRealm(s.realm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.k.Time == 0 {
		s.k.Time = uint32(time.Now().Unix())
	}
	s.k.RandomNonce()
	b, err := crypto.Seal(nil, r, s.index, crypto.NewUser(&s.key), &s.k)
	if err != nil {
		t.Fatal(err)
	}
	return encoding.DefaultSpan.AppendPorts(nil, b)
}

// send sends one empty UDP datagram per port from ns to dst.
func send(t *testing.T, ns *nstest.NS, dst netip.Addr, ports []uint16) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range ports {
			if _, err := c.WriteToUDPAddrPort(nil, netip.AddrPortFrom(dst, p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// clientKnock knocks with the real client binary from ns, for duration;
// extra flags go to the client.
func (w *world) clientKnock(ns *nstest.NS, dst netip.Addr, dur time.Duration, extra ...string) {
	w.t.Helper()
	args := append([]string{clientBin, "knock", dst.String(),
		"--realm", realm, "--user", fmt.Sprint(userIndex), "--key-file", filepath.Join(w.dir, "alice.key"),
		"--port", fmt.Sprint(servicePort), "--proto", "tcp", "--duration", dur.String(), "--no-confirm"}, extra...)
	out, err := ns.Try(args...)
	if err != nil {
		w.t.Fatalf("cipherknock knock: %v\n%s", err, out)
	}
}

func (w *world) mustOpen(ns *nstest.NS, to netip.Addr) {
	w.t.Helper()
	if !poll(10*time.Second, func() bool { return dial(ns, to) }) {
		w.t.Fatalf("%s cannot reach %s:%d; daemon log:\n%s", ns.Name, to, servicePort, w.logText())
	}
}

func (w *world) mustStayClosed(ns *nstest.NS, to netip.Addr) {
	w.t.Helper()
	if dial(ns, to) {
		w.t.Fatalf("%s reached %s:%d", ns.Name, to, servicePort)
	}
}

// TestOpenToKnockerOnly: closed before the knock; open to the knocking
// address only; closed to new connections after expiry while an
// established connection keeps working.
func TestOpenToKnockerOnly(t *testing.T) {
	w := newWorld(t, "")
	w.mustStayClosed(w.client, w.srvAddr)
	w.mustStayClosed(w.third, w.srvAddr3)

	w.clientKnock(w.client, w.srvAddr, 4*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	w.waitLog("knock accepted", "user=alice", "addr="+w.clientAddr.String(), "port=8080", "duration=4s")
	w.mustStayClosed(w.third, w.srvAddr3)
	c := establish(t, w.client, w.srvAddr)

	out := w.server.Run(daemonBin, "status", "-c", w.conf)
	if !strings.Contains(out, w.clientAddr.String()) || !strings.Contains(out, "tcp/8080") || !strings.Contains(out, "alice") {
		t.Errorf("status:\n%s", out)
	}

	if !poll(15*time.Second, func() bool { return !dial(w.client, w.srvAddr) }) {
		t.Fatal("still open long after the grant expired")
	}
	if err := echo(c); err != nil {
		t.Fatalf("established connection cut at expiry: %v", err)
	}
	if key := w.key.Encode(); strings.Contains(w.logText(), key[len(crypto.KeyPrefix):]) {
		t.Fatal("the log holds the key")
	}
}

// TestReplay: a knock recorded and replayed from the third namespace
// fails, also after the daemon was killed with SIGKILL and restarted.
func TestReplay(t *testing.T) {
	w := newWorld(t, "")
	recorded := w.spec(servicePort, 20).ports(t)
	send(t, w.client, w.srvAddr, recorded)
	w.mustOpen(w.client, w.srvAddr)

	send(t, w.third, w.srvAddr3, recorded)
	w.waitLog("class=replay", "last-source="+w.thirdAddr.String())
	w.mustStayClosed(w.third, w.srvAddr3)

	w.killDaemon()
	w.startDaemon()
	send(t, w.third, w.srvAddr3, recorded)
	w.waitLog("class=replay", "last-source="+w.thirdAddr.String())
	w.mustStayClosed(w.third, w.srvAddr3)
}

// TestRejectClasses: wrong key, wrong realm, stale timestamp, disallowed
// port and over-long duration are refused, each logged under its class.
func TestRejectClasses(t *testing.T) {
	w := newWorld(t, "")
	wrongKey, _ := crypto.GenerateKey()
	stale := w.spec(servicePort, 10)
	stale.k.Time = uint32(time.Now().Add(-time.Hour).Unix())
	badKey := w.spec(servicePort, 10)
	badKey.key = wrongKey
	badRealm := w.spec(servicePort, 10)
	badRealm.realm = "elsewhere"
	cases := []struct {
		name  string
		spec  knockSpec
		class string
	}{
		{"wrong key", badKey, `class="bad tag"`},
		{"wrong realm", badRealm, `class="bad tag"`},
		{"stale timestamp", stale, "class=stale"},
		{"disallowed port", w.spec(22, 10), `class="policy: port"`},
		{"over-long duration", w.spec(servicePort, 31), `class="policy: duration"`},
	}
	for _, c := range cases {
		send(t, w.client, w.srvAddr, c.spec.ports(t))
		w.waitLog(c.class)
	}
	if strings.Contains(w.logText(), "knock accepted") {
		t.Fatal("a bad knock was accepted")
	}
	w.mustStayClosed(w.client, w.srvAddr)
	out := w.server.Run(daemonBin, "status", "-c", w.conf)
	for _, c := range []string{"bad tag=2", "stale=1", "policy: port=1", "policy: duration=1"} {
		if !strings.Contains(out, c) {
			t.Errorf("status lacks %q:\n%s", c, out)
		}
	}
}

// TestReorderedDuplicated: packets in random order, some of them twice,
// still open the door.
// The daemon logs JSON here.
func TestReorderedDuplicated(t *testing.T) {
	w := newWorld(t, "log-format = json")
	ports := w.spec(servicePort, 10).ports(t)
	ports = append(ports, ports[3], ports[0], ports[len(ports)-1])
	rand.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
	send(t, w.client, w.srvAddr, ports)
	w.mustOpen(w.client, w.srvAddr)
	text := w.waitLog(`"msg":"knock accepted"`)
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
}

// TestClientVariants knocks with the real client as TCP SYNs, shuffled
// and repeated: the daemon takes both transports, and a client's second
// pass of the same knock is no replay.
func TestClientVariants(t *testing.T) {
	w := newWorld(t, "")
	w.clientKnock(w.client, w.srvAddr, 10*time.Second, "--via", "tcp", "--shuffle", "--repeat", "2")
	w.mustOpen(w.client, w.srvAddr)
	w.waitLog("knock accepted")
	var out string
	if !poll(10*time.Second, func() bool {
		out = w.server.Run(daemonBin, "status", "-c", w.conf)
		return strings.Contains(out, "repeated passes 1")
	}) || strings.Contains(out, "replay=") {
		t.Errorf("second pass not seen as such:\n%s\n%s", out, w.logText())
	}
}

// TestExplicitAddress: a knock that names another address than its own
// source is refused by default, and opens that address (only) for a user
// with that address in allow-address.
func TestExplicitAddress(t *testing.T) {
	w := newWorld(t, "")
	forThird := func() knockSpec {
		s := w.spec(servicePort, 10)
		s.k.Mode, s.k.Addr = crypto.ModeIPv4, w.thirdAddr
		return s
	}
	send(t, w.client, w.srvAddr, forThird().ports(t))
	w.waitLog(`class="policy: address"`)
	w.mustStayClosed(w.third, w.srvAddr3)

	conf, _ := os.ReadFile(w.conf)
	os.WriteFile(w.conf, append(conf, "allow-address = "+w.thirdAddr.String()+"/32\n"...), 0o600)
	w.d.cmd.Process.Signal(syscall.SIGHUP)
	w.waitLog("configuration reloaded")
	send(t, w.client, w.srvAddr, forThird().ports(t))
	w.mustOpen(w.third, w.srvAddr3)
	w.waitLog("knock accepted", "addr="+w.thirdAddr.String(), "source="+w.clientAddr.String())
	w.mustStayClosed(w.client, w.srvAddr)
}

// TestIPv6: the same over IPv6, through ip6tables and the IPv6 set; the
// IPv4 door stays shut.
func TestIPv6(t *testing.T) {
	w := newWorld(t, "")
	w.mustStayClosed(w.client, w.srvAddr6)
	send(t, w.client, w.srvAddr6, w.spec(servicePort, 10).ports(t))
	w.mustOpen(w.client, w.srvAddr6)
	w.waitLog("knock accepted", "addr="+w.clientAddr6.String())
	w.mustStayClosed(w.client, w.srvAddr)
}

// TestSpoofedFlood: a flood from random spoofed sources into the span
// while a legitimate knock happens: the knock succeeds, and the source
// table stays within its cap.
func TestSpoofedFlood(t *testing.T) {
	w := newWorld(t, "max-sources = 4096")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := flood(ctx, w.client, w.srvAddr, 1_000_000)
		if err != nil {
			t.Error(err)
		}
		sent = n
	}()
	// Let the flood fill the table before the knock.
	time.Sleep(time.Second)
	w.clientKnock(w.client, w.srvAddr, 10*time.Second)
	opened := poll(10*time.Second, func() bool { return dial(w.client, w.srvAddr) })
	wg.Wait()
	if !opened {
		t.Fatalf("knock lost in the flood; log:\n%s", w.logText())
	}
	out := w.server.Run(daemonBin, "status", "--json", "-c", w.conf)
	var st daemon.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("%d spoofed packets; table %d of %d sources (%d bytes), %d evictions", sent, st.Sources, st.SourceCap, st.TableBytes, st.Evictions)
	if st.SourceCap != 4096 || st.Sources > st.SourceCap || st.TableBytes != 4096*daemon.SlotSize {
		t.Errorf("table: %d tracked of %d in %d bytes", st.Sources, st.SourceCap, st.TableBytes)
	}
	if st.Evictions == 0 {
		t.Errorf("the flood never filled the table (%d packets sent)", sent)
	}
	// The capture's own counters reach status: every packet the kernel
	// filter matched was either read or dropped by the kernel.
	if c := st.Capture; c == nil {
		t.Error("status has no capture counters")
	} else {
		t.Logf("capture: %d matched, %d dropped by the kernel, %d delivered, %d rejected", c.Matched, c.Dropped, c.Delivered, c.Rejected)
		if c.Delivered == 0 || c.Read != c.Delivered+c.Rejected {
			t.Errorf("capture counters do not add up for %d packets sent: %+v", sent, *c)
		}
	}
	// The process stays small: the table is 512 KiB; the rest is the Go
	// runtime and the capture ring.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.d.cmd.Process.Pid))
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int
			fmt.Sscanf(strings.TrimPrefix(l, "VmHWM:"), "%d", &kb)
			t.Logf("daemon peak RSS %d KiB", kb)
			if kb > 64<<10 {
				t.Errorf("daemon peak RSS %d KiB", kb)
			}
		}
	}
}

// TestNFTables runs the main story with the nftables backend: closed,
// open to the knocker only, closed again at expiry with the established
// connection alive, and nothing left in the ruleset after stop.
func TestNFTables(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	w := newWorldFW(t, "nftables", "")
	w.mustStayClosed(w.client, w.srvAddr)
	w.clientKnock(w.client, w.srvAddr, 3*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	w.mustStayClosed(w.third, w.srvAddr3)
	c := establish(t, w.client, w.srvAddr)
	if !poll(15*time.Second, func() bool { return !dial(w.client, w.srvAddr) }) {
		t.Fatal("still open long after the grant expired")
	}
	if err := echo(c); err != nil {
		t.Fatalf("established connection cut at expiry: %v", err)
	}
	w.killDaemon()
	w.startDaemon()
	if out, err := w.server.Try(daemonBin, "remove", "-c", w.conf); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	<-w.d.done
	w.d = nil
	if out := w.server.Run("nft", "list", "ruleset"); strings.Contains(out, "cipherknock") {
		t.Errorf("ruleset after stop:\n%s", out)
	}

	// With firewall = auto, and no daemon running to ask: stop removes
	// what a killed daemon left.
	conf, _ := os.ReadFile(w.conf)
	os.WriteFile(w.conf, []byte(strings.Replace(string(conf), "firewall = nftables", "firewall = auto", 1)), 0o600)
	w.startDaemon()
	w.killDaemon()
	if out := w.server.Run("nft", "list", "ruleset"); !strings.Contains(out, "cipherknock") {
		t.Fatalf("no rules to remove:\n%s", out)
	}
	if out, err := w.server.Try(daemonBin, "remove", "-c", w.conf); err != nil || !strings.Contains(out, "was not running") {
		t.Fatalf("remove without a daemon: %v\n%s", err, out)
	}
	if out := w.server.Run("nft", "list", "ruleset"); strings.Contains(out, "cipherknock") {
		t.Errorf("ruleset after stop:\n%s", out)
	}
}

// TestCommandBackend checks the wiring of firewall = command: the open
// command runs with the grant's values, and the close command when the
// grant expires.
func TestCommandBackend(t *testing.T) {
	requireTools(t)
	marks := t.TempDir()
	touch, _ := exec.LookPath("touch")
	rm, _ := exec.LookPath("rm")
	if touch == "" || rm == "" {
		nstest.Skip(t, "needs touch and rm")
	}
	mark := filepath.Join(marks, "open-{addr}-{proto}-{port}-{user}")
	w := newWorldFW(t, "command", fmt.Sprintf("command-open = %s %q\ncommand-close = %s -f %q", touch, mark, rm, mark))
	send(t, w.client, w.srvAddr, w.spec(servicePort, 2).ports(t))
	file := filepath.Join(marks, fmt.Sprintf("open-%s-tcp-%d-alice", w.clientAddr, servicePort))
	if !poll(10*time.Second, func() bool { _, err := os.Stat(file); return err == nil }) {
		t.Fatalf("open command did not run; log:\n%s", w.logText())
	}
	if out := w.server.Run(daemonBin, "status", "-c", w.conf); !strings.Contains(out, w.clientAddr.String()) {
		t.Errorf("status:\n%s", out)
	}
	if !poll(15*time.Second, func() bool { _, err := os.Stat(file); return err != nil }) {
		t.Fatalf("close command did not run at expiry; log:\n%s", w.logText())
	}
}

// TestKillWithGrants: SIGKILL with grants open: each grant still expires
// on time; a restart repairs the rules without duplicates; stop leaves no
// rule, chain or set.
func TestKillWithGrants(t *testing.T) {
	w := newWorld(t, "")
	knocked := time.Now()
	send(t, w.client, w.srvAddr, w.spec(servicePort, 3).ports(t))
	send(t, w.third, w.srvAddr3, w.spec(servicePort, 6).ports(t))
	w.mustOpen(w.client, w.srvAddr)
	w.mustOpen(w.third, w.srvAddr3)
	w.killDaemon()
	intact := w.server.Run("iptables-save")

	// The kernel expires each grant with no daemon running: not before
	// its time, and not long after.
	for _, c := range []struct {
		ns  *nstest.NS
		to  netip.Addr
		dur time.Duration
	}{{w.client, w.srvAddr, 3 * time.Second}, {w.third, w.srvAddr3, 6 * time.Second}} {
		if !poll(c.dur+10*time.Second, func() bool { return !dial(c.ns, c.to) }) {
			t.Fatalf("%s: grant outlived its time with the daemon dead", c.ns.Name)
		}
		if took := time.Since(knocked); took < c.dur-time.Second {
			t.Errorf("%s: a %v grant closed after %v", c.ns.Name, c.dur, took)
		}
	}

	// Damage the rules while the daemon is down: a second jump, and a
	// missing drop. The restart must repair both, with no duplicate.
	w.server.Run("iptables", "-I", "INPUT", "-j", "CIPHERKNOCK")
	w.server.Run("iptables", "-D", "CIPHERKNOCK", "-p", "tcp", "-m", "tcp", "--dport", fmt.Sprint(servicePort), "-j", "DROP")
	w.startDaemon()
	after := w.server.Run("iptables-save")
	if n := strings.Count(after, "-j CIPHERKNOCK"); n != 1 {
		t.Errorf("%d jumps to the chain after restart:\n%s", n, after)
	}
	if rules(intact) != rules(after) {
		t.Errorf("rules not repaired by the restart:\nbefore the damage:\n%s\nafter the restart:\n%s", intact, after)
	}
	w.mustStayClosed(w.client, w.srvAddr)
	send(t, w.client, w.srvAddr, w.spec(servicePort, 3).ports(t))
	w.mustOpen(w.client, w.srvAddr)

	out, err := w.server.Try(daemonBin, "remove", "-c", w.conf)
	if err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	<-w.d.done
	w.d = nil
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}} {
		if out := w.server.Run(cmd...); strings.Contains(strings.ToLower(out), "cipherknock") {
			t.Errorf("%s after stop:\n%s", cmd[0], out)
		}
	}
	if out := w.server.Run("ipset", "list", "-n"); strings.TrimSpace(out) != "" {
		t.Errorf("sets after stop: %s", out)
	}
}

// TestReloadAndTerm: SIGHUP reloads the configuration and keeps the
// grants; SIGTERM stops the daemon cleanly and leaves the ports closed.
func TestReloadAndTerm(t *testing.T) {
	w := newWorld(t, "")
	send(t, w.client, w.srvAddr, w.spec(servicePort, 30).ports(t))
	w.mustOpen(w.client, w.srvAddr)
	send(t, w.third, w.srvAddr3, w.spec(servicePort, 45).ports(t))
	w.waitLog(`class="policy: duration"`)

	conf, _ := os.ReadFile(w.conf)
	newConf := strings.Replace(string(conf), "max-duration = 30", "max-duration = 60", 1)
	newConf = strings.Replace(newConf, "ports = tcp/8080", "ports = tcp/8080, tcp/9090", 1)
	os.WriteFile(w.conf, []byte(newConf), 0o600)
	w.d.cmd.Process.Signal(syscall.SIGHUP)
	w.waitLog("configuration reloaded")
	w.mustOpen(w.client, w.srvAddr) // the grant survived
	if out := w.server.Run("iptables-save"); !strings.Contains(out, "--dport 9090 -j DROP") || strings.Count(out, "-j CIPHERKNOCK") != 1 {
		t.Errorf("newly protected port not closed after reload:\n%s", out)
	}
	send(t, w.third, w.srvAddr3, w.spec(servicePort, 45).ports(t))
	w.mustOpen(w.third, w.srvAddr3) // the new limit is in force

	// A broken file is refused and the old configuration stays.
	os.WriteFile(w.conf, []byte(newConf+"bogus = 1\n"), 0o600)
	w.d.cmd.Process.Signal(syscall.SIGHUP)
	w.waitLog("reload failed", "unknown key")

	w.d.cmd.Process.Signal(syscall.SIGTERM)
	<-w.d.done
	if code := w.d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	if !strings.Contains(w.logText(), "cipherknockd stopped") {
		t.Errorf("no clean stop in the log:\n%s", w.logText())
	}
	w.d = nil
	// The protecting rules stay: a daemon that is down keeps doors shut
	// to anyone without a grant.
	nsNew := w.server.Run("iptables-save")
	if !strings.Contains(nsNew, "CIPHERKNOCK") {
		t.Errorf("rules gone after SIGTERM:\n%s", nsNew)
	}
}

// rules keeps the chain and rule lines of iptables-save output, without
// packet counters.
func rules(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "-A"):
			out = append(out, l)
		case strings.HasPrefix(l, ":"):
			f := strings.Fields(l)
			out = append(out, strings.Join(f[:min(2, len(f))], " "))
		}
	}
	return strings.Join(out, "\n")
}

// TestCheckConfig runs check-config on broken files, each with its
// expected message, and checks that it leaves the firewall alone.
func TestCheckConfig(t *testing.T) {
	requireTools(t)
	ns := nstest.New(t, "cfg")
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("good.key", key.Encode()+"\n", 0o600)
	write("open.key", key.Encode()+"\n", 0o644)
	write("garbage.key", "not a key\n", 0o600)
	user := "[user alice]\nindex = 0\nkey-file = good.key\nports = tcp/22\n"
	cases := []struct{ name, body, want string }{
		{"unknown-key", "[daemon]\nrealm = r\ncolour = blue\n" + user, `unknown-key.conf:3: unknown key "colour" in [daemon]`},
		{"no-realm", "[daemon]\nwindow = 60\n" + user, "no-realm.conf:1: [daemon] needs a realm (realm = NAME)"},
		{"bad-span", "[daemon]\nrealm = r\nspan-base = 99\n" + user, "bad-span.conf:3: span-base: span base 99 outside 1024..55296"},
		{"bad-firewall", "[daemon]\nrealm = r\nfirewall = pf\n" + user, `bad-firewall.conf:3: firewall: "pf" is not one of auto, iptables, nftables, command`},
		{"bad-window", "[daemon]\nrealm = r\nwindow = 9999\n" + user, "bad-window.conf:3: window: 9999 seconds is outside 5..600"},
		{"dup-index", "[daemon]\nrealm = r\n" + user + "[user bob]\nindex = 0\nkey-file = good.key\nports = tcp/23\n", `dup-index.conf:7: user "bob" has index 0, already used by user "alice" on line 3`},
		{"key-missing", "[daemon]\nrealm = r\n[user a]\nindex = 0\nkey-file = nope.key\nports = tcp/22\n", `key-missing.conf:5: key-file "nope.key": no such file or directory`},
		{"key-open", "[daemon]\nrealm = r\n[user a]\nindex = 0\nkey-file = open.key\nports = tcp/22\n", `key-open.conf:5: key-file "open.key": group or others may access it (mode 0644): chmod 600 it`},
		{"key-garbage", "[daemon]\nrealm = r\n[user a]\nindex = 0\nkey-file = garbage.key\nports = tcp/22\n", `key-garbage.conf:5: key-file "garbage.key": not a cipherknock key: wrong or missing prefix`},
		{"bad-ports", "[daemon]\nrealm = r\n[user a]\nindex = 0\nkey-file = good.key\nports = tcp/90-80\n", `bad-ports.conf:6: ports: "tcp/90-80": range ends before it starts`},
		{"bad-duration", "[daemon]\nrealm = r\n" + user + "max-duration = 0\n", "bad-duration.conf:7: max-duration: 0 seconds is outside 1..65535"},
		{"bad-source", "[daemon]\nrealm = r\n" + user + "sources = 10.1.2.3/8\n", `bad-source.conf:7: sources: "10.1.2.3/8" has host bits set (did you mean 10.0.0.0/8?)`},
		{"syntax", "[daemon\nrealm = r\n", "syntax.conf:1: section header must end with ']'"},
	}
	before := ns.Run("iptables-save")
	for _, c := range cases {
		p := write(c.name+".conf", c.body, 0o600)
		cmd := ns.Command(daemonBin, "check-config", "-c", p)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%s: exit %v, want 2\n%s", c.name, err, out)
			continue
		}
		first := strings.SplitN(string(out), "\n", 2)[0]
		if first != filepath.Join(dir, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, first, filepath.Join(dir, c.want))
		}
		if strings.Contains(string(out), key.Encode()[10:30]) {
			t.Errorf("%s: output shows the key", c.name)
		}
	}
	if after := ns.Run("iptables-save"); rules(after) != rules(before) {
		t.Errorf("check-config changed the firewall:\n%s", after)
	}
}
