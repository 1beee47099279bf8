package main

import (
	"fmt"

	"github.com/cipherknock/cipherknock/config"
)

// triggerSummary is check-config's word on the triggers, if any.
func triggerSummary(cfg *config.Config) string {
	if len(cfg.Triggers) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d triggers (trigger-mode %s)", len(cfg.Triggers), cfg.TriggerMode)
}
