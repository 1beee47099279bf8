package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
)

type fwBackend = firewall.Backend

// newBackend builds the firewall backend the configuration names. It
// changes nothing in the kernel: the daemon calls Setup. For "auto" it
// logs which backend it picked and why.
func newBackend(cfg *config.Config, log *slog.Logger) (firewall.Backend, error) {
	opts := cfg.FirewallOptions(fmt.Sprintf("cipherknockd pid=%d config=%s", os.Getpid(), cfg.File))
	switch cfg.Firewall {
	case "nftables":
		return firewall.NewNFTables(opts)
	case "iptables":
		return firewall.NewIPTables(opts)
	case "command":
		b, err := firewall.NewCommand(cfg.CommandConfig(log), opts)
		if err != nil {
			return nil, err
		}
		return journaled{b}, nil
	case "auto", "":
		b, reason, err := firewall.Auto(opts)
		if err != nil {
			return nil, err
		}
		log.Info("firewall chosen", "firewall", b.Name(), "reason", reason)
		return b, nil
	}
	return nil, fmt.Errorf("firewall %q: unknown backend", cfg.Firewall)
}

// journaled is the command backend as the daemon uses it. Its Teardown
// reads the journal first (Setup does, and does it once), so that
// "cipherknockd remove" with no daemon running closes the grants a previous
// run left open instead of finding none.
type journaled struct{ firewall.Backend }

func (j journaled) Teardown(ctx context.Context) error {
	if err := j.Backend.Setup(ctx); err != nil {
		return err
	}
	return j.Backend.Teardown(ctx)
}

// Close leaves the grants open and on record for the next start.
func (j journaled) Close() error {
	if c, ok := j.Backend.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// lockName names the firewall lock of a backend's objects: those of
// every backend carry the configuration's firewall-name.
func lockName(backend, name string) string {
	return backend + "-" + name
}
