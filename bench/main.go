// Command bench measures cipherknockd side by side with knockd and
// fwknopd on one machine, in a fixed topology of network namespaces:
// knock-to-use latency, detection latency, legitimate knocks under a
// spoofed flood, daemon CPU per million noise packets against a tcpdump
// floor, and memory after a million distinct spoofed sources. It writes
// results.md, PNG plots, results.json and machine.txt to a results folder.
//
// It needs root, and touches nothing outside the namespaces it creates.
// See bench/README.md for the method and how to run it.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	short      bool
	out        string
	only       map[string]bool
	knocks     int
	rates      []float64
	phase      time.Duration
	timeout    time.Duration // knock timeout without noise
	noiseKnock time.Duration // knock timeout under noise
	memSources uint64
	bin        string // prebuilt cipherknock and cipherknockd
	senders    int    // noise sender threads
	stateTmpfs bool   // cipherknockd's replay cache on tmpfs
	cpuProfile bool   // cipherknockd writes a CPU profile into the results
	floods     []int  // packets per spoofed source of the flood phases
	loadStart  string // /proc/loadavg when the run began
	ckSource   string // where the cipherknock binaries came from
}

// loadavg says how busy the machine was: the figures depend on it.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func main() {
	var c config
	var rates, only string
	flag.BoolVar(&c.short, "short", false, "a few knocks per system and one low noise rate; checks only that every system was measured")
	flag.StringVar(&c.out, "out", "", "results folder (default bench/results/<UTC time>)")
	flag.StringVar(&only, "systems", "", "comma-separated systems to run (default all)")
	flag.IntVar(&c.knocks, "knocks", 200, "knocks per system for the latency figures")
	flag.StringVar(&rates, "rates", "10000,50000,100000,200000,400000", "noise rates in packets/s")
	flag.DurationVar(&c.phase, "phase", 8*time.Second, "duration of each noise phase")
	flag.Uint64Var(&c.memSources, "mem-sources", 1_000_000, "distinct spoofed sources for the memory figure")
	flag.StringVar(&c.bin, "bin", "", "directory with prebuilt cipherknock and cipherknockd (default: build them from this module)")
	flag.BoolVar(&c.cpuProfile, "ck-cpuprofile", false, "diagnostic: cipherknockd writes a CPU profile of each of its runs into the results folder (go tool pprof)")
	flag.BoolVar(&c.stateTmpfs, "ck-state-tmpfs", false, "diagnostic: keep cipherknockd's replay cache on tmpfs (/dev/shm), to see what its fsyncs cost")
	flag.IntVar(&c.senders, "senders", 2, "noise sender threads (each with its own socket)")
	floods := flag.String("floods", "1,2,4,24", "flood phases against cipherknock at the highest rate: packets per spoofed source (empty: none)")
	replot := flag.String("replot", "", "redraw the PNGs of a results folder from its results.json, and exit")
	flag.Parse()
	if *replot != "" {
		var rs []*sysResult
		b, err := os.ReadFile(filepath.Join(*replot, "results.json"))
		if err == nil {
			err = json.Unmarshal(b, &rs)
		}
		if err == nil {
			err = plots(*replot, rs)
		}
		if err != nil {
			fatalf("%v", err)
		}
		return
	}
	c.timeout = 3 * time.Second
	c.noiseKnock = 1500 * time.Millisecond
	if c.short {
		c.knocks = 5
		rates = "10000"
		c.phase = 2500 * time.Millisecond
		c.memSources = 20000
		if *floods == "1,2,4,24" {
			*floods = "2"
		}
	}
	for _, r := range strings.Split(rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || v <= 0 {
			fatalf("bad -rates value %q", r)
		}
		c.rates = append(c.rates, v)
	}
	for _, f := range strings.Split(*floods, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 || v > 40 {
			fatalf("bad -floods value %q (1..40 packets per source)", f)
		}
		c.floods = append(c.floods, v)
	}
	if only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			c.only[strings.TrimSpace(s)] = true
		}
	}
	if os.Geteuid() != 0 {
		fatalf("needs root: creates network namespaces and runs daemons in them")
	}
	if c.out == "" {
		root, err := moduleRoot()
		if err != nil {
			root = "."
		}
		c.out = filepath.Join(root, "bench", "results", time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		fatalf("%v", err)
	}
	os.Exit(run(&c))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: error: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

// cleanup holds what a signal must tear down.
var (
	cleanupMu sync.Mutex
	cleanups  = map[*topology]bool{}
)

func run(c *config) int {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigc
		cleanupMu.Lock()
		for t := range cleanups {
			t.close()
		}
		os.Exit(130)
	}()

	started := time.Now()
	c.loadStart = loadavg()
	if err := installPeers(); err != nil {
		logf("%v", err)
	}
	tmp, err := os.MkdirTemp("", "ckbench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	bin := c.bin
	if bin == "" {
		if bin, err = buildCipherknock(tmp); err != nil {
			logf("cipherknock: %v", err)
			c.ckSource = "not built: " + err.Error()
		} else {
			c.ckSource = "built from this module at " + moduleCommit()
		}
	} else {
		c.ckSource = "prebuilt, from " + bin
	}
	writeMachine(filepath.Join(c.out, "machine.txt"))

	systems := []system{openSystem{}, knockdSystem{}, &fwknopdSystem{}, &fwknopdSystem{udp: true}, cipherknockSystem{},
		cipherknockSystem{capture: "nflog"}, cipherknockSystem{capture: "log"}, tcpdumpSystem{}}
	// Packet-log lines from the harness's namespaces reach /dev/kmsg only
	// with nf_log_all_netns (cipherknock-log); it is put back at the end.
	const knob = "/proc/sys/net/netfilter/nf_log_all_netns"
	if old, err := os.ReadFile(knob); err == nil && (c.only == nil || c.only["cipherknock-log"]) {
		os.WriteFile(knob, []byte("1"), 0o644)
		defer os.WriteFile(knob, old, 0o644)
	}
	var results []*sysResult
	for _, s := range systems {
		if c.only != nil && !c.only[s.name()] {
			continue
		}
		dir := filepath.Join(tmp, s.name())
		os.MkdirAll(dir, 0o700)
		logf("%s: start", s.name())
		e := &env{dir: dir, bin: bin}
		if c.cpuProfile && s.name() == "cipherknock" {
			e.cpuProfile = filepath.Join(c.out, "cipherknockd.pprof")
		}
		if c.stateTmpfs {
			e.stateDir = filepath.Join("/dev/shm", filepath.Base(tmp)+"-"+s.name())
			defer os.RemoveAll(e.stateDir)
		}
		r := measure(c, s, e)
		if r.Err != "" {
			logf("%s: %s", s.name(), r.Err)
		}
		results = append(results, r)
		// Keep the ends of the daemons' logs beside the results (the
		// peers log every noise packet: the whole would be huge).
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			os.MkdirAll(filepath.Join(c.out, "logs"), 0o755)
			os.WriteFile(filepath.Join(c.out, "logs", filepath.Base(l)), tail(l, 100), 0o644)
		}
	}
	for _, r := range results {
		if r.Name == "cipherknock" && r.Err == "" && bin != "" {
			logf("cipherknock: client start-up beside a minimal Go program")
			n := max(c.knocks, 20)
			if r.StartMs, r.MinimalMs, err = clientStart(n, bin, tmp); err != nil {
				logf("client start-up: %v", err)
				r.Errors = append(r.Errors, "client start-up: "+err.Error())
			}
		}
	}
	elapsed := time.Since(started)
	if err := writeResults(c, results, elapsed); err != nil {
		logf("writing results: %v", err)
		return 1
	}
	logf("done in %s; results in %s", elapsed.Round(time.Second), c.out)
	// Short mode checks only that every system produced numbers.
	bad := 0
	for _, r := range results {
		if missing := r.missing(); missing != "" {
			logf("%s: not measured: %s", r.Name, missing)
			bad++
		}
	}
	if bad > 0 {
		return 1
	}
	return 0
}

// installPeers installs the peers and tcpdump with apt-get when missing.
func installPeers() error {
	var missing []string
	for _, p := range [][2]string{{"knockd", "knockd"}, {"knock", "knockd"}, {"fwknopd", "fwknop-server"}, {"fwknop", "fwknop-client"}, {"tcpdump", "tcpdump"}, {"ipset", "ipset"}, {"iptables", "iptables"}} {
		if _, err := exec.LookPath(p[0]); err != nil {
			missing = append(missing, p[1])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing %s", strings.Join(missing, " "))
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err != nil {
		// A fresh machine may have no package lists yet.
		exec.Command("apt-get", "update", "-qq").Run()
		if out, err := install(); err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, lastLines(string(out), 3))
		}
	}
	return nil
}

// buildCipherknock builds the client and daemon of the module the
// harness runs in, when both exist.
func buildCipherknock(tmp string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	for _, d := range []string{"cmd/cipherknock", "cmd/cipherknockd"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			return "", fmt.Errorf("%s is missing: the cipherknock system cannot run", d)
		}
	}
	bin := filepath.Join(tmp, "bin")
	// As a release is built: pure Go, static, stripped.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin+"/", "./cmd/cipherknock", "./cmd/cipherknockd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, lastLines(string(out), 5))
	}
	return bin, nil
}

// tail returns the last n lines of a file, reading at most 64 KiB.
func tail(path string, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		f.Seek(st.Size()-max, 0)
	}
	b, _ := io.ReadAll(f)
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n+1 {
		lines = lines[len(lines)-n-1:]
	}
	return []byte(strings.Join(lines, ""))
}

// moduleCommit names the commit the module is at, and whether the tree
// differs from it.
func moduleCommit() string {
	root, err := moduleRoot()
	if err != nil {
		return "?"
	}
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "?"
	}
	return "commit " + strings.TrimSpace(string(out))
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		// The harness is a module of its own inside the repository
		// (bench/go.mod): the root is the go.mod of the parent module.
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && slices.Contains(strings.Split(string(b), "\n"), "module github.com/cipherknock/cipherknock") {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("run it from inside the cipherknock module")
		}
		d = p
	}
}

func writeMachine(path string) {
	var b strings.Builder
	for _, argv := range [][]string{{"lscpu"}, {"uname", "-a"}, {"go", "version"}, {"free", "-m"}, {"knockd", "-V"}, {"fwknopd", "--version"}, {"tcpdump", "--version"}, {"iptables", "--version"}} {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(argv, " "), strings.TrimSpace(string(out)))
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
}

// measure runs every measurement a system takes part in, on a topology
// of its own.
func measure(c *config, s system, e *env) (r *sysResult) {
	r = &sysResult{Name: s.name(), Desc: s.describe(), Knocks: s.hasKnocks(), Daemon: s.hasDaemon()}
	if err := s.setup(e); err != nil {
		r.Err = err.Error()
		return r
	}
	t, err := newTopology()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	e.topo = t
	cleanupMu.Lock()
	cleanups[t] = true
	cleanupMu.Unlock()
	defer func() {
		cleanupMu.Lock()
		delete(cleanups, t)
		cleanupMu.Unlock()
		t.close()
	}()
	if err := baseFirewall(t, s); err != nil {
		r.Err = err.Error()
		return r
	}
	// The protected service.
	var ln net.Listener
	if err := t.srv.do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(srvAddr, servicePort).String())
		return err
	}); err != nil {
		r.Err = err.Error()
		return r
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	var obs *observer
	if err := t.srv.do(func() error {
		br, err := net.InterfaceByName(srvIf)
		if err != nil {
			return err
		}
		obs, err = newObserver(br.Index, s.isKnock)
		return err
	}); err != nil {
		r.Err = "observer: " + err.Error()
		return r
	}
	defer obs.close()
	var d *daemon
	if s.hasDaemon() {
		if d, err = startDaemon(e, s, "main"); err != nil {
			r.Err = err.Error()
			return r
		}
		defer func() {
			if d != nil {
				d.stop()
			}
		}()
		r.RSSStartKiB, _ = memKiB(d.pid())
	}
	k := &knocker{c: c, s: s, e: e, obs: obs}

	// 1, 2: knock-to-use and detection latency, without noise.
	if s.hasKnocks() {
		for i := 0; i < c.knocks; i++ {
			res, det, detOK := k.knock(c.timeout)
			if !res.ok {
				r.LatencyFail++
				if len(r.Errors) < 5 {
					r.Errors = append(r.Errors, res.err)
				}
				continue
			}
			r.LatencyMs = append(r.LatencyMs, ms(res.latency))
			if res.clientRun > 0 {
				r.ClientMs = append(r.ClientMs, ms(res.clientRun))
			}
			if detOK {
				r.DetectionMs = append(r.DetectionMs, ms(det))
			}
		}
		logf("%s: latency: %d ok, %d failed; median %.2f ms", s.name(), len(r.LatencyMs), r.LatencyFail, median(r.LatencyMs))
	}
	if lo, ok := s.(interface{ latencyOnly() bool }); ok && lo.latencyOnly() {
		r.LatencyOnly = true
	}
	if !s.hasDaemon() || r.LatencyOnly {
		return r
	}

	// 3, 5: noise phases.
	var sender noisePool
	if err := t.noise.do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		sender, err = newNoisePool(c.senders, func() (*noiseSender, error) {
			return newNoiseSender(ifc.Index, t.srvMAC, t.noiseMAC, s.noiseTargets())
		})
		return err
	}); err != nil {
		r.Err = "noise: " + err.Error()
		return r
	}
	defer sender.close()
	phase := func(rate float64, label string) bool {
		p := noisePhase{Rate: rate, Per: int(max(sender[0].per, 1))}
		drops0 := s.drops(e, d)
		arrStart := t.noiseArrived()
		resc := make(chan noiseResult, 1)
		start := time.Now()
		go func() {
			nr, err := sender.send(rate, uint64(rate*c.phase.Seconds()), c.phase)
			if err != nil {
				logf("%s: noise: %v", s.name(), err)
			}
			resc <- nr
		}()
		// CPU is measured over a window of noise alone, after the
		// sender has settled; legitimate knocks come after it, so their
		// cost is not charged to the noise.
		cpuWindow := c.phase / 4
		time.Sleep(200 * time.Millisecond)
		cpu0, arr0, cs0 := cpuTime(d.pid()), t.noiseArrived(), ctxSwitches(d.pid())
		time.Sleep(cpuWindow)
		cpu1, arr1, cs1 := cpuTime(d.pid()), t.noiseArrived(), ctxSwitches(d.pid())
		p.CPUSec = (cpu1 - cpu0).Seconds()
		if arr1 > arr0 {
			p.CPUPerMillion = p.CPUSec / float64(arr1-arr0) * 1e6
			p.SwitchesPerK = float64(cs1-cs0) / float64(arr1-arr0) * 1e3
		}
		if s.hasKnocks() {
			// At most one knock every knockGap, so the harness's own
			// processes do not take the CPU the sender needs.
			const knockGap = 100 * time.Millisecond
			for time.Since(start)+c.noiseKnock < c.phase || p.Attempts == 0 {
				k0 := time.Now()
				res, _, _ := k.knock(c.noiseKnock)
				p.Attempts++
				if res.ok {
					p.OK++
				}
				time.Sleep(knockGap - time.Since(k0))
			}
		}
		nr := <-resc
		p.Sent, p.Achieved, p.Arrived = nr.sent, nr.achieved, t.noiseArrived()-arrStart
		p.Drops = dropDelta(drops0, s.drops(e, d))
		logf("%s: %snoise %.0f pps: achieved %.0f, arrived %d, knocks %d/%d, cpu %.3f s (%.2f s per M), drops %s",
			s.name(), label, rate, p.Achieved, p.Arrived, p.OK, p.Attempts, p.CPUSec, p.CPUPerMillion, p.Drops)
		if label == "" {
			r.Noise = append(r.Noise, p)
		} else {
			r.Floods = append(r.Floods, p)
		}
		select {
		case <-d.done:
			r.Err = fmt.Sprintf("daemon exited during the %.0f pps phase: %s", rate, lastLines(d.logText(), 3))
			d = nil
			return false
		default:
		}
		// Let a backlog drain before the next phase.
		time.Sleep(500 * time.Millisecond)
		return true
	}
	for _, rate := range c.rates {
		if !phase(rate, "") {
			return r
		}
	}
	// Floods that know the protocol: spoofed sources that send 1, 2, 4
	// or 24 packets each to cipherknock's span, at the highest rate
	// asked, while legitimate knocks come paced 2 ms a packet.
	if len(s.noiseTargets()) > 0 && s.noiseTargets()[0].span && len(c.floods) > 0 {
		e.pacing = 2 * time.Millisecond
		for _, per := range c.floods {
			for i, snd := range sender {
				snd.per = uint32(per)
				snd.counter = uint32(i) * (1 << 24 / uint32(len(sender))) * uint32(per)
			}
			if !phase(slices.Max(c.rates), fmt.Sprintf("flood of %d per source: ", per)) {
				return r
			}
		}
		e.pacing = 0
		for _, snd := range sender {
			snd.per = 1
		}
	}

	// 4: memory after distinct spoofed sources, on a fresh daemon.
	if s.hasKnocks() {
		d.stop()
		d2, err := startDaemon(e, s, "mem")
		if err != nil {
			d = nil
			r.Err = "restart for memory: " + err.Error()
			return r
		}
		d = d2
		r.RSSIdleKiB, _ = memKiB(d.pid())
		nr, err := sender.send(0, c.memSources, 30*time.Second)
		if err != nil {
			logf("%s: memory noise: %v", s.name(), err)
		}
		time.Sleep(time.Second)
		r.MemSources = nr.sent
		r.MemRate = nr.achieved
		r.RSSAfterKiB, r.HWMKiB = memKiB(d.pid())
		if n, ok := s.(interface{ memNote(*env) string }); ok {
			r.MemNote = n.memNote(e)
		}
		logf("%s: memory: %d KiB idle, %d KiB after %d sources (%.0f pps)", s.name(), r.RSSIdleKiB, r.RSSAfterKiB, nr.sent, nr.achieved)
	}
	return r
}

func dropDelta(a, b string) string {
	if b == "" {
		return "not reported"
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return b
	}
	return strconv.FormatUint(y-x, 10)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// baseFirewall installs the server's ruleset: established flows pass,
// grants (the peers' chain) come first, the service and the system's
// knock ports are dropped.
func baseFirewall(t *topology, s system) error {
	rules := []string{
		"*filter",
		":INPUT ACCEPT [0:0]",
		":BENCH_GRANTS - [0:0]",
		"-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A INPUT -j BENCH_GRANTS",
		"-A INPUT -p tcp --dport 8080 -j DROP",
	}
	rules = append(rules, s.firewall()...)
	rules = append(rules, "COMMIT", "")
	cmd := t.srv.command("iptables-restore", "-w")
	cmd.Stdin = strings.NewReader(strings.Join(rules, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	return nil
}

// knocker runs single knocks, each from the next client address.
type knocker struct {
	c    *config
	s    system
	e    *env
	obs  *observer
	next int
}

func (k *knocker) knock(timeout time.Duration) (knockResult, time.Duration, bool) {
	t := k.e.topo
	src := t.cliAddrs[k.next%len(t.cliAddrs)]
	k.next++
	k.obs.reset(src)
	if err := k.s.reset(k.e); err != nil {
		return knockResult{err: "reset: " + err.Error()}, 0, false
	}
	if err := t.useSource(src); err != nil {
		return knockResult{err: "source: " + err.Error()}, 0, false
	}
	cmd := k.s.client(k.e, src)
	if cmd != nil && cmd.Env == nil {
		// Clients keep their state under HOME: give them the system's
		// directory.
		cmd.Env = append(os.Environ(), "HOME="+k.e.dir)
	}
	var out strings.Builder
	if cmd != nil {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	var res knockResult
	t.cli.do(func() error {
		res = knockAndProbe(cmd, src, netip.AddrPortFrom(srvAddr, servicePort), timeout)
		return nil
	})
	if !res.ok && res.err == "" {
		res.err = "port did not open in " + timeout.String()
		if s := strings.TrimSpace(out.String()); s != "" {
			res.err += ": client said: " + lastLines(s, 2)
		}
	}
	if !res.ok || !k.s.hasDaemon() {
		return res, 0, false
	}
	// The observer reads the same packets a little later.
	for i := 0; i < 50; i++ {
		if det, ok := k.obs.detection(src); ok {
			return res, det, true
		}
		time.Sleep(time.Millisecond)
	}
	return res, 0, false
}
