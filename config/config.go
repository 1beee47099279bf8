package config

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
	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// Config is a parsed configuration file: the plain options of each
// component. Every field but File, Users, Triggers and the *Line fields is
// set by exactly one key of the table in keys.go.
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

	Users []*policy.User

	// Port triggering (trigger.go).
	TriggerMode        string // host | nat
	TriggerMaxMappings int
	Triggers           []*trigger.Rule
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

	realmKey, realmKeyFile *entry // kept for after the [daemon] section
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

type entry struct {
	key, value string
	line       int
}

type section struct {
	kind, name string // "daemon", "user" or "trigger", and the name
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
	indexes := map[uint16]*policy.User{}
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
		p.errorf(lex.Lines(data), "no [user NAME] section: nobody could ever knock")
	}
	if p.inline != 0 && perm&0o077 != 0 {
		p.errorf(p.inline, "inline key in a file that group or others may read (mode %04o): chmod 600 the file or use key-file", perm)
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, p.errs
	}
	return p.cfg, nil
}

// split cuts the file into sections (internal/lex reads the lines) and
// checks their headers and that no key appears twice in one.
func (p *parser) split(data []byte) []*section {
	var secs []*section
	var cur *section
	for _, l := range lex.Split(data) {
		n := l.N
		switch {
		case l.Err != "":
			p.errorf(n, "%s", l.Err)
			switch {
			case strings.HasPrefix(l.Err, "section"):
				cur, p.badHeader = nil, true // its keys would be reported as strays
			case strings.HasPrefix(l.Err, "line"):
				cur = nil // a mangled header, perhaps
			}
			continue
		case l.Header:
			cur = nil
			f := l.Words
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
				p.errorf(n, "unknown section %s (want [daemon], [user NAME] or [trigger NAME])", lex.Quote("["+strings.Join(f, " ")+"]"))
				p.badHeader = true
				continue
			}
			secs = append(secs, cur)
			continue
		}
		k := l.Key
		if cur == nil {
			if len(secs) == 0 {
				p.errorf(n, "%s outside any section", lex.Quote(k))
			}
			continue // the header's own error was reported
		}
		if i := slices.IndexFunc(cur.entries, func(e entry) bool { return e.key == k }); i >= 0 {
			p.errorf(n, "duplicate key %s (first on line %d)", lex.Quote(k), cur.entries[i].line)
			continue
		}
		cur.entries = append(cur.entries, entry{key: k, value: l.Value, line: n})
	}
	return secs
}

// daemon parses the [daemon] section through the key table: every key
// first takes its default, then the file's value.
func (p *parser) daemon(s *section) {
	c := p.cfg
	for _, k := range daemonKeys {
		if k.def != "" {
			k.parse(p, &entry{key: k.name, value: k.def}, c)
		}
	}
	for i := range s.entries {
		e := &s.entries[i]
		k := daemonKey(e.key)
		if k == nil {
			p.errorf(e.line, "unknown key %s in [daemon]", lex.Quote(e.key))
			continue
		}
		k.parse(p, e, c)
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
	realmKey, realmKeyFile := p.realmKey, p.realmKeyFile
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
			p.errorf(realmKeyFile.line, "realm-key-file %s: %v", lex.Quote(realmKeyFile.value), err)
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
	return slices.ContainsFunc(s.entries, func(e entry) bool { return e.key == k })
}

func (p *parser) inlineKey(line int) {
	if p.inline == 0 || line < p.inline {
		p.inline = line
	}
}

// anyAddress is the default of sources: every address.
var anyAddress = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func (p *parser) user(s *section) *policy.User {
	u := &policy.User{Name: s.name, Line: s.line, MaxDuration: DefaultMaxDuration}
	var key, keyFile *entry
	haveIndex, havePorts, bad := false, false, false
	for i := range s.entries {
		e := &s.entries[i]
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
			u.Ports = p.portList(e)
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
			p.errorf(e.line, "unknown key %s in [user %s]", lex.Quote(e.key), u.Name)
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
		u.Sources = slices.Clone(anyAddress)
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
			p.errorf(keyFile.line, "key-file %s: %v", lex.Quote(keyFile.value), err)
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
		p.errorf(e.line, "%s %s: %s", e.key, lex.Quote(e.value), errMsg(err))
		return "", false
	}
	defer clear(b)
	if perm&0o077 != 0 {
		p.errorf(e.line, "%s %s: group or others may access it (mode %04o): chmod 600 it", e.key, lex.Quote(e.value), perm)
		return "", false
	}
	return string(b), true
}

// Protect returns the union of every user's ports, and of host-mode
// triggers' inbound ports, merged and sorted: what the firewall keeps
// closed to everyone without a grant.
func (c *Config) Protect() []ports.Range {
	var all []ports.Range
	for _, u := range c.Users {
		all = append(all, u.Ports...)
	}
	all = append(all, c.triggerProtect()...)
	return ports.Merge(all)
}

// Opener returns a knock opener for the configured realm and users, and the
// users by index for policy decisions. Each call returns a fresh Opener, as
// an Opener must not be shared between goroutines.
func (c *Config) Opener() (*crypto.Opener, map[uint16]*policy.User, error) {
	realm, err := crypto.NewRealm(c.Realm, c.RealmKey)
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[uint16]*crypto.User, len(c.Users))
	byIndex := make(map[uint16]*policy.User, len(c.Users))
	for _, u := range c.Users {
		keys[u.Index] = crypto.NewUser(&u.Key)
		byIndex[u.Index] = u
	}
	return crypto.NewOpener(realm, keys, c.Window), byIndex, nil
}

// itoa is for the defaults of the key table.
func itoa(n int) string { return strconv.Itoa(n) }
