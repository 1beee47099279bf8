package trigger

import (
	"fmt"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// Limits of a [trigger NAME] section.
const (
	MaxDuration   = 86400 // seconds: a trigger opens a door for at most a day
	MaxInboundLen = 1024  // ports in an inbound range: one kernel entry each on a NAT gateway
)

// Conflict says what happens when a second inside host fires a trigger
// whose inbound mapping another inside host holds (NAT gateways only).
type Conflict uint8

const (
	// Refuse keeps the mapping with the host that holds it until it
	// expires; the newcomer is refused.
	Refuse Conflict = iota
	// LastWins moves the mapping to the newcomer.
	LastWins
)

func (c Conflict) String() string {
	switch c {
	case Refuse:
		return "refuse"
	case LastWins:
		return "last-wins"
	}
	return fmt.Sprintf("conflict(%d)", uint8(c))
}

// Rule is one [trigger NAME] section.
//
// Inside names the interfaces where the outbound packet that fires the
// trigger is seen: on a gateway, those it arrives on from the inside
// hosts; on a host that triggers for itself, those it leaves by.
type Rule struct {
	Name       string
	Out        ports.Range   // outbound protocol/ports that fire the trigger
	In         ports.Range   // inbound protocol/ports it opens
	Duration   time.Duration // whole seconds, 1..MaxDuration
	Inside     []string      // interfaces the trigger is seen on (see below); empty: any
	Outside    []string      // interfaces the inbound connection may arrive on; empty: any
	OnConflict Conflict
	Line       int // line of the section header
}

// Clash returns the first of rules whose inbound range overlaps r's
// without being equal to it, or nil. Inbound ranges of the same protocol
// must be equal or disjoint, so that a NAT mapping moves from one inside
// host to another as a whole.
func Clash(rules []*Rule, r *Rule) *Rule {
	for _, a := range rules {
		if a.In != r.In && a.In.Overlaps(r.In) {
			return a
		}
	}
	return nil
}
