package nstest

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestConnect checks that both families cross the veth pair and that a
// socket opened in Do lives in the namespace.
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
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
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
