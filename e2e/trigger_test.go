package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/internal/nstest"
)

// natWorld is port triggering end to end: two inside hosts, each on its
// own link to a gateway that masquerades them and runs cipherknockd in
// trigger-mode = nat, and two outside servers on two outside links. The
// outside servers have no route to the inside networks: they reach an
// inside host only through the gateway's address.
type natWorld struct {
	t                        *testing.T
	dir, conf                string
	gw, in1, in2, out1, out2 *nstest.NS
	host1, host2             netip.Addr // inside hosts
	server1, server2         netip.Addr // outside servers
	public1, public2         netip.Addr // the gateway's address as server1, server2 see it
	host1v6, server1v6       netip.Addr // the same over IPv6
	public1v6                netip.Addr
	log                      string
	d                        *daemonProc
}

// Ports of the trigger: an inside host connecting to a server's smtp port
// lets that server connect back to its ident port.
const (
	smtpPort  = 25
	identPort = 113
)

func newNATWorld(t *testing.T, duration int, onConflict string) *natWorld {
	requireTools(t)
	nstest.RequireTool(t, "nft")
	w := &natWorld{t: t, dir: t.TempDir()}
	w.gw = nstest.New(t, "tgw")
	w.in1, w.in2 = nstest.New(t, "tin1"), nstest.New(t, "tin2")
	w.out1, w.out2 = nstest.New(t, "tout1"), nstest.New(t, "tout2")
	gwIn1, l := nstest.Connect(w.gw, w.in1, 61)
	w.host1, w.host1v6 = l.Addr4, l.Addr6
	gwIn2, l := nstest.Connect(w.gw, w.in2, 62)
	w.host2 = l.Addr4
	gwOut1, l := nstest.Connect(w.gw, w.out1, 63)
	w.server1, w.public1 = l.Addr4, gwOut1.Addr4
	w.server1v6, w.public1v6 = l.Addr6, gwOut1.Addr6
	gwOut2, l := nstest.Connect(w.gw, w.out2, 64)
	w.server2, w.public2 = l.Addr4, gwOut2.Addr4
	w.in1.Run("ip", "route", "add", "default", "via", gwIn1.Addr4.String())
	w.in2.Run("ip", "route", "add", "default", "via", gwIn2.Addr4.String())
	w.in1.Run("ip", "-6", "route", "add", "default", "via", gwIn1.Addr6.String())
	w.in2.Run("ip", "-6", "route", "add", "default", "via", gwIn2.Addr6.String())
	w.gw.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	w.gw.Run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	// The gateway's own NAT, which is not the daemon's business: inside
	// hosts leave with its address.
	w.gw.Run("nft", fmt.Sprintf("add table ip masq; add chain ip masq post { type nat hook postrouting priority srcnat; }; "+
		"add rule ip masq post oifname { %[1]s, %[2]s } masquerade; "+
		"add table ip6 masq; add chain ip6 masq post { type nat hook postrouting priority srcnat; }; "+
		"add rule ip6 masq post oifname { %[1]s, %[2]s } masquerade", gwOut1.Name, gwOut2.Name))

	state := filepath.Join(w.dir, "state")
	w.conf = filepath.Join(w.dir, "cipherknockd.conf")
	conf := fmt.Sprintf(`[daemon]
realm = %s
firewall = iptables
state-dir = %s
control-socket = %s
trigger-mode = nat

[trigger ident]
outbound = tcp/%d
inbound = tcp/%d
duration = %d
inside = %s, %s
outside = %s, %s
on-conflict = %s
`, realm, state, filepath.Join(state, "control.sock"), smtpPort, identPort, duration,
		gwIn1.Name, gwIn2.Name, gwOut1.Name, gwOut2.Name, onConflict)
	if err := os.WriteFile(w.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := w.gw.Try(daemonBin, "check-config", "-c", w.conf); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}

	serve(t, w.out1, netip.AddrPortFrom(w.server1, smtpPort), "smtp")
	serve(t, w.out1, netip.AddrPortFrom(w.server1v6, smtpPort), "smtp")
	serve(t, w.out2, netip.AddrPortFrom(w.server2, smtpPort), "smtp")
	serve(t, w.in1, netip.AddrPortFrom(w.host1, identPort), "ident host1")
	serve(t, w.in1, netip.AddrPortFrom(w.host1v6, identPort), "ident host1 over IPv6")
	serve(t, w.in2, netip.AddrPortFrom(w.host2, identPort), "ident host2")

	w.start()
	t.Cleanup(func() {
		w.kill(os.Interrupt)
		w.gw.Try(daemonBin, "remove", "-c", w.conf)
	})
	return w
}

// start runs the daemon in the gateway, with a log of its own.
func (w *natWorld) start() {
	w.t.Helper()
	w.log = filepath.Join(w.dir, fmt.Sprintf("daemon-%d.log", time.Now().UnixNano()))
	f, err := os.Create(w.log)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	cmd := w.gw.Command(daemonBin, "run", "-c", w.conf)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.d = &daemonProc{cmd: cmd, log: w.log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(w.d.done) }()
	w.waitLog("cipherknockd running", "port triggering")
}

// kill sends sig to the daemon, if it runs, and waits for it to exit.
func (w *natWorld) kill(sig os.Signal) {
	if w.d == nil {
		return
	}
	w.d.cmd.Process.Signal(sig)
	select {
	case <-w.d.done:
	case <-time.After(10 * time.Second):
		w.d.cmd.Process.Kill()
		<-w.d.done
	}
	w.d = nil
}

// waitLog waits until the daemon's log holds every one of subs.
func (w *natWorld) waitLog(subs ...string) string {
	w.t.Helper()
	var text string
	if !poll(15*time.Second, func() bool {
		b, _ := os.ReadFile(w.log)
		text = string(b)
		for _, s := range subs {
			if !strings.Contains(text, s) {
				return false
			}
		}
		return true
	}) {
		w.t.Fatalf("log lacks %q:\n%s", subs, text)
	}
	return text
}

// serve runs a TCP server at addr in ns that writes banner to each client.
func serve(t *testing.T, ns *nstest.NS, addr netip.AddrPort, banner string) {
	t.Helper()
	ns.Serve(addr.String(), func(c net.Conn) { c.Write([]byte(banner)) })
}

// reach connects from ns to addr and returns the server's banner, or an
// error if the connection fails (refused or unanswered).
func reach(ns *nstest.NS, addr netip.AddrPort) (string, error) {
	return ns.Fetch(addr.String(), 700*time.Millisecond)
}

// reaches waits until ns reaches addr and is greeted with want.
func (w *natWorld) reaches(ns *nstest.NS, addr netip.AddrPort, want string) {
	w.t.Helper()
	var got string
	var err error
	if !poll(10*time.Second, func() bool {
		got, err = reach(ns, addr)
		return err == nil && got == want
	}) {
		w.t.Fatalf("%s does not reach %q at %v: got %q, %v\n%s", ns.Name, want, addr, got, err, w.logText())
	}
}

// shut checks that ns cannot connect to addr.
func (w *natWorld) shut(ns *nstest.NS, addr netip.AddrPort, when string) {
	w.t.Helper()
	if got, err := reach(ns, addr); err == nil {
		w.t.Fatalf("%s: %s reached %v and was greeted %q", when, ns.Name, addr, got)
	}
}

func (w *natWorld) logText() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

// connectOut makes an inside host connect to a server's trigger port.
func (w *natWorld) connectOut(ns *nstest.NS, server netip.Addr) {
	w.t.Helper()
	if got, err := reach(ns, netip.AddrPortFrom(server, smtpPort)); err != nil || got != "smtp" {
		w.t.Fatalf("%s: outbound connection to %v: %q %v", ns.Name, server, got, err)
	}
}

func (w *natWorld) status() daemon.Status { return statusOf(w.t, w.gw, w.conf) }

// TestTriggerNAT is the example end to end, with on-conflict =
// refuse: before the trigger the outside server cannot reach the inside
// host's ident port; after the inside host connects out to the server's
// smtp port, that server (and no other) reaches it through the gateway's
// public address, the status listing shows the trigger's grant, a second
// inside host triggering the same port is refused and logged, and after
// the configured time nobody gets through.
func TestTriggerNAT(t *testing.T) {
	w := newNATWorld(t, 10, "refuse")
	ident1 := netip.AddrPortFrom(w.public1, identPort)
	ident2 := netip.AddrPortFrom(w.public2, identPort)

	w.shut(w.out1, ident1, "before the trigger")
	w.connectOut(w.in1, w.server1)
	w.reaches(w.out1, ident1, "ident host1")
	w.waitLog("trigger: opened", "trigger=ident", "remote="+w.server1.String(), "inside="+w.host1.String())
	w.shut(w.out2, ident2, "another outside server")

	s := w.status()
	var found bool
	for _, g := range s.Grants {
		if g.Kind == daemon.KindTrigger && g.Trigger == "ident" && g.Addr == w.server1 &&
			g.Port == identPort && g.Inside == netip.AddrPortFrom(w.host1, identPort) && g.Left > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("status lacks the trigger's grant: %+v", s.Grants)
	}
	out := w.gw.Run(daemonBin, "status", "-c", w.conf)
	if want := "trigger ident -> " + netip.AddrPortFrom(w.host1, identPort).String(); !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}

	// The second inside host asks for the same port from the same server:
	// refused, logged, and the first keeps it.
	w.connectOut(w.in2, w.server1)
	w.waitLog("trigger: refused, mapping held by another inside host", "inside="+w.host2.String(), "holder="+w.host1.String())
	w.reaches(w.out1, ident1, "ident host1")

	// The kernel closes the door on time, daemon or not.
	if !poll(20*time.Second, func() bool {
		_, err := reach(w.out1, ident1)
		return err != nil
	}) {
		t.Fatalf("still open long after the trigger's time\n%s", w.logText())
	}
	w.waitLog("trigger: expired", "remote="+w.server1.String())
	for _, g := range w.status().Grants {
		if g.Kind == daemon.KindTrigger {
			t.Errorf("status still lists %+v", g)
		}
	}
}

// TestTriggerNATLastWins: with on-conflict = last-wins a second inside
// host takes the port over, which is logged, and the first may take it
// back; stop removes the NAT table.
func TestTriggerNATLastWins(t *testing.T) {
	w := newNATWorld(t, 60, "last-wins")
	ident1 := netip.AddrPortFrom(w.public1, identPort)

	w.connectOut(w.in1, w.server1)
	w.reaches(w.out1, ident1, "ident host1")
	w.connectOut(w.in2, w.server1)
	w.reaches(w.out1, ident1, "ident host2")
	w.waitLog("trigger: mapping taken over (last-wins)", "inside="+w.host2.String(), "previous="+w.host1.String())
	w.connectOut(w.in1, w.server1)
	w.reaches(w.out1, ident1, "ident host1")
	w.shut(w.out2, netip.AddrPortFrom(w.public2, identPort), "another outside server")

	if out, err := w.gw.Try(daemonBin, "remove", "-c", w.conf); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if out, err := w.gw.Try("nft", "list", "table", "inet", "cipherknock-nat"); err == nil {
		t.Errorf("NAT table left after stop:\n%s", out)
	}
	w.shut(w.out1, ident1, "after stop")
}

// TestTriggerHost: a host that triggers for itself (trigger-mode = host),
// in the same daemon, configuration and status listing as the knocks.
// The trigger's inbound port is closed like a user's port; after the host
// connects out to a server's smtp port, that server (and no other)
// reaches the host's ident port, until the grant expires in the kernel.
// A knock meanwhile opens the user's port, and the status listing tells
// the two grants apart.
func TestTriggerHost(t *testing.T) {
	w := newWorld(t, "trigger-mode = host\n\n[trigger ident]\noutbound = tcp/25\ninbound = tcp/113\nduration = 8\n"+
		"\n[trigger game]\noutbound = udp/6000-6010\ninbound = tcp/7000-7001\nduration = 30\n")
	serve(t, w.client, netip.AddrPortFrom(w.clientAddr, smtpPort), "smtp")
	serve(t, w.server, netip.AddrPortFrom(netip.IPv4Unspecified(), identPort), "ident server")
	ident := netip.AddrPortFrom(w.srvAddr, identPort)
	ident3 := netip.AddrPortFrom(w.srvAddr3, identPort)
	w.waitLog("port triggering", "mode=host")

	if got, err := reach(w.client, ident); err == nil {
		t.Fatalf("before the trigger the client reached %q", got)
	}
	if got, err := reach(w.server, netip.AddrPortFrom(w.clientAddr, smtpPort)); err != nil || got != "smtp" {
		t.Fatalf("outbound connection: %q %v", got, err)
	}
	if !poll(10*time.Second, func() bool { got, err := reach(w.client, ident); return err == nil && got == "ident server" }) {
		t.Fatalf("the server connected to cannot reach the host's ident port\n%s", w.logText())
	}
	w.waitLog("trigger: opened", "trigger=ident", "remote="+w.clientAddr.String())
	if got, err := reach(w.third, ident3); err == nil {
		t.Fatalf("another host reached %q", got)
	}

	// A UDP datagram to a port of a range fires a trigger too.
	serve(t, w.server, netip.AddrPortFrom(netip.IPv4Unspecified(), 7001), "game server")
	game := netip.AddrPortFrom(w.srvAddr, 7001)
	if got, err := reach(w.client, game); err == nil {
		t.Fatalf("before the game trigger the client reached %q", got)
	}
	if err := w.server.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(w.clientAddr, 6007).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !poll(10*time.Second, func() bool { got, err := reach(w.client, game); return err == nil && got == "game server" }) {
		t.Fatalf("the UDP trigger did not open tcp/7001\n%s", w.logText())
	}

	w.clientKnock(w.client, w.srvAddr, 30*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	var knock, trig bool
	for _, g := range statusOf(t, w.server, w.conf).Grants {
		switch {
		case g.Kind == daemon.KindKnock && g.User == "alice" && g.Port == servicePort && g.Addr == w.clientAddr:
			knock = true
		case g.Kind == daemon.KindTrigger && g.Trigger == "game" && g.Port == 7001 && g.Addr == w.clientAddr:
			trig = true
		}
	}
	out := w.server.Run(daemonBin, "status", "-c", w.conf)
	if !knock || !trig || !strings.Contains(out, "knock alice") || !strings.Contains(out, "trigger game") {
		t.Errorf("status (knock %v, trigger %v):\n%s", knock, trig, out)
	}

	if !poll(15*time.Second, func() bool { _, err := reach(w.client, ident); return err != nil }) {
		t.Fatal("still open long after the trigger's time")
	}
	w.waitLog("trigger: expired", "remote="+w.clientAddr.String())
	w.mustOpen(w.client, w.srvAddr) // the knock's grant lasts longer
}

func statusOf(t *testing.T, ns *nstest.NS, conf string) daemon.Status {
	t.Helper()
	out, err := ns.Try(daemonBin, "status", "--json", "-c", conf)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var s daemon.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	return s
}

// TestTriggerNATRestart: forwards outlive the daemon in the kernel, and a
// daemon that starts again (or reloads) learns them back, so a second
// inside host is still refused the port the first one holds.
func TestTriggerNATRestart(t *testing.T) {
	w := newNATWorld(t, 60, "refuse")
	ident1 := netip.AddrPortFrom(w.public1, identPort)
	w.connectOut(w.in1, w.server1)
	w.reaches(w.out1, ident1, "ident host1")

	w.kill(os.Kill)
	w.reaches(w.out1, ident1, "ident host1") // the kernel keeps the forward
	w.start()
	w.waitLog("trigger: forwards restored from the kernel", "count=1")
	w.connectOut(w.in2, w.server1)
	w.waitLog("trigger: refused, mapping held by another inside host", "inside="+w.host2.String(), "holder="+w.host1.String())
	w.reaches(w.out1, ident1, "ident host1")

	if out, err := w.gw.Try(daemonBin, "reload", "-c", w.conf); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if !poll(10*time.Second, func() bool { return strings.Count(w.logText(), "forwards restored from the kernel") == 2 }) {
		t.Fatalf("reload did not restore the forwards:\n%s", w.logText())
	}
	var trig int
	for _, g := range w.status().Grants {
		if g.Kind == daemon.KindTrigger && g.Trigger == "ident" && g.Inside == netip.AddrPortFrom(w.host1, identPort) {
			trig++
		}
	}
	if trig != 1 {
		t.Errorf("status after restart and reload: %+v", w.status().Grants)
	}

	// remove with no daemon running removes the NAT table too.
	w.kill(os.Kill)
	if out, err := w.gw.Try(daemonBin, "remove", "-c", w.conf); err != nil || !strings.Contains(out, "was not running") {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if out, err := w.gw.Try("nft", "list", "table", "inet", "cipherknock-nat"); err == nil {
		t.Errorf("NAT table left after stop:\n%s", out)
	}
	w.shut(w.out1, ident1, "after stop")
}

// TestTriggerCheckConfig: trigger errors in a configuration are reported
// like the rest of the file's, FILE:LINE: message, and the daemon does not
// start on them.
func TestTriggerCheckConfig(t *testing.T) {
	requireTools(t)
	ns := nstest.New(t, "tcfg")
	conf := filepath.Join(t.TempDir(), "gw.conf")
	body := `[daemon]
realm = e2e
trigger-mode = nat
[trigger ident]
outbound = tcp/25
inbound = tcp/113
duration = 60
[trigger game]
outbound = udp/6000-6010
inbound = tcp/100-120
duration = 1 hour
inside = eth1
on-conflict = maybe
`
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		conf + ":4: [trigger ident] needs inside = INTERFACES with trigger-mode = nat: the interfaces the inside hosts are on",
		conf + `:11: duration: "1 hour" is not a whole number of seconds (like 60 or 1m)`,
		conf + `:13: on-conflict: "maybe" is not refuse or last-wins`,
	}
	for _, cmd := range []string{"check-config", "run"} {
		out, err := ns.Try(daemonBin, cmd, "-c", conf)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: %v, want exit status 2", cmd, err)
		}
		if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", cmd, got, strings.Join(want, "\n"))
		}
	}
}

// TestTriggerNATIPv6: the same over IPv6, where the gateway masquerades
// too: the forward goes to the IPv6 map.
func TestTriggerNATIPv6(t *testing.T) {
	w := newNATWorld(t, 60, "refuse")
	ident := netip.AddrPortFrom(w.public1v6, identPort)
	w.shut(w.out1, ident, "before the trigger")
	w.connectOut(w.in1, w.server1v6)
	w.reaches(w.out1, ident, "ident host1 over IPv6")
	w.shut(w.out1, netip.AddrPortFrom(w.public1, identPort), "over IPv4")
	var found bool
	for _, g := range w.status().Grants {
		found = found || g.Addr == w.server1v6 && g.Inside == netip.AddrPortFrom(w.host1v6, identPort)
	}
	if !found {
		t.Errorf("status lacks the IPv6 forward: %+v", w.status().Grants)
	}
}
