package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/ports"
)

// The shared rules: every key that takes a name, a list of interfaces, an
// argument vector, ports, a number, a duration, a boolean or a path reads
// it through one of these, so that no two sections disagree.

// TriggerUser is the prefix of a host trigger's name in the user field of
// its grants (firewall.Grant.User, the command backend's {user}): a grant
// of [trigger ident] is made for "trigger@ident". User names may not
// start with it.
const TriggerUser = "trigger@"

// nameRule says what checkName accepts, for messages.
const nameRule = "may contain only letters, digits, '.', '-', '_' and '@', and must start with a letter, a digit or '_'"

// checkName checks a user or trigger name: what the command backend
// accepts in its {user} placeholder (firewall.ValidUser), so that a name
// the file accepts never makes a grant fail later.
func checkName(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !firewall.ValidUser(s):
		return fmt.Errorf("%s %s", lex.Quote(s), nameRule)
	}
	return nil
}

// MaxNameLen is the longest user name; a trigger's name is shorter by
// len(TriggerUser), so that its grants' user fits too.
const MaxNameLen = 64

func checkUserName(s string) error {
	if err := checkName(s, MaxNameLen); err != nil {
		return err
	}
	if strings.HasPrefix(s, TriggerUser) {
		return fmt.Errorf("%s: names starting with %q are the triggers'", lex.Quote(s), TriggerUser)
	}
	return nil
}

func checkTriggerName(s string) error { return checkName(s, MaxNameLen-len(TriggerUser)) }

// interfaces parses a list of interface names, as the kernel's
// dev_valid_name accepts them: 1..15 bytes (IFNAMSIZ with its zero), not
// "." or "..", without '/', ':' or white space. An empty list is refused:
// leaving the key out means every interface.
func (p *parser) interfaces(e *entry) []string {
	var out []string
	n0 := len(p.errs)
	for _, f := range splitList(e.value) {
		if len(f) > 15 || strings.ContainsAny(f, "/:") || f == "." || f == ".." {
			p.errorf(e.line, "%s: %s is not an interface name", e.key, lex.Quote(f))
			continue
		}
		out = append(out, f)
	}
	if len(out) == 0 && len(p.errs) == n0 {
		p.errorf(e.line, "%s: empty list (leave the key out to allow every interface)", e.key)
	}
	return out
}

// argv parses a command template with firewall.SplitCommand, the one
// splitter (words at blanks, '...' literal, "..." with \" and \\), and
// checks it as the command backend will (firewall.CheckTemplate): no shell,
// no shell syntax, no unknown {placeholder}.
func (p *parser) argv(e *entry) []string {
	args, err := firewall.SplitCommand(e.value)
	if err != nil {
		p.errorf(e.line, "%s: %v", e.key, err)
		return nil
	}
	if err := firewall.CheckTemplate(args); err != nil {
		p.errorf(e.line, "%s: %v", e.key, err)
		return nil
	}
	return args
}

// portList parses a list of port ranges outside the knock span.
func (p *parser) portList(e *entry) []ports.Range {
	var out []ports.Range
	n0 := len(p.errs)
	for _, f := range splitList(e.value) {
		if r, ok := p.portRange(e, f); ok {
			out = append(out, r)
		}
	}
	if len(out) == 0 && len(p.errs) == n0 {
		p.errorf(e.line, "%s: empty list", e.key)
	}
	return out
}

// portRange parses one range, which may not overlap the knock span.
func (p *parser) portRange(e *entry, s string) (ports.Range, bool) {
	r, err := ports.ParseRange(s)
	if err != nil {
		p.errorf(e.line, "%s: %v", e.key, err)
		return r, false
	}
	if sp := p.cfg.Span; r.From <= sp.Last() && r.To >= sp.Base {
		p.errorf(e.line, "%s: %s overlaps the knock span %d-%d", e.key, lex.Quote(s), sp.Base, sp.Last())
		return r, false
	}
	return r, true
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
				p.errorf(e.line, "%s: %s is not an address or network (like 192.0.2.0/24)", e.key, lex.Quote(f))
				continue
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
		}
		if pfx != pfx.Masked() {
			p.errorf(e.line, "%s: %s has host bits set (did you mean %s?)", e.key, lex.Quote(f), pfx.Masked())
			continue
		}
		out = append(out, pfx)
	}
	return out
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
	p.errorf(e.line, "%s: %s is not true or false", e.key, lex.Quote(e.value))
	return false
}

func (p *parser) integer(e *entry, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(e.value)
	if err != nil {
		p.errorf(e.line, "%s: %s is not a number", e.key, lex.Quote(e.value))
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
	if n, err := strconv.Atoi(v); err == nil {
		if n < lo || n > hi {
			p.errorf(e.line, "%s: %d seconds is outside %d..%d", e.key, n, lo, hi)
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d%time.Second != 0 {
		p.errorf(e.line, "%s: %s is not a whole number of seconds (like 60 or 1m)", e.key, lex.Quote(v))
		return 0, false
	}
	if d < time.Duration(lo)*time.Second || d > time.Duration(hi)*time.Second {
		p.errorf(e.line, "%s: %s is outside %d..%d seconds", e.key, lex.Quote(v), lo, hi)
		return 0, false
	}
	return d, true
}

// oneOf checks that e's value is one of the words.
func (p *parser) oneOf(e *entry, words ...string) string {
	for _, w := range words {
		if e.value == w {
			return w
		}
	}
	p.errorf(e.line, "%s: %s is not one of %s", e.key, lex.Quote(e.value), strings.Join(words, ", "))
	return e.value
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}
