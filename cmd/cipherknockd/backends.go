package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
)

type fwBackend = firewall.Backend

// CommandJournal is the command backend's record of open grants, in the
// state directory: grants a crash left open are closed from it at the
// next start.
const CommandJournal = "command.journal"

// protect returns what the firewall keeps closed to everyone without a
// grant: the users' ports, and the knock span for both transports, so the
// host never answers a packet on the span (SPEC.md §11). The daemon sees
// knocks below the firewall, so dropping them costs it nothing.
func protect(cfg *config.Config) []ports.Range {
	return spanProtect(cfg.Protect(), cfg.Span)
}

func spanProtect(users []ports.Range, sp encoding.Span) []ports.Range {
	out := slices.Clone(users)
	for _, p := range []ports.Proto{ports.TCP, ports.UDP} {
		out = append(out, ports.Range{Proto: p, From: sp.Base, To: sp.Last()})
	}
	return ports.Merge(out)
}

// captureLog is what the firewall logs for a capture that reads its log:
// the knock span, to the NFLOG group (capture = nflog) or to the kernel
// log with the prefix (capture = log). The command backend logs nothing
// of ours: with capture = log its firewall (an appliance, say) has its
// own logging rule.
func captureLog(cfg *config.Config) firewall.Log {
	span := spanProtect(nil, cfg.Span)
	switch cfg.Capture {
	case "nflog":
		return firewall.Log{Ports: span, Group: cfg.NFLogGroup}
	case "log":
		if cfg.Firewall == "command" {
			return firewall.Log{}
		}
		return firewall.Log{Ports: span, Prefix: cfg.LogPrefix}
	}
	return firewall.Log{}
}

// newBackend builds the firewall backend the configuration names. It
// changes nothing in the kernel: the daemon calls Setup. For "auto" it
// logs which backend it picked and why.
func newBackend(cfg *config.Config, log *slog.Logger) (firewall.Backend, error) {
	opts := firewall.Options{Protect: protect(cfg), Log: captureLog(cfg), Name: cfg.FirewallName, NoOwner: cfg.FirewallNoOwner,
		Tag: fmt.Sprintf("cipherknockd pid=%d config=%s", os.Getpid(), cfg.File)}
	switch cfg.Firewall {
	case "nftables":
		return firewall.NewNFTables(opts)
	case "iptables":
		return firewall.NewIPTables(opts)
	case "command":
		b, err := firewall.NewCommand(commandConfig(cfg, log), opts)
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

// commandConfig is the command backend's configuration: the templates as
// the configuration file split them (no shell ever sees them), and the
// journal in the state directory.
func commandConfig(cfg *config.Config, log *slog.Logger) firewall.CommandConfig {
	return firewall.CommandConfig{
		Open:        cfg.CommandOpen,
		Close:       cfg.CommandClose,
		Open6:       cfg.CommandOpen6,
		Close6:      cfg.CommandClose6,
		Timeout:     cfg.CommandTimeout,
		JournalPath: filepath.Join(cfg.StateDir, CommandJournal),
		Log:         log,
	}
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
