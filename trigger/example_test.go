package trigger_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// Package config parses each [trigger NAME] section into a Rule; the
// daemon feeds the engine every outbound connection attempt and carries
// out the decisions.
func Example() {
	rule := &trigger.Rule{
		Name:     "ident",
		Out:      ports.Range{Proto: ports.TCP, From: 25, To: 25},
		In:       ports.Range{Proto: ports.TCP, From: 113, To: 113},
		Duration: 60 * time.Second,
		Inside:   []string{"lan0"},
		Line:     10,
	}
	lan := func(name string) (int, bool) { return 3, name == "lan0" }
	e, err := trigger.NewEngine([]*trigger.Rule{rule}, trigger.Options{NAT: true, Index: lan})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	mailServer := netip.MustParseAddr("192.0.2.25")
	for _, host := range []string{"10.0.0.2", "10.0.0.3"} {
		p := &trigger.Packet{Inside: netip.MustParseAddr(host), Remote: mailServer, Proto: ports.TCP, DstPort: 25, Ifindex: 3}
		for _, d := range e.Observe(p, now, nil) {
			switch d.Action {
			case trigger.Open:
				for _, f := range d.Forwards() {
					fmt.Printf("forward %v for %v\n", f, d.Timeout)
				}
			case trigger.Refused:
				fmt.Printf("refused %v: held by %v\n", d.Inside, d.Holder)
			}
		}
	}
	// Output:
	// forward 192.0.2.25 -> tcp/113 -> 10.0.0.2:113 for 1m0s
	// refused 10.0.0.3: held by 10.0.0.2
}
