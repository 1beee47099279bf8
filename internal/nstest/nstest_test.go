package nstest

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestConnect checks that both families cross the veth pair and that a
// socket opened in Do lives in the namespace. The dial's 10 s is a
// generous bound, not a measurement: a first IPv6 SYN waits for neighbour
// discovery, and a lost one is sent again after a second, which a machine
// at load 20 can stretch past the 2 s this test once allowed.
func TestConnect(t *testing.T) {
	a, b := New(t, "a"), New(t, "b")
	la, lb := Connect(a, b, 7)
	for _, pair := range [][2]netip.Addr{{la.Addr4, lb.Addr4}, {la.Addr6, lb.Addr6}} {
		var ln net.Listener
		if err := b.Do(func() (err error) {
			ln, err = net.Listen("tcp", netip.AddrPortFrom(pair[1], 0).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if err := a.Do(func() error {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			t.Fatalf("%s -> %s: %v", pair[0], ln.Addr(), err)
		}
		ln.Close()
	}
}

const skipChildEnv = "CK_NSTEST_SKIP_CHILD"

// TestSkipChild is run by TestStrictSkipFails as a child process; run on
// its own it does nothing.
func TestSkipChild(t *testing.T) {
	if os.Getenv(skipChildEnv) == "" {
		return
	}
	Skip(t, "needs a tool that is not here")
}

// TestStrictSkipFails: Skip skips, unless CIPHERKNOCK_STRICT=1, where it
// fails.
func TestStrictSkipFails(t *testing.T) {
	for _, strict := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipChild$", "-test.v")
		cmd.Env = append(os.Environ(), skipChildEnv+"=1", StrictEnv+"="+strict)
		out, err := cmd.CombinedOutput()
		switch {
		case strict == "" && (err != nil || !strings.Contains(string(out), "--- SKIP: TestSkipChild")):
			t.Errorf("not strict: %v\n%s", err, out)
		case strict == "1" && (err == nil || !strings.Contains(string(out), "--- FAIL: TestSkipChild") || !strings.Contains(string(out), "needs a tool that is not here")):
			t.Errorf("strict: %v\n%s", err, out)
		}
	}
}
