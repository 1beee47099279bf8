package sniff

import (
	"fmt"
	"testing"

	"github.com/cipherknock/cipherknock/ports"
)

// TestInterfaceRule is the rule Config.Interfaces, Loopback and Inside
// document, case by case.
func TestInterfaceRule(t *testing.T) {
	var (
		lo     = Link{Name: "lo", Loopback: true}
		eth    = Link{Name: "eth0", Routable: true}
		veth   = Link{Name: "veth1"} // link-local only, or no address
		down   = Link{Name: "eth1", Routable: true, Up: false}
		named  = []string{"veth1", "lo2"}
		trig   = []ports.Range{{From: 25, To: 25}}
		inside = []string{"lan0"}
		lan    = Link{Name: "lan0"}
	)
	for _, c := range []struct {
		cfg            Config
		l              Link
		knocks, trigOn bool
	}{
		{Config{}, lo, false, false},
		{Config{}, eth, true, false},
		{Config{}, veth, false, false},
		{Config{}, down, true, false},
		{Config{Loopback: true}, lo, true, false},
		{Config{Interfaces: named}, veth, true, false},
		{Config{Interfaces: named}, eth, false, false},
		{Config{Interfaces: named}, lo, false, false},
		{Config{Interfaces: named, Loopback: true}, lo, true, false},
		{Config{Interfaces: []string{"lo"}}, lo, true, false},
		{Config{Triggers: trig}, eth, true, true},
		{Config{Triggers: trig}, lo, false, false},
		{Config{Triggers: trig, Loopback: true}, lo, true, false},
		{Config{Triggers: trig}, veth, false, false},
		{Config{Triggers: trig, Inside: inside}, lan, false, true},
		{Config{Triggers: trig, Inside: inside}, eth, true, false},
		{Config{Inside: inside}, lan, false, false}, // no triggers
	} {
		t.Run(fmt.Sprintf("%+v/%s", c.cfg, c.l.Name), func(t *testing.T) {
			if got := c.cfg.Knocks(c.l); got != c.knocks {
				t.Errorf("Knocks = %v", got)
			}
			if got := c.cfg.TriggersOn(c.l); got != c.trigOn {
				t.Errorf("TriggersOn = %v", got)
			}
		})
	}
}
