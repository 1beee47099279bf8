package config

import (
	"reflect"
	"strconv"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/trigger"
)

// Defaults of the [daemon] section.
const (
	DefaultFirewall          = "auto"
	DefaultStateDir          = "/var/lib/cipherknockd"
	DefaultControlSocket     = "/run/cipherknockd/control.sock"
	DefaultAssemblyTimeout   = 10 * time.Second
	DefaultMaxSources        = 65536
	DefaultReplayCacheSize   = 65536
	DefaultRejectLogInterval = 10 * time.Second
	DefaultFirewallCheck     = 2 * time.Second
	DefaultMaxDuration       = 3600 // seconds
	DefaultCapture           = "afpacket"
	DefaultNFLogGroup        = 100
	DefaultLogSource         = "kmsg"
	DefaultLogPrefix         = "cipherknock:"

	MinMaxSources      = 1024
	MaxMaxSources      = 1 << 22
	MinReplayCacheSize = 16
	MaxReplayCacheSize = 1 << 22
)

// Captures lists the accepted values of the capture key.
var Captures = []string{"afpacket", "nflog", "log"}

// Firewalls lists the accepted values of the firewall key.
var Firewalls = []string{"auto", "iptables", "nftables", "command"}

// key is one [daemon] key: the one place that says how it is read, what
// it defaults to and whether a reload may change it.
type key struct {
	name string
	// def is the default as the file would write it ("": none); Parse
	// reads it with parse before the file's own value.
	def string
	// restart: the daemon reads the key only when it starts, so a reload
	// keeps the old value, with a warning (RestartOnly).
	restart bool
	parse   func(p *parser, e *entry, c *Config)
	// fields returns pointers to the Config fields the key sets, for
	// RestartOnly to compare and copy.
	fields func(c *Config) []any
}

func f(ptrs ...any) []any { return ptrs }

// daemonKeys is the [daemon] section, in the order of cipherknockd.conf(5).
var daemonKeys = []key{
	{name: "realm", parse: func(p *parser, e *entry, c *Config) {
		if err := crypto.CheckRealm(e.value); err != nil {
			p.errorf(e.line, "realm: %v", err)
		}
		c.Realm = e.value
	}, fields: func(c *Config) []any { return f(&c.Realm) }},
	{name: "realm-key", parse: func(p *parser, e *entry, c *Config) { p.realmKey = e },
		fields: func(c *Config) []any { return f(&c.RealmKey) }},
	{name: "realm-key-file", parse: func(p *parser, e *entry, c *Config) { p.realmKeyFile = e },
		fields: func(c *Config) []any { return f(&c.RealmKey) }},
	{name: "span-base", def: strconv.Itoa(int(encoding.DefaultSpan.Base)), restart: true, parse: func(p *parser, e *entry, c *Config) {
		n, err := strconv.Atoi(e.value)
		if err != nil {
			p.errorf(e.line, "span-base: %s is not a number", lex.Quote(e.value))
			return
		}
		sp, err := encoding.NewSpan(n)
		if err != nil {
			p.errorf(e.line, "span-base: %v", err)
			return
		}
		c.Span = sp
	}, fields: func(c *Config) []any { return f(&c.Span) }},
	{name: "interfaces", restart: true, parse: func(p *parser, e *entry, c *Config) {
		c.InterfacesLine = e.line
		c.Interfaces = p.interfaces(e)
	}, fields: func(c *Config) []any { return f(&c.Interfaces) }},
	{name: "wait-for-interfaces", def: "no", restart: true, parse: func(p *parser, e *entry, c *Config) { c.WaitInterfaces = p.boolean(e) },
		fields: func(c *Config) []any { return f(&c.WaitInterfaces) }},
	{name: "loopback", def: "no", restart: true, parse: func(p *parser, e *entry, c *Config) { c.Loopback = p.boolean(e) },
		fields: func(c *Config) []any { return f(&c.Loopback) }},
	{name: "firewall", def: DefaultFirewall, restart: true, parse: func(p *parser, e *entry, c *Config) {
		c.FirewallLine = e.line
		c.Firewall = p.oneOf(e, Firewalls...)
	}, fields: func(c *Config) []any { return f(&c.Firewall) }},
	{name: "firewall-name", def: firewall.DefaultName, restart: true, parse: func(p *parser, e *entry, c *Config) {
		if err := firewall.CheckName(e.value); err != nil {
			p.errorf(e.line, "firewall-name: %v", err)
		}
		c.FirewallName = e.value
	}, fields: func(c *Config) []any { return f(&c.FirewallName) }},
	{name: "firewall-owner", def: "yes", restart: true, parse: func(p *parser, e *entry, c *Config) { c.FirewallNoOwner = !p.boolean(e) },
		fields: func(c *Config) []any { return f(&c.FirewallNoOwner) }},
	{name: "firewall-check-interval", def: secs(DefaultFirewallCheck), restart: true, parse: func(p *parser, e *entry, c *Config) {
		if d, ok := p.seconds(e, 1, 60); ok {
			c.FirewallCheck = d
		}
	}, fields: func(c *Config) []any { return f(&c.FirewallCheck) }},
	// The command backend is built at start (and again only when the
	// protected ports change), so its keys need a restart.
	{name: "command-open", restart: true, parse: func(p *parser, e *entry, c *Config) { c.CommandOpen = p.argv(e) },
		fields: func(c *Config) []any { return f(&c.CommandOpen) }},
	{name: "command-close", restart: true, parse: func(p *parser, e *entry, c *Config) { c.CommandClose = p.argv(e) },
		fields: func(c *Config) []any { return f(&c.CommandClose) }},
	{name: "command-open6", restart: true, parse: func(p *parser, e *entry, c *Config) { c.CommandOpen6 = p.argv(e) },
		fields: func(c *Config) []any { return f(&c.CommandOpen6) }},
	{name: "command-close6", restart: true, parse: func(p *parser, e *entry, c *Config) { c.CommandClose6 = p.argv(e) },
		fields: func(c *Config) []any { return f(&c.CommandClose6) }},
	{name: "command-timeout", restart: true, parse: func(p *parser, e *entry, c *Config) {
		if d, ok := p.seconds(e, 1, 300); ok {
			c.CommandTimeout = d
		}
	}, fields: func(c *Config) []any { return f(&c.CommandTimeout) }},
	{name: "command-drops", def: "no", restart: true, parse: func(p *parser, e *entry, c *Config) { c.CommandDrops = p.boolean(e) },
		fields: func(c *Config) []any { return f(&c.CommandDrops) }},
	{name: "window", def: itoa(crypto.DefaultWindow), parse: func(p *parser, e *entry, c *Config) {
		if d, ok := p.seconds(e, crypto.MinWindow, crypto.MaxWindow); ok {
			c.Window = int(d.Seconds())
		}
	}, fields: func(c *Config) []any { return f(&c.Window) }},
	{name: "assembly-timeout", def: secs(DefaultAssemblyTimeout), parse: func(p *parser, e *entry, c *Config) {
		if d, ok := p.seconds(e, 1, 60); ok {
			c.AssemblyTimeout = d
		}
	}, fields: func(c *Config) []any { return f(&c.AssemblyTimeout) }},
	{name: "max-sources", def: itoa(DefaultMaxSources), restart: true, parse: func(p *parser, e *entry, c *Config) {
		if n, ok := p.integer(e, MinMaxSources, MaxMaxSources); ok {
			c.MaxSources = n
		}
	}, fields: func(c *Config) []any { return f(&c.MaxSources) }},
	{name: "replay-cache-size", def: itoa(DefaultReplayCacheSize), restart: true, parse: func(p *parser, e *entry, c *Config) {
		if n, ok := p.integer(e, MinReplayCacheSize, MaxReplayCacheSize); ok {
			c.ReplayCacheSize = n
		}
	}, fields: func(c *Config) []any { return f(&c.ReplayCacheSize) }},
	{name: "state-dir", def: DefaultStateDir, restart: true, parse: func(p *parser, e *entry, c *Config) { c.StateDir = p.path(e) },
		fields: func(c *Config) []any { return f(&c.StateDir) }},
	{name: "control-socket", def: DefaultControlSocket, restart: true, parse: func(p *parser, e *entry, c *Config) { c.ControlSocket = p.path(e) },
		fields: func(c *Config) []any { return f(&c.ControlSocket) }},
	{name: "log-format", def: "text", restart: true, parse: func(p *parser, e *entry, c *Config) {
		if e.value != "text" && e.value != "json" {
			p.errorf(e.line, "log-format: %s is not text or json", lex.Quote(e.value))
		}
		c.LogFormat = e.value
	}, fields: func(c *Config) []any { return f(&c.LogFormat) }},
	{name: "log-level", def: "info", parse: func(p *parser, e *entry, c *Config) {
		switch e.value {
		case "debug", "info", "warn", "error":
		default:
			p.errorf(e.line, "log-level: %s is not debug, info, warn or error", lex.Quote(e.value))
		}
		c.LogLevel = e.value
	}, fields: func(c *Config) []any { return f(&c.LogLevel) }},
	{name: "reject-log-interval", def: secs(DefaultRejectLogInterval), restart: true, parse: func(p *parser, e *entry, c *Config) {
		if d, ok := p.seconds(e, 1, 3600); ok {
			c.RejectLogInterval = d
		}
	}, fields: func(c *Config) []any { return f(&c.RejectLogInterval) }},
	{name: "capture", def: DefaultCapture, restart: true, parse: func(p *parser, e *entry, c *Config) { c.Capture = p.oneOf(e, Captures...) },
		fields: func(c *Config) []any { return f(&c.Capture) }},
	{name: "nflog-group", def: itoa(DefaultNFLogGroup), restart: true, parse: func(p *parser, e *entry, c *Config) {
		if n, ok := p.integer(e, 1, 65535); ok {
			c.NFLogGroup = uint16(n)
		}
	}, fields: func(c *Config) []any { return f(&c.NFLogGroup) }},
	{name: "log-source", def: DefaultLogSource, restart: true, parse: func(p *parser, e *entry, c *Config) {
		switch e.value {
		case "kmsg", "-":
			c.LogSource = e.value
		default:
			c.LogSource = p.path(e)
		}
	}, fields: func(c *Config) []any { return f(&c.LogSource) }},
	{name: "log-prefix", def: DefaultLogPrefix, restart: true, parse: func(p *parser, e *entry, c *Config) {
		if !firewall.ValidLogPrefix(e.value) {
			p.errorf(e.line, "log-prefix: %s is not 1 to %d letters, digits and _.:-", lex.Quote(e.value), firewall.MaxLogPrefix)
		}
		c.LogPrefix = e.value
	}, fields: func(c *Config) []any { return f(&c.LogPrefix) }},
	// Port triggering (trigger.go).
	{name: "trigger-mode", def: TriggerHost, restart: true, parse: func(p *parser, e *entry, c *Config) {
		if e.value != TriggerHost && e.value != TriggerNAT {
			p.errorf(e.line, "trigger-mode: %s is not host or nat", lex.Quote(e.value))
		}
		c.TriggerMode = e.value
	}, fields: func(c *Config) []any { return f(&c.TriggerMode) }},
	{name: "trigger-max-mappings", def: itoa(trigger.DefaultMaxMappings), parse: func(p *parser, e *entry, c *Config) {
		if n, ok := p.integer(e, MinTriggerMappings, MaxTriggerMappings); ok {
			c.TriggerMaxMappings = n
		}
	}, fields: func(c *Config) []any { return f(&c.TriggerMaxMappings) }},
}

// secs writes a default duration as the file does.
func secs(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

func daemonKey(name string) *key {
	for i := range daemonKeys {
		if daemonKeys[i].name == name {
			return &daemonKeys[i]
		}
	}
	return nil
}

// RestartOnly returns the restart-only [daemon] keys whose value differs
// between old and cfg, in table order, and sets those values in cfg back to
// old's: what a reload must report and not apply.
func RestartOnly(old, cfg *Config) []string {
	var changed []string
	for _, k := range daemonKeys {
		if !k.restart {
			continue
		}
		was, now := k.fields(old), k.fields(cfg)
		diff := false
		for i := range was {
			w, n := reflect.ValueOf(was[i]).Elem(), reflect.ValueOf(now[i]).Elem()
			if !reflect.DeepEqual(w.Interface(), n.Interface()) {
				diff = true
				n.Set(w)
			}
		}
		if diff {
			changed = append(changed, k.name)
		}
	}
	return changed
}
