package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
)

type fwBackend = firewall.Backend

// CommandJournal is the command backend's record of open grants, in the
// state directory.
const CommandJournal = "command.journal"

// newBackend builds the firewall backend the configuration names, closing
// the union of the users' ports to everyone without a grant. "auto" takes
// nftables when the kernel's nf_tables works, else iptables with ipset.
func newBackend(cfg *policy.Config, log *slog.Logger) (firewall.Backend, error) {
	opts := firewall.Options{Protect: cfg.Protect()}
	switch cfg.Firewall {
	case "iptables":
		return firewall.NewIPTables(opts)
	case "nftables":
		return firewall.NewNFTables(opts)
	case "auto":
		b, reason, err := firewall.Auto(opts)
		if err == nil {
			log.Debug("firewall backend chosen", "backend", b.Name(), "reason", reason)
		}
		return b, err
	case "command":
		return firewall.NewCommand(firewall.CommandConfig{
			Open: cfg.CommandOpen, Close: cfg.CommandClose,
			Open6: cfg.CommandOpen6, Close6: cfg.CommandClose6,
			Timeout:     cfg.CommandTimeout,
			JournalPath: filepath.Join(cfg.StateDir, CommandJournal),
			Log:         log,
		}, opts)
	}
	return nil, fmt.Errorf("firewall %q: unknown backend", cfg.Firewall)
}
