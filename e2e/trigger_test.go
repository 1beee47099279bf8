package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
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
	w.host1 = l.Addr4
	gwIn2, l := nstest.Connect(w.gw, w.in2, 62)
	w.host2 = l.Addr4
	gwOut1, l := nstest.Connect(w.gw, w.out1, 63)
	w.server1, w.public1 = l.Addr4, gwOut1.Addr4
	gwOut2, l := nstest.Connect(w.gw, w.out2, 64)
	w.server2, w.public2 = l.Addr4, gwOut2.Addr4
	w.in1.Run("ip", "route", "add", "default", "via", gwIn1.Addr4.String())
	w.in2.Run("ip", "route", "add", "default", "via", gwIn2.Addr4.String())
	w.gw.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The gateway's own NAT, which is not the daemon's business: inside
	// hosts leave with its address.
	w.gw.Run("nft", fmt.Sprintf("add table ip masq; add chain ip masq post { type nat hook postrouting priority srcnat; }; "+
		"add rule ip masq post oifname { %s, %s } masquerade", gwOut1.Name, gwOut2.Name))

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
	serve(t, w.out2, netip.AddrPortFrom(w.server2, smtpPort), "smtp")
	serve(t, w.in1, netip.AddrPortFrom(w.host1, identPort), "ident host1")
	serve(t, w.in2, netip.AddrPortFrom(w.host2, identPort), "ident host2")

	w.log = filepath.Join(w.dir, "daemon.log")
	f, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := w.gw.Command(daemonBin, "run", "-c", w.conf)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.d = &daemonProc{cmd: cmd, log: w.log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(w.d.done) }()
	t.Cleanup(func() {
		w.d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-w.d.done:
		case <-time.After(10 * time.Second):
			w.d.cmd.Process.Kill()
			<-w.d.done
		}
		w.gw.Try(daemonBin, "stop", "-c", w.conf)
	})
	w.waitLog("cipherknockd running", "port triggering")
	return w
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
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(banner))
			c.Close()
		}
	}()
}

// reach connects from ns to addr and returns the server's banner, or an
// error if the connection fails (refused or unanswered).
func reach(ns *nstest.NS, addr netip.AddrPort) (string, error) {
	var banner []byte
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 700*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		banner, err = io.ReadAll(c)
		return err
	})
	return string(banner), err
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

func (w *natWorld) status() daemon.Status {
	w.t.Helper()
	out, err := w.gw.Try(daemonBin, "status", "--json", "-c", w.conf)
	if err != nil {
		w.t.Fatalf("status: %v\n%s", err, out)
	}
	var s daemon.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		w.t.Fatalf("status: %v\n%s", err, out)
	}
	return s
}

// TestTriggerNAT is the example end to end, with on-conflict =
// refuse: before the trigger the outside server cannot reach the inside
// host's ident port; after the inside host connects out to the server's
// smtp port, that server (and no other) reaches it through the gateway's
// public address, the status listing shows the trigger's grant, a second
// inside host triggering the same port is refused and logged, and after
// the configured time nobody gets through.
func TestTriggerNAT(t *testing.T) {
	w := newNATWorld(t, 5, "refuse")
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
		if g.Kind == daemon.KindTrigger && g.Trigger == "ident" && g.Addr == w.server1.String() &&
			g.Port == identPort && g.Inside == netip.AddrPortFrom(w.host1, identPort).String() && g.Left > 0 {
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
	if !poll(15*time.Second, func() bool {
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

	if out, err := w.gw.Try(daemonBin, "stop", "-c", w.conf); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if out, err := w.gw.Try("nft", "list", "table", "inet", "cipherknock-nat"); err == nil {
		t.Errorf("NAT table left after stop:\n%s", out)
	}
	w.shut(w.out1, ident1, "after stop")
}
