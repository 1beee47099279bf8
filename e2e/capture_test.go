package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/sniff"
)

// The capture modes that read the firewall's log (capture = nflog and
// capture = log), end to end: the daemon's own firewall objects log the
// span, and the daemon reads what they log.

var captureSeq atomic.Int64

// nflogGroup returns a group no other test of this run uses.
func nflogGroup() int { return 4000 + int(captureSeq.Add(1)) }

// TestCaptureNFLog: with capture = nflog, a knock opens the door with
// each kernel backend, over IPv4 and over IPv6. With nftables the daemon
// runs without CAP_NET_RAW (setpriv drops it from the bounding set, so
// not even root has it). The iptables backend cannot: the iptables
// command's set match opens a raw socket to talk to ipset.
func TestCaptureNFLog(t *testing.T) {
	nstest.RequireTool(t, "nft", "setpriv")
	for _, fw := range []string{"nftables", "iptables"} {
		t.Run(fw, func(t *testing.T) {
			g := nflogGroup()
			w := newWorldPrep(t, fw, fmt.Sprintf("capture = nflog\nnflog-group = %d", g), func(w *world) {
				if fw == "nftables" {
					w.wrap = []string{"setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"}
				}
			})
			w.waitLog("capturing from nflog", fmt.Sprintf("group=%d", g))
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.d.cmd.Process.Pid))
			if fw == "nftables" && effHas(t, status, unix.CAP_NET_RAW) {
				t.Fatalf("the daemon has CAP_NET_RAW:\n%s", status)
			}
			w.mustStayClosed(w.client, w.srvAddr)
			w.clientKnock(w.client, w.srvAddr, 20*time.Second)
			w.mustOpen(w.client, w.srvAddr)
			w.mustStayClosed(w.third, w.srvAddr3)
			w.mustStayClosed(w.client, w.srvAddr6)
			w.clientKnock(w.client, w.srvAddr6, 20*time.Second)
			w.mustOpen(w.client, w.srvAddr6)
			w.waitLog("knock accepted", "addr="+w.clientAddr6.String())
			st := w.status()
			if c := st.Capture; c == nil || c.Delivered < 48 || c.Malformed != 0 {
				t.Errorf("capture counters: %+v", c)
			}
		})
	}
}

// holdNFLogGroup binds group in ns from this test process (NewNFLog
// binds it) and reads it until the test ends, as another program would.
func holdNFLogGroup(t *testing.T, ns *nstest.NS, group int) {
	t.Helper()
	var holder *sniff.NFLogCapture
	if err := ns.Do(func() (err error) {
		holder, err = sniff.NewNFLog(sniff.Config{Span: encoding.DefaultSpan}, uint16(group), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- holder.Run(ctx, func(*sniff.Packet) {}) }()
	t.Cleanup(func() { cancel(); <-errc })
}

// relay hands each kernel log line to write, as a syslog daemon would,
// until the test ends or stop is called.
func relay(t *testing.T, lines <-chan string, write func(string)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-lines:
				write(l)
			}
		}
	}()
	return cancel
}

func effHas(t *testing.T, status []byte, bit int) bool {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			var caps uint64
			fmt.Sscanf(strings.TrimSpace(v), "%x", &caps)
			return caps&(1<<bit) != 0
		}
	}
	t.Fatal("no CapEff")
	return false
}

func (w *world) status() daemon.Status {
	w.t.Helper()
	out := w.server.Run(daemonBin, "status", "--json", "-c", w.conf)
	var st daemon.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		w.t.Fatalf("status: %v\n%s", err, out)
	}
	return st
}

// TestCaptureNFLogGroupTaken: only one listener can bind a group. A
// group another program holds is a start-up error that names it; and
// while the daemon holds its group, another listener is refused with the
// daemon's name.
func TestCaptureNFLogGroupTaken(t *testing.T) {
	nstest.RequireTool(t, "nft")
	taken := nflogGroup()
	w := newWorldPrep(t, "nftables", fmt.Sprintf("capture = nflog\nnflog-group = %d", nflogGroup()), func(w *world) {
		// This test process takes the group first, in the server's namespace.
		holdNFLogGroup(t, w.server, taken)
	})

	// The running daemon holds its own group: a second listener is told who.
	var mine int
	fmt.Sscanf(w.extra[strings.Index(w.extra, "nflog-group = ")+len("nflog-group = "):], "%d", &mine)
	err := w.server.Do(func() error {
		c, err := sniff.NewNFLog(sniff.Config{Span: encoding.DefaultSpan}, uint16(mine), nil)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	want := fmt.Sprintf("nflog group %d is already bound by process %d (cipherknockd)", mine, w.d.cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second listener: %v; want %q", err, want)
	}

	// A daemon configured for the group this test holds does not start.
	w.stopDaemon()
	conf, _ := os.ReadFile(w.conf)
	os.WriteFile(w.conf, bytes.Replace(conf, []byte(fmt.Sprintf("nflog-group = %d", mine)), []byte(fmt.Sprintf("nflog-group = %d", taken)), 1), 0o600)
	out, err := w.server.Try(daemonBin, "run", "-c", w.conf)
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) {
		t.Fatalf("the daemon started on a taken group: %v\n%s", err, out)
	}
	want = fmt.Sprintf("nflog group %d is already bound by process %d (", taken, os.Getpid())
	if !strings.Contains(out, want) || strings.Count(strings.TrimSpace(out), "\n") > 3 {
		t.Errorf("start-up error:\n%s\nwant one line with %q", out, want)
	}
}

// TestCaptureNFLogReplayAndFlood: the replay and spoofed-flood stories
// of the AF_PACKET capture, in nflog mode: a replayed knock is refused,
// also after SIGKILL and a restart; a knock gets through a flood of
// spoofed sources, and the capture's counters add up.
func TestCaptureNFLogReplayAndFlood(t *testing.T) {
	nstest.RequireTool(t, "nft")
	w := newWorldFW(t, "nftables", fmt.Sprintf("capture = nflog\nnflog-group = %d\nmax-sources = 4096", nflogGroup()))
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

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := flood(ctx, w.third, w.srvAddr3, 300_000)
		if err != nil {
			t.Error(err)
		}
		sent = n
	}()
	time.Sleep(500 * time.Millisecond)
	w.clientKnock(w.third, w.srvAddr3, 10*time.Second)
	opened := poll(10*time.Second, func() bool { return dial(w.third, w.srvAddr3) })
	wg.Wait()
	if !opened {
		t.Fatalf("knock lost in the flood; log:\n%s", w.logText())
	}
	st := w.status()
	c := st.Capture
	t.Logf("%d spoofed packets; capture %+v; %d evictions", sent, c, st.Evictions)
	if c == nil || c.Delivered == 0 || c.Read != c.Delivered+c.Rejected+c.Malformed || st.Evictions == 0 {
		t.Errorf("counters do not add up: %+v, %d evictions", c, st.Evictions)
	}
}

// kernelLog stands in for a syslog daemon: it reads /dev/kmsg from now on
// and sends each record's text that holds marker. Packet logging from a
// namespace other than the first reaches the kernel log only with
// net.netfilter.nf_log_all_netns = 1, which it sets for the test.
func kernelLog(t *testing.T, marker string) <-chan string {
	t.Helper()
	const knob = "/proc/sys/net/netfilter/nf_log_all_netns"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Seek(fd, 0, unix.SEEK_END)
	out := make(chan string, 4096)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 8192)
		for !stop.Load() {
			n, err := unix.Read(fd, buf)
			if err != nil {
				if err == syscall.EAGAIN {
					unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 50)
				}
				continue
			}
			rec := string(buf[:n])
			if i := strings.IndexByte(rec, ';'); i >= 0 && strings.Contains(rec, marker) {
				out <- strings.SplitN(rec[i+1:], "\n", 2)[0]
			}
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		<-done
		unix.Close(fd)
		os.WriteFile(knob, bytes.TrimSpace(old), 0o644)
	})
	return out
}

// TestCaptureLogKmsg: capture = log reading /dev/kmsg itself, with each
// kernel backend logging the span with the configured prefix.
func TestCaptureLogKmsg(t *testing.T) {
	nstest.RequireTool(t, "nft")
	for _, fw := range []string{"nftables", "iptables"} {
		t.Run(fw, func(t *testing.T) {
			prefix := fmt.Sprintf("ck-e2e-%d-%d:", os.Getpid(), captureSeq.Add(1))
			kernelLog(t, prefix) // only for nf_log_all_netns
			w := newWorldFW(t, fw, "capture = log\nlog-source = kmsg\nlog-prefix = "+prefix)
			w.waitLog("capturing from kernel log lines")
			w.mustStayClosed(w.client, w.srvAddr)
			w.clientKnock(w.client, w.srvAddr, 20*time.Second)
			w.mustOpen(w.client, w.srvAddr)
			w.mustStayClosed(w.third, w.srvAddr3)
			w.clientKnock(w.client, w.srvAddr6, 20*time.Second)
			w.mustOpen(w.client, w.srvAddr6)
		})
	}
}

// TestCaptureLogFile: capture = log following a file, as a syslog daemon
// writes the kernel's lines to it; the file is rotated (renamed and
// created anew) and then truncated in place between knocks, and each
// knock still opens.
func TestCaptureLogFile(t *testing.T) {
	nstest.RequireTool(t, "nft")
	prefix := fmt.Sprintf("ck-e2e-%d-%d:", os.Getpid(), captureSeq.Add(1))
	lines := kernelLog(t, prefix)
	var path string
	var mu sync.Mutex
	w := newWorldPrep(t, "nftables", "", func(w *world) {
		path = filepath.Join(w.dir, "kern.log")
		os.WriteFile(path, []byte("old line\n"), 0o600)
		conf, _ := os.ReadFile(w.conf)
		os.WriteFile(w.conf, bytes.Replace(conf, []byte("[user alice]"), []byte("capture = log\nlog-source = "+path+"\nlog-prefix = "+prefix+"\n\n[user alice]"), 1), 0o600)
	})
	// The syslog daemon: the kernel's lines, appended with a syslog header.
	var wrote atomic.Int64
	relay(t, lines, func(l string) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%s testhost kernel: [ 1.0] %s\n", time.Now().Format(time.Stamp), l)
			f.Close()
			wrote.Add(1)
		}
	})
	accepted := func(n int) {
		t.Helper()
		if !poll(15*time.Second, func() bool { return strings.Count(w.logText(), "knock accepted") >= n }) {
			t.Fatalf("knock %d not accepted (%d lines written); log:\n%s", n, wrote.Load(), w.logText())
		}
	}
	w.clientKnock(w.client, w.srvAddr, 20*time.Second)
	accepted(1)
	w.mustOpen(w.client, w.srvAddr)

	mu.Lock()
	os.Rename(path, path+".1")
	mu.Unlock()
	w.clientKnock(w.client, w.srvAddr6, 20*time.Second)
	accepted(2)
	w.waitLog("log file rotated")
	w.mustOpen(w.client, w.srvAddr6)

	mu.Lock()
	os.Truncate(path, 0)
	mu.Unlock()
	time.Sleep(200 * time.Millisecond) // the follower checks every 20 ms; no signal for it
	w.clientKnock(w.third, w.srvAddr3, 20*time.Second)
	accepted(3)
	w.waitLog("log file truncated")
	w.mustOpen(w.third, w.srvAddr3)
}

// TestCaptureLogStdin: capture = log from standard input, the way a
// remote syslog stream is piped in; the end of the stream stops the
// daemon with an error that says so.
func TestCaptureLogStdin(t *testing.T) {
	nstest.RequireTool(t, "nft")
	prefix := fmt.Sprintf("ck-e2e-%d-%d:", os.Getpid(), captureSeq.Add(1))
	lines := kernelLog(t, prefix)
	pr, pw := io.Pipe()
	w := newWorldPrep(t, "nftables", "capture = log\nlog-source = -\nlog-prefix = "+prefix, func(w *world) {
		w.stdin = func() io.Reader { return pr }
	})
	stop := relay(t, lines, func(l string) {
		fmt.Fprintf(pw, "<4>%s fw kernel: %s\n", time.Now().Format(time.Stamp), l)
	})
	w.clientKnock(w.client, w.srvAddr, 20*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	stop()
	pw.Close()
	select {
	case <-w.d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon kept running after its input ended")
	}
	if !strings.Contains(w.logText(), "standard input closed") {
		t.Errorf("log:\n%s", w.logText())
	}
	w.d = nil
}

// TestDoctorCaptureModes: doctor says which capture modes work: as root
// all three (with the note on the kernel log from a namespace), as an
// unprivileged user none, and nflog not when its group is taken, naming
// who holds it.
func TestDoctorCaptureModes(t *testing.T) {
	requireTools(t)
	nstest.RequireTool(t, "setpriv")
	ns := nstest.New(t, "dcm")
	type report struct {
		Capture  string
		Captures []struct {
			Mode   string
			OK     bool
			Detail string
		}
	}
	read := func(argv ...string) report {
		t.Helper()
		out, err := ns.Try(argv...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return r
	}
	r := read(daemonBin, "doctor", "--json")
	if r.Capture != "afpacket" || len(r.Captures) != 3 {
		t.Fatalf("report: %+v", r)
	}
	for _, m := range r.Captures {
		if !m.OK {
			t.Errorf("as root, %s does not work: %s", m.Mode, m.Detail)
		}
		if m.Mode == "log" && !strings.Contains(m.Detail, "nf_log_all_netns") {
			t.Errorf("log mode in a namespace: %s", m.Detail)
		}
	}

	// The group taken by this test process in the namespace.
	g := nflogGroup()
	holdNFLogGroup(t, ns, g)
	dir := t.TempDir()
	conf := filepath.Join(dir, "d.conf")
	os.WriteFile(filepath.Join(dir, "a.key"), []byte(mustKey(t)+"\n"), 0o600)
	os.WriteFile(conf, []byte(fmt.Sprintf("[daemon]\nrealm = r\ncapture = nflog\nnflog-group = %d\n[user a]\nindex = 0\nkey-file = a.key\nports = tcp/22\n", g)), 0o600)
	ok := poll(5*time.Second, func() bool {
		r = read(daemonBin, "doctor", "--json", "-c", conf)
		return r.Capture == "nflog" && !r.Captures[1].OK
	})
	if !ok || !strings.Contains(r.Captures[1].Detail, fmt.Sprintf("process %d (", os.Getpid())) {
		t.Errorf("nflog with its group taken: %+v", r.Captures[1])
	}

	out, err := ns.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", unprivilegedCopy(t), "doctor", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r = report{}
	json.Unmarshal(out, &r)
	for _, m := range r.Captures {
		if m.OK {
			t.Errorf("unprivileged, %s works: %s", m.Mode, m.Detail)
		}
	}
}

// unprivilegedCopy is a copy of the daemon binary that nobody (user
// 65534) may run, in a directory of its own.
func unprivilegedCopy(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ck-doctor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "cipherknockd")
	data, err := os.ReadFile(daemonBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func mustKey(t *testing.T) string {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Encode()
}

// TestSystemdCaptureDropIns checks the unit's drop-ins for the capture
// modes with systemd-analyze (no systemd runs here to start them): the
// unit with each verifies, and the nflog drop-in takes CAP_NET_RAW and
// AF_PACKET away, lowering the unit's exposure score.
func TestSystemdCaptureDropIns(t *testing.T) {
	nstest.RequireTool(t, "systemd-analyze")
	exposure := func(dropIn string) (string, float64) {
		t.Helper()
		dir := t.TempDir()
		unit, err := os.ReadFile("../dist/cipherknockd.service")
		if err != nil {
			t.Fatal(err)
		}
		unit = bytes.ReplaceAll(unit, []byte("/usr/local/sbin/cipherknockd"), []byte(daemonBin))
		unit = bytes.ReplaceAll(unit, []byte("/usr/sbin/cipherknockd"), []byte(daemonBin))
		os.WriteFile(filepath.Join(dir, "cipherknockd.service"), unit, 0o644)
		if dropIn != "" {
			os.Mkdir(filepath.Join(dir, "cipherknockd.service.d"), 0o755)
			b, err := os.ReadFile("../dist/" + dropIn)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "cipherknockd.service.d", dropIn), b, 0o644)
		}
		env := append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		verify := exec.Command("systemd-analyze", "verify", "--man=no", "cipherknockd.service")
		verify.Env, verify.Dir = env, dir
		if out, err := verify.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("verify with %q: %v\n%s", dropIn, err, out)
		}
		sec := exec.Command("systemd-analyze", "security", "--offline=yes", "cipherknockd.service")
		sec.Env, sec.Dir = env, dir
		out, _ := sec.CombinedOutput()
		var score float64
		i := bytes.Index(out, []byte("Overall exposure level for cipherknockd.service: "))
		if i < 0 {
			t.Fatalf("security with %q:\n%s", dropIn, out)
		}
		fmt.Sscanf(string(out[i+len("Overall exposure level for cipherknockd.service: "):]), "%g", &score)
		return string(out), score
	}
	_, base := exposure("")
	nflogOut, nflogScore := exposure("capture-nflog.conf")
	_, logScore := exposure("capture-log.conf")
	t.Logf("exposure: base %.1f, capture-nflog %.1f, capture-log %.1f", base, nflogScore, logScore)
	if nflogScore >= base || !regexpMatch(`✓ CapabilityBoundingSet=~CAP_NET_\(BIND_SERVICE\|BROADCAST\|RAW\)`, nflogOut) || !regexpMatch(`✓ RestrictAddressFamilies=~AF_PACKET`, nflogOut) {
		t.Errorf("nflog drop-in: exposure %.1f (base %.1f)\n%s", nflogScore, base, nflogOut)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestCaptureLogAppliance: cipherknockd guards a firewall it reaches only
// through its log and a command, as for an appliance: the appliance (a
// namespace of its own, with its own nftables ruleset that logs the span
// with a prefix and drops it) protects its service; its kernel's log
// lines reach a file on the daemon's host (here the test stands in for
// the syslog that carries them); the daemon, in another namespace with
// firewall = command and capture = log, opens the door with a command
// that adds an element to the appliance's own set.
func TestCaptureLogAppliance(t *testing.T) {
	nstest.RequireTool(t, "nft", "ip")
	prefix := fmt.Sprintf("ck-app-%d-%d:", os.Getpid(), captureSeq.Add(1))
	lines := kernelLog(t, prefix)
	var app *nstest.NS
	var appAddr, cliAddr netip.Addr // the appliance's and the client's, on their link
	var logFile string
	w := newWorldPrep(t, "command", "", func(w *world) {
		app = nstest.New(t, "app")
		la, lc := nstest.Connect(app, w.client, 3)
		appAddr, cliAddr = la.Addr4, lc.Addr4
		cmd := app.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet appliance {
	set knocked4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
	chain in {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		ip saddr . meta l4proto . th dport @knocked4 accept
		meta l4proto { tcp, udp } th dport 20480-30719 log prefix "%s " drop
		tcp dport %d drop
	}
}`, prefix, servicePort))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("appliance ruleset: %v\n%s", err, out)
		}
		svc := app.Command(daemonBin, "demo-service", "--listen", fmt.Sprintf(":%d", servicePort))
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Process.Kill(); svc.Wait() })
		logFile = filepath.Join(w.dir, "appliance.log")
		os.WriteFile(logFile, nil, 0o600)
		ipCmd, _ := exec.LookPath("ip")
		conf, _ := os.ReadFile(w.conf)
		conf = bytes.Replace(conf, []byte("[user alice]"), []byte(fmt.Sprintf(`capture = log
log-source = %s
log-prefix = %s
command-open = %s netns exec %s nft add element inet appliance knocked{ipver} "{ {addr} . {proto} . {port} timeout {duration}s }"
command-close = %s netns exec %s nft delete element inet appliance knocked{ipver} "{ {addr} . {proto} . {port} }"

[user alice]`, logFile, prefix, ipCmd, app.Name, ipCmd, app.Name)), 1)
		os.WriteFile(w.conf, conf, 0o600)
	})
	relay(t, lines, func(l string) {
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%s appliance kernel: %s\n", time.Now().Format(time.Stamp), l)
			f.Close()
		}
	})
	w.mustStayClosed(w.client, appAddr)
	w.clientKnock(w.client, appAddr, 20*time.Second)
	w.mustOpen(w.client, appAddr)
	w.waitLog("knock accepted", "addr="+cliAddr.String())
	if out := app.Run("nft", "list", "set", "inet", "appliance", "knocked4"); !strings.Contains(out, cliAddr.String()+" . tcp . 8080") {
		t.Errorf("the appliance's set:\n%s", out)
	}
}
