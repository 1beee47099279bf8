package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/crypto"
)

// env is what a system gets to work with: the topology and a private
// directory for its configuration, state and logs.
type env struct {
	topo *topology
	dir  string
	bin  string // directory holding the cipherknock binaries ("" if none)
	// stateDir, when set, is where cipherknockd keeps its replay cache
	// instead of the system's directory (a diagnostic: on tmpfs it shows
	// what the cache's fsyncs cost).
	stateDir string
	// cpuProfile, when set, is where cipherknockd writes a CPU profile of
	// its whole run (go tool pprof), to find its hot spots under noise.
	cpuProfile string
	// pacing, when set, is the client's pause between knock packets.
	pacing time.Duration
}

// system is one contender: a daemon (or none) in the server namespace and
// a client command in the client namespace, protecting tcp/8080.
type system interface {
	name() string
	describe() string
	// kinds of measurement it takes part in
	hasKnocks() bool
	hasDaemon() bool
	noiseTargets() []noiseTarget
	isKnock(proto uint8, port uint16) bool
	// firewall lines for the server's INPUT chain, after the harness's own
	firewall() []string
	setup(e *env) error
	daemonArgv(e *env) []string
	ready(e *env, log string) bool
	client(e *env, src netip.Addr) *exec.Cmd
	reset(e *env) error
	drops(e *env, d *daemon) string
}

func randB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ---- the floor of knock-to-use: the port is already open ----

type openSystem struct{}

func (openSystem) name() string { return "open-port" }
func (openSystem) describe() string {
	return "no daemon; the port is open; the client is /bin/true (process start + connect)"
}
func (openSystem) hasKnocks() bool                   { return true }
func (openSystem) hasDaemon() bool                   { return false }
func (openSystem) noiseTargets() []noiseTarget       { return nil }
func (openSystem) isKnock(uint8, uint16) bool        { return false }
func (openSystem) firewall() []string                { return []string{"-I INPUT 1 -p tcp --dport 8080 -j ACCEPT"} }
func (openSystem) setup(*env) error                  { return nil }
func (openSystem) daemonArgv(*env) []string          { return nil }
func (openSystem) ready(*env, string) bool           { return true }
func (openSystem) reset(*env) error                  { return nil }
func (openSystem) drops(*env, *daemon) string        { return "" }
func (openSystem) client(*env, netip.Addr) *exec.Cmd { return exec.Command("/bin/true") }

// ---- knockd ----

// knockd sees a three-port TCP SYN sequence (its manual's example) and
// runs iptables to insert an ACCEPT for the knocker.
type knockdSystem struct{}

var knockdSeq = []uint16{7000, 8000, 9000}

func (knockdSystem) name() string { return "knockd" }
func (knockdSystem) describe() string {
	return "knockd 0.8 (libpcap), sequence 7000,8000,9000 tcp syn; command = iptables -I (a process per grant)"
}
func (knockdSystem) hasKnocks() bool { return true }
func (knockdSystem) hasDaemon() bool { return true }
func (knockdSystem) noiseTargets() []noiseTarget {
	var t []noiseTarget
	for _, p := range knockdSeq {
		t = append(t, noiseTarget{proto: unix.IPPROTO_TCP, from: p, to: p})
	}
	return t
}
func (knockdSystem) isKnock(proto uint8, port uint16) bool {
	if proto != unix.IPPROTO_TCP {
		return false
	}
	for _, p := range knockdSeq {
		if p == port {
			return true
		}
	}
	return false
}
func (knockdSystem) firewall() []string {
	return []string{"-A INPUT -p tcp -m multiport --dports 7000,8000,9000 -j DROP"}
}
func (knockdSystem) setup(e *env) error {
	conf := fmt.Sprintf(`[options]
	LogFile = %[1]s/knockd.log
	PidFile = %[1]s/knockd.pid
	Interface = br0

[bench]
	sequence    = 7000,8000,9000
	seq_timeout = 5
	tcpflags    = syn
	command     = /usr/sbin/iptables -I BENCH_GRANTS -s %%IP%% -p tcp --dport 8080 -j ACCEPT
`, e.dir)
	return os.WriteFile(filepath.Join(e.dir, "knockd.conf"), []byte(conf), 0o600)
}
func (knockdSystem) daemonArgv(e *env) []string {
	// A fresh log per start, so ready sees this start's line.
	os.Remove(filepath.Join(e.dir, "knockd.log"))
	return []string{"knockd", "-c", filepath.Join(e.dir, "knockd.conf"), "-i", "br0"}
}
func (knockdSystem) ready(e *env, log string) bool {
	// Its own log file, as configured; it logs every first-stage hit
	// there too, as it does in production.
	b, _ := os.ReadFile(filepath.Join(e.dir, "knockd.log"))
	return strings.Contains(string(b), "listening on")
}
func (knockdSystem) client(e *env, src netip.Addr) *exec.Cmd {
	return exec.Command("knock", srvAddr.String(), "7000", "8000", "9000")
}
func (knockdSystem) reset(e *env) error {
	_, err := e.topo.srv.run("iptables", "-w", "-F", "BENCH_GRANTS")
	return err
}
func (knockdSystem) drops(*env, *daemon) string { return "" }

// ---- fwknopd ----

// fwknopd with HMAC-SHA256 + AES (Rijndael) keys, either sniffing with
// libpcap (its default; the pcap loop sleeps 100 ms between batches) or
// reading a UDP socket (-U). It manages its own FWKNOP_INPUT chain.
type fwknopdSystem struct {
	udp      bool
	key, mac string
}

func (f *fwknopdSystem) name() string {
	if f.udp {
		return "fwknopd-udp"
	}
	return "fwknopd-pcap"
}
func (f *fwknopdSystem) describe() string {
	if f.udp {
		return "fwknopd 2.6.10 in UDP-server mode (-U), AES+HMAC-SHA256 SPA on udp/62201"
	}
	return "fwknopd 2.6.10 with libpcap (default config, PCAP_LOOP_SLEEP 100 ms), AES+HMAC-SHA256 SPA on udp/62201"
}
func (f *fwknopdSystem) hasKnocks() bool { return true }
func (f *fwknopdSystem) hasDaemon() bool { return true }
func (f *fwknopdSystem) noiseTargets() []noiseTarget {
	// Random base64 of an SPA packet's usual length: each must be
	// decoded and its HMAC checked before it can be rejected.
	return []noiseTarget{{proto: unix.IPPROTO_UDP, from: 62201, to: 62201, payload: 180}}
}
func (f *fwknopdSystem) isKnock(proto uint8, port uint16) bool {
	return proto == unix.IPPROTO_UDP && port == 62201
}
func (f *fwknopdSystem) firewall() []string {
	if f.udp {
		// Its socket must receive the SPA packets.
		return []string{"-A INPUT -p udp --dport 62201 -j ACCEPT"}
	}
	return []string{"-A INPUT -p udp --dport 62201 -j DROP"}
}
func (f *fwknopdSystem) setup(e *env) error {
	f.key, f.mac = randB64(32), randB64(64)
	run := filepath.Join(e.dir, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(`PCAP_INTF br0;
PCAP_FILTER udp port 62201;
UDPSERV_PORT 62201;
FWKNOP_RUN_DIR %[1]s;
FWKNOP_PID_FILE %[1]s/fwknopd.pid;
DIGEST_FILE %[1]s/digest.cache;
FIREWALL_EXE /usr/sbin/iptables;
`, run)
	access := fmt.Sprintf(`SOURCE ANY
OPEN_PORTS tcp/8080
KEY_BASE64 %s
HMAC_KEY_BASE64 %s
FW_ACCESS_TIMEOUT 60
`, f.key, f.mac)
	rc := fmt.Sprintf(`[bench]
SPA_SERVER %s
SPA_SERVER_PORT 62201
ACCESS tcp/8080
ALLOW_IP source
KEY_BASE64 %s
HMAC_KEY_BASE64 %s
USE_HMAC Y
`, srvAddr, f.key, f.mac)
	for name, body := range map[string]string{"fwknopd.conf": conf, "access.conf": access, "fwknoprc": rc} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}
func (f *fwknopdSystem) daemonArgv(e *env) []string {
	argv := []string{"fwknopd", "-f", "-c", filepath.Join(e.dir, "fwknopd.conf"), "-a", filepath.Join(e.dir, "access.conf"),
		"-i", "br0", "-p", filepath.Join(e.dir, "run", "fwknopd.pid"), "-r", filepath.Join(e.dir, "run")}
	if f.udp {
		argv = append(argv, "-U")
	}
	return argv
}
func (f *fwknopdSystem) ready(e *env, log string) bool {
	return strings.Contains(log, "Starting fwknopd main event loop") || strings.Contains(log, "UDP server")
}
func (f *fwknopdSystem) client(e *env, src netip.Addr) *exec.Cmd {
	c := exec.Command("fwknop", "--rc-file", filepath.Join(e.dir, "fwknoprc"), "-n", "bench", "--no-save-args")
	c.Env = append(os.Environ(), "HOME="+e.dir)
	return c
}
func (f *fwknopdSystem) reset(e *env) error {
	_, err := e.topo.srv.run("iptables", "-w", "-F", "FWKNOP_INPUT")
	return err
}
func (f *fwknopdSystem) drops(*env, *daemon) string { return "" }

// ---- tcpdump: the cost of capture alone ----

type tcpdumpSystem struct{}

const spanFilter = "dst host 198.18.0.1 and ((udp and dst portrange 20480-30719) or (tcp and dst portrange 20480-30719 and tcp[tcpflags] & tcp-syn != 0))"

func (tcpdumpSystem) name() string { return "tcpdump-floor" }
func (tcpdumpSystem) describe() string {
	return "tcpdump -w /dev/null with a filter for cipherknock's span, under the same noise (no knocks)"
}
func (tcpdumpSystem) hasKnocks() bool             { return false }
func (tcpdumpSystem) hasDaemon() bool             { return true }
func (tcpdumpSystem) noiseTargets() []noiseTarget { return ckNoise }
func (tcpdumpSystem) isKnock(uint8, uint16) bool  { return false }
func (tcpdumpSystem) firewall() []string          { return ckFirewall }
func (tcpdumpSystem) setup(*env) error            { return nil }
func (tcpdumpSystem) daemonArgv(e *env) []string {
	return []string{"tcpdump", "-i", "br0", "-n", "-p", "-w", "/dev/null", spanFilter}
}
func (tcpdumpSystem) ready(e *env, log string) bool     { return strings.Contains(log, "listening on") }
func (tcpdumpSystem) client(*env, netip.Addr) *exec.Cmd { return nil }
func (tcpdumpSystem) reset(*env) error                  { return nil }
func (tcpdumpSystem) drops(e *env, d *daemon) string {
	// SIGUSR1 makes tcpdump print its counters on stderr.
	d.cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(200 * time.Millisecond)
	m := regexp.MustCompile(`(\d+) packets dropped by kernel`).FindAllStringSubmatch(d.logText(), -1)
	if len(m) == 0 {
		return "?"
	}
	return m[len(m)-1][1]
}

// ---- cipherknock ----

var ckNoise = []noiseTarget{
	{proto: unix.IPPROTO_UDP, from: 20480, to: 30719, span: true},
	{proto: unix.IPPROTO_TCP, from: 20480, to: 30719, span: true},
}

var ckFirewall = []string{
	"-A INPUT -p udp --dport 20480:30719 -j DROP",
	"-A INPUT -p tcp --dport 20480:30719 -j DROP",
}

// cipherknockSystem is cipherknockd with one of its capture modes:
// afpacket (the default, named plain "cipherknock"), nflog or log (from
// /dev/kmsg).
type cipherknockSystem struct{ capture string }

func (s cipherknockSystem) name() string {
	if s.capture == "" || s.capture == "afpacket" {
		return "cipherknock"
	}
	return "cipherknock-" + s.capture
}
func (s cipherknockSystem) describe() string {
	switch s.capture {
	case "nflog":
		return "cipherknockd reading an NFLOG group its iptables chain logs the span to (capture = nflog), source-mode knock of 24 UDP datagrams"
	case "log":
		return "cipherknockd reading the kernel log lines its iptables chain writes for the span, from /dev/kmsg (capture = log; no noise phases: every noise packet would be a kernel log line)"
	}
	return "cipherknockd (AF_PACKET + kernel BPF, iptables backend with ipset grants), source-mode knock of 24 UDP datagrams"
}

// latencyOnly: log mode is measured for latency only.
func (s cipherknockSystem) latencyOnly() bool         { return s.capture == "log" }
func (cipherknockSystem) hasKnocks() bool             { return true }
func (cipherknockSystem) hasDaemon() bool             { return true }
func (cipherknockSystem) noiseTargets() []noiseTarget { return ckNoise }
func (cipherknockSystem) isKnock(proto uint8, port uint16) bool {
	return port >= 20480 && port <= 30719
}
func (cipherknockSystem) firewall() []string { return ckFirewall }
func (s cipherknockSystem) setup(e *env) error {
	if e.bin == "" {
		return fmt.Errorf("cipherknock binaries are not built (cmd/cipherknock and cmd/cipherknockd missing)")
	}
	k, err := crypto.GenerateKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.dir, "user.key"), []byte(k.Encode()+"\n"), 0o600); err != nil {
		return err
	}
	state := filepath.Join(e.dir, "state")
	if e.stateDir != "" {
		state = e.stateDir
	}
	conf := fmt.Sprintf(`[daemon]
realm = bench.example
span-base = 20480
interfaces = br0
firewall = iptables
state-dir = %[2]s
control-socket = %[1]s/cipherknockd.sock
%[3]s
[user bench]
index = 0
key-file = %[1]s/user.key
ports = tcp/8080
max-duration = 3600
`, e.dir, state, s.captureConf())
	return os.WriteFile(filepath.Join(e.dir, "cipherknockd.conf"), []byte(conf), 0o600)
}

func (s cipherknockSystem) captureConf() string {
	switch s.capture {
	case "nflog":
		return "capture = nflog\nnflog-group = 100\n"
	case "log":
		return "capture = log\nlog-source = kmsg\nlog-prefix = ck-bench:\n"
	}
	return ""
}
func (cipherknockSystem) daemonArgv(e *env) []string {
	argv := []string{filepath.Join(e.bin, "cipherknockd"), "run", "-c", filepath.Join(e.dir, "cipherknockd.conf")}
	if e.cpuProfile != "" {
		argv = append(argv, "--cpu-profile", e.cpuProfile)
	}
	return argv
}
func (cipherknockSystem) ready(e *env, log string) bool {
	// Ready once it answers on its control socket.
	_, err := e.topo.srv.run(filepath.Join(e.bin, "cipherknockd"), "status", "-c", filepath.Join(e.dir, "cipherknockd.conf"))
	return err == nil
}
func (cipherknockSystem) client(e *env, src netip.Addr) *exec.Cmd {
	argv := []string{"knock", srvAddr.String(),
		"--key-file", filepath.Join(e.dir, "user.key"), "--realm", "bench.example", "--user", "0",
		"--port", "8080", "--proto", "tcp", "--duration", "60s", "--no-confirm", "-4", "-q"}
	if e.pacing > 0 {
		argv = append(argv, "--pacing", e.pacing.String())
	}
	return exec.Command(filepath.Join(e.bin, "cipherknock"), argv...)
}
func (cipherknockSystem) reset(e *env) error {
	// Over netlink: a process per knock would cost the noise sender.
	return e.topo.srvNL.IpsetFlush("cipherknock4")
}
func (cipherknockSystem) drops(e *env, d *daemon) string {
	out, err := e.topo.srv.run(filepath.Join(e.bin, "cipherknockd"), "status", "--json", "-c", filepath.Join(e.dir, "cipherknockd.conf"))
	if err != nil {
		return "?"
	}
	var st any
	if json.Unmarshal([]byte(out), &st) != nil {
		return "?"
	}
	if v, ok := findDrops(st); ok {
		return strconv.FormatUint(v, 10)
	}
	return ""
}

// memNote says how the daemon bounds its per-source state, from its
// status.
func (cipherknockSystem) memNote(e *env) string {
	out, err := e.topo.srv.run(filepath.Join(e.bin, "cipherknockd"), "status", "--json", "-c", filepath.Join(e.dir, "cipherknockd.conf"))
	if err != nil {
		return ""
	}
	var st struct {
		Sources    int    `json:"sources"`
		Cap        int    `json:"source_capacity"`
		TableBytes int64  `json:"table_bytes"`
		Evictions  uint64 `json:"evictions"`
	}
	if json.Unmarshal([]byte(out), &st) != nil || st.Cap == 0 {
		return ""
	}
	return fmt.Sprintf("tracks %d of %d sources (table %.1f MiB), %d evicted", st.Sources, st.Cap, float64(st.TableBytes)/(1<<20), st.Evictions)
}

// findDrops looks for a counter of dropped packets in the daemon's status.
func findDrops(v any) (uint64, bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if f, ok := x.(float64); ok && strings.Contains(strings.ToLower(k), "drop") {
				return uint64(f), true
			}
		}
		for _, x := range v {
			if n, ok := findDrops(x); ok {
				return n, true
			}
		}
	}
	return 0, false
}
