package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/sniff"
	"github.com/cipherknock/cipherknock/trigger"
)

// triggerCapture adds cfg's triggers to a capture configuration: their
// outbound ports; the interfaces they are seen on (every interface with
// an address if a trigger names none); on a host, the packets it sends.
func triggerCapture(cfg *config.Config, sc *sniff.Config) {
	if len(cfg.Triggers) == 0 {
		return
	}
	sc.Outgoing = cfg.TriggerMode != config.TriggerNAT
	all := false
	for _, r := range cfg.Triggers {
		sc.Triggers = append(sc.Triggers, r.Out)
		all = all || len(r.Inside) == 0
		for _, n := range r.Inside {
			if !slices.Contains(sc.Inside, n) {
				sc.Inside = append(sc.Inside, n)
			}
		}
	}
	if all {
		sc.Inside = nil
	}
}

// triggerSummary is check-config's word on the triggers, if any.
func triggerSummary(cfg *config.Config) string {
	if len(cfg.Triggers) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d triggers (trigger-mode %s)", len(cfg.Triggers), cfg.TriggerMode)
}

// sniffSource delivers knocks and trigger packets from one Sniffer.
type sniffSource struct{ s *sniff.Sniffer }

func (s sniffSource) Run(ctx context.Context, handle func(netip.Addr, uint16)) error {
	return s.RunTriggers(ctx, handle, nil)
}

// RunTriggers hands knock packets to handle and trigger packets to trig,
// through one Packet reused for every trigger packet.
func (s sniffSource) RunTriggers(ctx context.Context, handle func(netip.Addr, uint16), trig func(*trigger.Packet)) error {
	var tp trigger.Packet
	return s.s.Run(ctx, func(p *sniff.Packet) {
		if p.Kind == sniff.Knock {
			handle(p.Src, p.DstPort)
			return
		}
		if trig != nil {
			tp = trigger.Packet{Inside: p.Src, Remote: p.Dst, Proto: p.Transport, DstPort: p.DstPort, Ifindex: p.Ifindex}
			trig(&tp)
		}
	})
}

var _ daemon.TriggerSource = sniffSource{}

// CaptureStats implements daemon.StatsSource.
func (s sniffSource) CaptureStats() daemon.CaptureStats {
	return captureStats(s.s.Stats())
}
