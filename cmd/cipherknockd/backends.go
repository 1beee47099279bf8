package main

import (
	"fmt"
	"log/slog"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
)

type fwBackend = firewall.Backend

// newBackend builds the firewall backend the configuration names, closing
// the union of the users' ports to everyone without a grant.
func newBackend(cfg *policy.Config, log *slog.Logger) (firewall.Backend, error) {
	opts := firewall.Options{Protect: cfg.Protect()}
	switch cfg.Firewall {
	case "iptables", "auto":
		return firewall.NewIPTables(opts)
	}
	return nil, fmt.Errorf("firewall %q: not available in this build", cfg.Firewall)
}
