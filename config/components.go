package config

import (
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

// What each component is given. The configuration is read here once; the
// firewall backends and the capture get their own plain options from the
// methods below, so that no component reads a Config, and cmd/ maps
// nothing itself.

// CommandJournal is the command backend's record of open grants, in the
// state directory: grants a crash left open are closed from it at the
// next start.
const CommandJournal = "command.journal"

// Protected returns what the firewall keeps closed to everyone without a
// grant: the users' ports, the triggers' inbound ports, and the knock span
// for both transports, so that the host never answers a packet on the
// span (SPEC.md §11). The daemon sees knocks below the firewall, so
// dropping them costs it nothing.
func (c *Config) Protected() []ports.Range {
	return spanProtect(c.Protect(), c.Span)
}

func spanProtect(users []ports.Range, sp encoding.Span) []ports.Range {
	out := slices.Clone(users)
	for _, p := range []ports.Proto{ports.TCP, ports.UDP} {
		out = append(out, ports.Range{Proto: p, From: sp.Base, To: sp.Last()})
	}
	return ports.Merge(out)
}

// FirewallLog is what the firewall logs for a capture that reads its log:
// the knock span, to the NFLOG group (capture = nflog) or to the kernel
// log with the prefix (capture = log). The command backend logs nothing
// of ours: with capture = log its firewall (an appliance, say) has its
// own logging rule.
func (c *Config) FirewallLog() firewall.Log {
	span := spanProtect(nil, c.Span)
	switch c.Capture {
	case "nflog":
		return firewall.Log{Ports: span, Group: c.NFLogGroup}
	case "log":
		if c.Firewall == "command" {
			return firewall.Log{}
		}
		return firewall.Log{Ports: span, Prefix: c.LogPrefix}
	}
	return firewall.Log{}
}

// FirewallOptions returns every backend's options; tag is stored in the
// objects a kernel backend makes, to name the daemon that owns them.
func (c *Config) FirewallOptions(tag string) firewall.Options {
	return firewall.Options{Protect: c.Protected(), Log: c.FirewallLog(), Name: c.FirewallName, NoOwner: c.FirewallNoOwner, Tag: tag}
}

// CommandConfig is the command backend's configuration: the templates as
// the file split them (no shell ever sees them), and the journal in the
// state directory.
func (c *Config) CommandConfig(log *slog.Logger) firewall.CommandConfig {
	return firewall.CommandConfig{
		Open:        c.CommandOpen,
		Close:       c.CommandClose,
		Open6:       c.CommandOpen6,
		Close6:      c.CommandClose6,
		Timeout:     c.CommandTimeout,
		JournalPath: filepath.Join(c.StateDir, CommandJournal),
		Log:         log,
	}
}

// SniffConfig says what the capture reads: knocks on the configured
// interfaces and the triggers' packets (triggers need capture = afpacket,
// which the parser checks: the other captures see only what the firewall
// logs of the span). doctor marks the interfaces by the same value.
func (c *Config) SniffConfig() sniff.Config {
	sc := sniff.Config{Span: c.Span, Interfaces: c.Interfaces, Loopback: c.Loopback}
	if len(c.Triggers) == 0 {
		return sc
	}
	sc.Outgoing = c.TriggerMode != TriggerNAT
	all := false
	for _, r := range c.Triggers {
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
	return sc
}

// LogCaptureConfig is what capture = log reads: its source and the prefix
// of the lines that are the firewall's.
func (c *Config) LogCaptureConfig() sniff.LogConfig {
	return sniff.LogConfig{Source: c.LogSource, Prefix: c.LogPrefix}
}
