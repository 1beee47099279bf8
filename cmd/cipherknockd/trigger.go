package main

import (
	"fmt"
	"slices"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/sniff"
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
