package policy

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
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

// Config is a parsed configuration file.
type Config struct {
	File string // where it came from, for messages

	Realm             string
	RealmKey          *crypto.RealmKey // nil: the realm has no realm key
	Span              encoding.Span
	Interfaces        []string // empty: every interface with an address
	Loopback          bool
	Firewall          string
	Window            int // seconds, crypto.MinWindow..crypto.MaxWindow
	AssemblyTimeout   time.Duration
	MaxSources        int
	ReplayCacheSize   int
	StateDir          string
	ControlSocket     string
	LogFormat         string // text | json
	LogLevel          string // debug | info | warn | error
	RejectLogInterval time.Duration

	// How knock packets are seen: afpacket (a packet socket), nflog (the
	// daemon's firewall objects log them to NFLogGroup) or log (kernel
	// log lines with LogPrefix, read from LogSource: kmsg, - for
	// standard input, or a file).
	Capture    string
	NFLogGroup uint16
	LogSource  string
	LogPrefix  string

	// The firewall's kernel objects: their base name (firewall.Options.Name),
	// whether the nftables table may carry the owner flag, and how often
	// they are checked when the kernel sends no change notifications.
	FirewallName    string
	FirewallNoOwner bool
	FirewallCheck   time.Duration
	// WaitInterfaces accepts interfaces that do not exist yet.
	WaitInterfaces bool
	// CommandDrops: the operator says the host's own ruleset drops the
	// knock span and the protected ports, which the command backend
	// cannot do.
	CommandDrops bool
	// Lines of some keys, for checks made after parsing (0: not given).
	InterfacesLine, FirewallLine int

	// The command backend (firewall = command): argument vectors with
	// placeholders, run without a shell; the *6 ones, if set, for IPv6.
	CommandOpen, CommandClose   []string
	CommandOpen6, CommandClose6 []string
	CommandTimeout              time.Duration

	Users []*User

	// Port triggering (trigger.go).
	TriggerMode        string // host | nat
	TriggerMaxMappings int
	Triggers           []*trigger.Rule
}

// User is one [user NAME] section.
type User struct {
	Name        string
	Index       uint16
	Key         crypto.Key
	Ports       []ports.Range
	MaxDuration int // seconds
	Sources     []netip.Prefix
	// AllowAddress lists the networks, besides the knock's own source,
	// that the user's explicit-mode knocks may open (SPEC.md §11).
	AllowAddress []netip.Prefix
	Line         int // line of the section header
}

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Errors is every problem found in a file, in line order. Its Error method
// puts one per line.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// FileSystem is what the parser needs to read key files. OS reads the real
// file system; tests and fuzzing substitute their own.
type FileSystem interface {
	// ReadSecret returns a key file's contents and permission bits.
	ReadSecret(path string) ([]byte, fs.FileMode, error)
}

// OS is the real file system.
var OS FileSystem = osFS{}

type osFS struct{}

func (osFS) ReadSecret(path string) ([]byte, fs.FileMode, error) {
	if err := CheckSafe(path); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, errors.New("not a regular file")
	}
	b := make([]byte, 256)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, 0, err
	}
	return b[:n], st.Mode().Perm(), nil
}

// Load reads and parses the configuration file at path. Relative key-file
// paths are taken relative to the file's directory.
func Load(path string) (*Config, error) {
	if err := CheckSafe(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, Errors{{File: path, Line: 0, Msg: err.Error()}}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Line: 0, Msg: "cannot read: " + errMsg(err)}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, Errors{{File: path, Line: 0, Msg: "cannot read: " + errMsg(err)}}
	}
	return Parse(path, data, filepath.Dir(path), st.Mode().Perm(), OS)
}

func errMsg(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

type parser struct {
	file   string
	dir    string
	fsys   FileSystem
	errs   Errors
	cfg    *Config
	inline int // line of the first inline key, 0 if none

	badHeader bool // a section header was refused: its users may be missing
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

type entry struct {
	key, value string
	line       int
}

type section struct {
	kind, name string // "daemon" / "user" and the user's name
	line       int
	entries    []entry
}

// Parse parses a configuration file's contents. name is used in messages,
// dir resolves relative key-file paths, and perm is the file's own
// permission bits (inline keys are refused in a file others can read).
func Parse(name string, data []byte, dir string, perm fs.FileMode, fsys FileSystem) (*Config, error) {
	p := &parser{file: name, dir: dir, fsys: fsys, cfg: &Config{File: name}}
	secs := p.split(data)
	var daemon *section
	var users, triggers []*section
	for _, s := range secs {
		switch s.kind {
		case "daemon":
			if daemon != nil {
				p.errorf(s.line, "second [daemon] section (the first is on line %d)", daemon.line)
				continue
			}
			daemon = s
		case "user":
			users = append(users, s)
		case "trigger":
			triggers = append(triggers, s)
		}
	}
	if daemon == nil {
		p.errorf(1, "missing [daemon] section")
		daemon = &section{kind: "daemon", line: 1, entries: []entry{{key: "realm", value: "missing", line: 1}}}
	}
	p.daemon(daemon)
	p.triggers(triggers)
	if len(triggers) > 0 && p.cfg.Capture != "afpacket" {
		p.errorf(triggers[0].line, "port triggering needs capture = afpacket (capture = %s sees only packets to the knock span)", p.cfg.Capture)
	}
	names := map[string]int{}
	indexes := map[uint16]*User{}
	for _, s := range users {
		if l, dup := names[s.name]; dup {
			p.errorf(s.line, "duplicate user %q (first on line %d)", s.name, l)
			continue
		}
		names[s.name] = s.line
		u := p.user(s)
		if u == nil {
			continue
		}
		if o, dup := indexes[u.Index]; dup {
			p.errorf(u.Line, "user %q has index %d, already used by user %q on line %d", u.Name, u.Index, o.Name, o.Line)
			continue
		}
		indexes[u.Index] = u
		p.cfg.Users = append(p.cfg.Users, u)
	}
	p.triggerOverlap()
	if len(users) == 0 && len(triggers) == 0 && !p.badHeader {
		p.errorf(lastLine(data), "no [user NAME] section: nobody could ever knock")
	}
	if p.inline != 0 && perm&0o077 != 0 {
		p.errorf(p.inline, "inline key in a file that group or others may read (mode %04o): chmod 600 the file or use key-file", perm)
	}
	if len(p.errs) > 0 {
		sortErrors(p.errs)
		return nil, p.errs
	}
	return p.cfg, nil
}

func lastLine(data []byte) int {
	n := strings.Count(string(data), "\n")
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
}

// split cuts the file into sections and checks the syntax of every line.
func (p *parser) split(data []byte) []*section {
	var secs []*section
	var cur *section
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSpace(stripComment(strings.TrimSuffix(raw, "\r")))
		if line == "" {
			continue
		}
		if !isText(line) {
			p.errorf(n, "line contains control characters or invalid UTF-8")
			cur = nil
			continue
		}
		if line[0] == '[' {
			cur = nil
			if line[len(line)-1] != ']' {
				p.errorf(n, "section header must end with ']'")
				p.badHeader = true
				continue
			}
			f := strings.Fields(line[1 : len(line)-1])
			switch {
			case len(f) == 1 && f[0] == "daemon":
				cur = &section{kind: "daemon", line: n}
			case len(f) == 2 && f[0] == "user":
				if err := checkUserName(f[1]); err != nil {
					p.errorf(n, "user name: %v", err)
					p.badHeader = true
					continue
				}
				cur = &section{kind: "user", name: f[1], line: n}
			case len(f) == 2 && f[0] == "trigger":
				cur = &section{kind: "trigger", name: f[1], line: n}
			case len(f) >= 1 && f[0] == "trigger":
				p.errorf(n, "trigger section needs exactly one name: [trigger NAME]")
				p.badHeader = true
				continue
			case len(f) >= 1 && f[0] == "user":
				p.errorf(n, "user section needs exactly one name: [user NAME]")
				p.badHeader = true
				continue
			default:
				p.errorf(n, "unknown section %s (want [daemon], [user NAME] or [trigger NAME])", quoteShort(line))
				p.badHeader = true
				continue
			}
			secs = append(secs, cur)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			p.errorf(n, "expected 'key = value' or a [section] header")
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			p.errorf(n, "missing key before '='")
			continue
		}
		if cur == nil {
			if len(secs) == 0 {
				p.errorf(n, "%s outside any section", quoteShort(k))
			}
			continue // the header's own error was reported
		}
		dup := false
		for _, e := range cur.entries {
			if e.key == k {
				p.errorf(n, "duplicate key %s (first on line %d)", quoteShort(k), e.line)
				dup = true
				break
			}
		}
		if !dup {
			cur.entries = append(cur.entries, entry{key: k, value: v, line: n})
		}
	}
	return secs
}

// stripComment removes a '#' comment: at the start of a line, or after
// white space, so that values may still contain '#'.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

func isText(s string) bool {
	for _, r := range s {
		if r == 0xfffd || (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

// quoteShort quotes operator input for a message, cut to a sane length.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

func checkUserName(s string) error {
	if len(s) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '@') {
			return fmt.Errorf("%s may contain only letters, digits, '.', '-', '_' and '@'", quoteShort(s))
		}
	}
	return nil
}

func (p *parser) daemon(s *section) {
	c := p.cfg
	c.Span = encoding.DefaultSpan
	c.Firewall = DefaultFirewall
	c.Window = crypto.DefaultWindow
	c.AssemblyTimeout = DefaultAssemblyTimeout
	c.MaxSources = DefaultMaxSources
	c.ReplayCacheSize = DefaultReplayCacheSize
	c.StateDir = DefaultStateDir
	c.ControlSocket = DefaultControlSocket
	c.LogFormat = "text"
	c.LogLevel = "info"
	c.RejectLogInterval = DefaultRejectLogInterval
	c.Capture, c.NFLogGroup, c.LogSource, c.LogPrefix = DefaultCapture, DefaultNFLogGroup, DefaultLogSource, DefaultLogPrefix
	c.FirewallName = firewall.DefaultName
	c.FirewallCheck = DefaultFirewallCheck
	var realmKey, realmKeyFile *entry
	for i := range s.entries {
		e := &s.entries[i]
		v := e.value
		switch e.key {
		case "realm":
			if err := crypto.CheckRealm(v); err != nil {
				p.errorf(e.line, "realm: %v", err)
			}
			c.Realm = v
		case "realm-key":
			realmKey = e
		case "realm-key-file":
			realmKeyFile = e
		case "span-base":
			n, err := strconv.Atoi(v)
			if err != nil {
				p.errorf(e.line, "span-base: %s is not a number", quoteShort(v))
				break
			}
			sp, err := encoding.NewSpan(n)
			if err != nil {
				p.errorf(e.line, "span-base: %v", err)
				break
			}
			c.Span = sp
		case "interfaces":
			c.InterfacesLine = e.line
			c.Interfaces = nil
			for _, f := range splitList(v) {
				if len(f) > 15 || strings.ContainsAny(f, "/ ") {
					p.errorf(e.line, "interfaces: %s is not an interface name", quoteShort(f))
					continue
				}
				c.Interfaces = append(c.Interfaces, f)
			}
		case "loopback":
			c.Loopback = p.boolean(e)
		case "firewall":
			c.FirewallLine = e.line
			ok := false
			for _, f := range Firewalls {
				ok = ok || v == f
			}
			if !ok {
				p.errorf(e.line, "firewall: %s is not one of %s", quoteShort(v), strings.Join(Firewalls, ", "))
			}
			c.Firewall = v
		case "firewall-name":
			if err := firewall.CheckName(v); err != nil {
				p.errorf(e.line, "firewall-name: %v", err)
			}
			c.FirewallName = v
		case "firewall-owner":
			c.FirewallNoOwner = !p.boolean(e)
		case "firewall-check-interval":
			if d, ok := p.seconds(e, 1, 60); ok {
				c.FirewallCheck = d
			}
		case "wait-for-interfaces":
			c.WaitInterfaces = p.boolean(e)
		case "window":
			d, ok := p.seconds(e, crypto.MinWindow, crypto.MaxWindow)
			if ok {
				c.Window = int(d / time.Second)
			}
		case "assembly-timeout":
			if d, ok := p.seconds(e, 1, 60); ok {
				c.AssemblyTimeout = d
			}
		case "max-sources":
			if n, ok := p.integer(e, MinMaxSources, MaxMaxSources); ok {
				c.MaxSources = n
			}
		case "replay-cache-size":
			if n, ok := p.integer(e, MinReplayCacheSize, MaxReplayCacheSize); ok {
				c.ReplayCacheSize = n
			}
		case "state-dir":
			c.StateDir = p.path(e)
		case "control-socket":
			c.ControlSocket = p.path(e)
		case "log-format":
			if v != "text" && v != "json" {
				p.errorf(e.line, "log-format: %s is not text or json", quoteShort(v))
			}
			c.LogFormat = v
		case "log-level":
			switch v {
			case "debug", "info", "warn", "error":
			default:
				p.errorf(e.line, "log-level: %s is not debug, info, warn or error", quoteShort(v))
			}
			c.LogLevel = v
		case "reject-log-interval":
			if d, ok := p.seconds(e, 1, 3600); ok {
				c.RejectLogInterval = d
			}
		case "command-open", "command-close", "command-open6", "command-close6":
			argv, err := SplitArgs(v)
			if err != nil {
				p.errorf(e.line, "%s: %v", e.key, err)
				break
			}
			*map[string]*[]string{"command-open": &c.CommandOpen, "command-close": &c.CommandClose,
				"command-open6": &c.CommandOpen6, "command-close6": &c.CommandClose6}[e.key] = argv
		case "command-drops":
			c.CommandDrops = p.boolean(e)
		case "command-timeout":
			if d, ok := p.seconds(e, 1, 300); ok {
				c.CommandTimeout = d
			}
		case "capture":
			if !slices.Contains(Captures, v) {
				p.errorf(e.line, "capture: %s is not one of %s", quoteShort(v), strings.Join(Captures, ", "))
			}
			c.Capture = v
		case "nflog-group":
			if n, ok := p.integer(e, 1, 65535); ok {
				c.NFLogGroup = uint16(n)
			}
		case "log-source":
			switch v {
			case "kmsg", "-":
				c.LogSource = v
			default:
				c.LogSource = p.path(e)
			}
		case "log-prefix":
			if !firewall.ValidLogPrefix(v) {
				p.errorf(e.line, "log-prefix: %s is not 1 to %d letters, digits and _.:-", quoteShort(v), firewall.MaxLogPrefix)
			}
			c.LogPrefix = v
		default:
			if p.daemonTriggerKey(e) {
				break
			}
			p.errorf(e.line, "unknown key %s in [daemon]", quoteShort(e.key))
		}
	}
	if c.Firewall == "command" && (!hasKey(s, "command-open") || !hasKey(s, "command-close")) {
		p.errorf(s.line, "firewall = command needs command-open and command-close")
	}
	if c.Capture == "nflog" && c.Firewall == "command" {
		p.errorf(keyLine(s, "capture"), "capture = nflog needs the daemon's own firewall objects to log to the group: firewall = nftables, iptables or auto, not command")
	}
	if c.Realm == "" && !hasKey(s, "realm") {
		p.errorf(s.line, "[daemon] needs a realm (realm = NAME)")
	}
	switch {
	case realmKey != nil && realmKeyFile != nil:
		p.errorf(realmKeyFile.line, "realm-key and realm-key-file are exclusive (realm-key is on line %d)", realmKey.line)
	case realmKey != nil:
		p.inlineKey(realmKey.line)
		k, err := crypto.ParseRealmKey(realmKey.value)
		if err != nil {
			p.errorf(realmKey.line, "realm-key: %v", err)
			break
		}
		c.RealmKey = &k
	case realmKeyFile != nil:
		text, ok := p.secret(realmKeyFile)
		if !ok {
			break
		}
		k, err := crypto.ParseRealmKey(text)
		if err != nil {
			p.errorf(realmKeyFile.line, "realm-key-file %s: %v", quoteShort(realmKeyFile.value), err)
			break
		}
		c.RealmKey = &k
	}
}

// keyLine is the line of key k in s, or of the section header.
func keyLine(s *section, k string) int {
	for _, e := range s.entries {
		if e.key == k {
			return e.line
		}
	}
	return s.line
}

func hasKey(s *section, k string) bool {
	for _, e := range s.entries {
		if e.key == k {
			return true
		}
	}
	return false
}

// prefixes parses a list of networks or single addresses; IPv4-mapped
// ones become IPv4.
func (p *parser) prefixes(e *entry) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range splitList(e.value) {
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				p.errorf(e.line, "%s: %s is not an address or network (like 192.0.2.0/24)", e.key, quoteShort(f))
				continue
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
		}
		if pfx != pfx.Masked() {
			p.errorf(e.line, "%s: %s has host bits set (did you mean %s?)", e.key, quoteShort(f), pfx.Masked())
			continue
		}
		out = append(out, pfx)
	}
	return out
}

func (p *parser) inlineKey(line int) {
	if p.inline == 0 || line < p.inline {
		p.inline = line
	}
}

func (p *parser) user(s *section) *User {
	u := &User{Name: s.name, Line: s.line, MaxDuration: DefaultMaxDuration}
	var key, keyFile *entry
	haveIndex, havePorts, bad := false, false, false
	for i := range s.entries {
		e := &s.entries[i]
		v := e.value
		n0 := len(p.errs)
		switch e.key {
		case "index":
			if n, ok := p.integer(e, 0, 65535); ok {
				u.Index = uint16(n)
				haveIndex = true
			}
		case "key":
			key = e
		case "key-file":
			keyFile = e
		case "ports":
			havePorts = true
			for _, f := range splitList(v) {
				r, err := ports.ParseRange(f)
				if err != nil {
					p.errorf(e.line, "ports: %v", err)
					continue
				}
				sp := p.cfg.Span
				if r.From <= sp.Last() && r.To >= sp.Base {
					p.errorf(e.line, "ports: %s overlaps the knock span %d-%d", quoteShort(f), sp.Base, sp.Last())
					continue
				}
				u.Ports = append(u.Ports, r)
			}
			if len(u.Ports) == 0 && len(p.errs) == n0 {
				p.errorf(e.line, "ports: empty list")
			}
		case "max-duration":
			if d, ok := p.seconds(e, 1, crypto.MaxDuration); ok {
				u.MaxDuration = int(d / time.Second)
			}
		case "sources":
			u.Sources = p.prefixes(e)
			if len(u.Sources) == 0 && len(p.errs) == n0 {
				p.errorf(e.line, "sources: empty list (leave the key out to allow every address)")
			}
		case "allow-address":
			u.AllowAddress = p.prefixes(e)
			if len(u.AllowAddress) == 0 && len(p.errs) == n0 {
				p.errorf(e.line, "allow-address: empty list (leave the key out to allow only the knock's source)")
			}
		case "allow-other-address":
			// Removed: with it, whoever answered the client's STUN
			// query chose the address a knock opened.
			if p.boolean(e) {
				p.errorf(e.line, "allow-other-address is no longer supported: name the networks this user may open for with allow-address = 203.0.113.0/24, 2001:db8::/32 (clients that find their address with STUN need nothing: they bind it under the tag)")
			}
		default:
			p.errorf(e.line, "unknown key %s in [user %s]", quoteShort(e.key), u.Name)
		}
		if len(p.errs) > n0 {
			bad = true
		}
	}
	if !haveIndex && !hasKey(s, "index") {
		p.errorf(s.line, "[user %s] needs an index (index = 0..65535)", u.Name)
		bad = true
	}
	if !havePorts {
		p.errorf(s.line, "[user %s] needs ports (ports = tcp/22, udp/51820, tcp/8000-8100)", u.Name)
		bad = true
	}
	if u.Sources == nil && !hasKey(s, "sources") {
		u.Sources = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	switch {
	case key != nil && keyFile != nil:
		p.errorf(keyFile.line, "key and key-file are exclusive (key is on line %d)", key.line)
		bad = true
	case key == nil && keyFile == nil:
		p.errorf(s.line, "[user %s] needs a key (key-file = PATH, or key = ck-key-...)", u.Name)
		bad = true
	case key != nil:
		p.inlineKey(key.line)
		k, err := crypto.ParseKey(key.value)
		if err != nil {
			p.errorf(key.line, "key: %v", err)
			bad = true
			break
		}
		u.Key = k
	default:
		text, ok := p.secret(keyFile)
		if !ok {
			bad = true
			break
		}
		k, err := crypto.ParseKey(text)
		if err != nil {
			p.errorf(keyFile.line, "key-file %s: %v", quoteShort(keyFile.value), err)
			bad = true
			break
		}
		u.Key = k
	}
	if bad {
		return nil
	}
	return u
}

// secret reads the key file named by e, refusing one that group or others
// may read. The contents never reach a message.
func (p *parser) secret(e *entry) (string, bool) {
	path := p.path(e)
	if path == "" {
		return "", false
	}
	b, perm, err := p.fsys.ReadSecret(path)
	if err != nil {
		p.errorf(e.line, "%s %s: %s", e.key, quoteShort(e.value), errMsg(err))
		return "", false
	}
	defer clear(b)
	if perm&0o077 != 0 {
		p.errorf(e.line, "%s %s: group or others may access it (mode %04o): chmod 600 it", e.key, quoteShort(e.value), perm)
		return "", false
	}
	return string(b), true
}

func (p *parser) path(e *entry) string {
	v := e.value
	if v == "" {
		p.errorf(e.line, "%s: empty path", e.key)
		return ""
	}
	if !filepath.IsAbs(v) && p.dir != "" {
		v = filepath.Join(p.dir, v)
	}
	return filepath.Clean(v)
}

func (p *parser) boolean(e *entry) bool {
	switch strings.ToLower(e.value) {
	case "true", "yes", "on", "1":
		return true
	case "false", "no", "off", "0":
		return false
	}
	p.errorf(e.line, "%s: %s is not true or false", e.key, quoteShort(e.value))
	return false
}

func (p *parser) integer(e *entry, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(e.value)
	if err != nil {
		p.errorf(e.line, "%s: %s is not a number", e.key, quoteShort(e.value))
		return 0, false
	}
	if n < lo || n > hi {
		p.errorf(e.line, "%s: %d is outside %d..%d", e.key, n, lo, hi)
		return 0, false
	}
	return n, true
}

// seconds parses a whole number of seconds, given bare ("60") or as a Go
// duration ("1m", "90s").
func (p *parser) seconds(e *entry, lo, hi int) (time.Duration, bool) {
	v := e.value
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		if n < lo || n > hi {
			p.errorf(e.line, "%s: %d seconds is outside %d..%d", e.key, n, lo, hi)
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d%time.Second != 0 {
		p.errorf(e.line, "%s: %s is not a whole number of seconds (like 60 or 1m)", e.key, quoteShort(v))
		return 0, false
	}
	if d < time.Duration(lo)*time.Second || d > time.Duration(hi)*time.Second {
		p.errorf(e.line, "%s: %s is outside %d..%d seconds", e.key, v, lo, hi)
		return 0, false
	}
	return d, true
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

// SplitArgs splits a command line into arguments at white space. Double
// quotes group words (and keep braces and dots together), a backslash in
// quotes escapes the next character; nothing else is interpreted.
func SplitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			in = true
		case !quoted && (c == ' ' || c == '\t'):
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if in {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}
