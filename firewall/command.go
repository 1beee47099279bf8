package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CommandConfig configures the command backend, which opens and closes
// grants (SPEC.md §11) by running programs: pfctl, firewall-cmd, nft, or
// anything else. The firewall cannot expire these itself, so the backend
// does, from a journal that outlives the process.
//
// Open and Close are argument vectors. The program (element 0) is fixed:
// an absolute path, or a name found in PATH when the backend is made. The
// other elements may hold placeholders, replaced inside the element they
// are written in; a value never becomes more than one argument, and no
// shell ever sees it:
//
//	{addr}      the address, 198.18.0.2 or 2001:db8::2
//	{family}    ipv4 or ipv6
//	{ipver}     4 or 6
//	{proto}     tcp or udp
//	{port}      the port number
//	{duration}  the grant's time in whole seconds, rounded up
//	{user}      the user who knocked, or "-" when unknown
//
// A "{" not followed by one of these names and "}" is kept as it is
// (nft writes sets in braces), but {word} with an unknown word is refused
// as a likely typo. Templates that name a shell or a code interpreter, or
// that use shell syntax ($(...), backquotes, pipes, redirections, ; or &&
// as arguments), are refused: they would not do what they seem to.
//
// Example for nftables with a set of the host's own (README.md has more):
//
//	Open:  nft add element inet filter knocked{ipver} "{ {addr} . {proto} . {port} }"
//	Close: nft delete element inet filter knocked{ipver} "{ {addr} . {proto} . {port} }"
type CommandConfig struct {
	Open, Close []string
	// Open6 and Close6, when set, replace Open and Close for IPv6
	// grants (iptables and ip6tables are two programs).
	Open6, Close6 []string
	// Timeout bounds each run; the command is killed when it is up.
	// Zero means 10 s.
	Timeout time.Duration
	// JournalPath is the file that records open grants across crashes
	// and restarts. Required.
	JournalPath string
	// Log receives the closes that fail; nil discards them.
	Log *slog.Logger
}

// Command is the command backend. The kernel cannot expire what a command
// opened, so Command keeps timers and the journal: Setup closes the grants
// a previous run left open past their time and schedules the others.
type Command struct {
	open, close   template
	open6, close6 template
	timeout       time.Duration
	jpath         string
	log           *slog.Logger

	seed    maphash.Seed
	stripes [64]sync.Mutex // one command at a time per grant key
	closing chan struct{}  // bounds the closes running at once

	mu     sync.Mutex // guards the fields below
	j      *journal
	grants map[grantKey]*cmdGrant
}

type cmdGrant struct {
	g      Grant
	expiry time.Time
	timer  *time.Timer
	tries  int // failed closes
}

// Closing is retried this many times, with a doubling pause starting at
// one second, before the grant is given up on (and logged).
const cmdCloseTries = 5

// cmdParallel is how many closes run at once when many fall due together
// (after a restart, or grants made in a burst).
const cmdParallel = 16

// NewCommand checks the templates and returns the command backend. Options
// are not used: the commands decide what they change, and the host's own
// ruleset must keep protected ports closed.
func NewCommand(cfg CommandConfig, opts Options) (Backend, error) {
	if cfg.JournalPath == "" {
		return nil, errors.New("firewall: command: needs a journal path")
	}
	b := &Command{timeout: cfg.Timeout, jpath: cfg.JournalPath, log: cfg.Log, seed: maphash.MakeSeed(),
		grants: make(map[grantKey]*cmdGrant), closing: make(chan struct{}, cmdParallel)}
	if b.timeout <= 0 {
		b.timeout = 10 * time.Second
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if b.open, err = parseTemplate(cfg.Open); err != nil {
		return nil, fmt.Errorf("firewall: command: open command: %w", err)
	}
	if b.close, err = parseTemplate(cfg.Close); err != nil {
		return nil, fmt.Errorf("firewall: command: close command: %w", err)
	}
	b.open6, b.close6 = b.open, b.close
	if cfg.Open6 != nil {
		if b.open6, err = parseTemplate(cfg.Open6); err != nil {
			return nil, fmt.Errorf("firewall: command: IPv6 open command: %w", err)
		}
	}
	if cfg.Close6 != nil {
		if b.close6, err = parseTemplate(cfg.Close6); err != nil {
			return nil, fmt.Errorf("firewall: command: IPv6 close command: %w", err)
		}
	}
	return b, nil
}

// Placeholders, in the order of cmdValues' fields.
var placeholders = []string{"addr", "family", "ipver", "proto", "port", "duration", "user"}

type cmdValues [7]string

// template is a parsed argument vector: path, then per argument a list of
// parts, each a literal or a placeholder index.
type template struct {
	path string
	args [][]part
}

type part struct {
	lit string
	ph  int // index into placeholders, or -1 for a literal
}

// Programs that would run an argument as code.
var shells = []string{
	"sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "oksh", "yash", "ash", "rbash", "posh",
	"csh", "tcsh", "fish", "busybox", "toybox", "su", "eval",
	"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "awk", "gawk", "mawk",
}

var shellOperators = []string{";", "|", "||", "&&", "&", ">", ">>", "<", "<<", "2>&1", "|&", ";;"}

var placeholderRE = regexp.MustCompile(`\{[a-z]+\}`)

func isShell(arg string) bool {
	base := filepath.Base(arg)
	// python3.12, bash5 and the like
	base = strings.TrimRight(base, "0123456789.")
	return slices.Contains(shells, base)
}

// CheckTemplate reports why argv, a command template, would be refused by
// NewCommand (a shell, shell syntax, an unknown placeholder, a program not
// in PATH), without the package's prefix, so that a configuration
// parser can put the error at its line.
func CheckTemplate(argv []string) error {
	_, err := parseTemplate(argv)
	return err
}

func parseTemplate(argv []string) (template, error) {
	if len(argv) == 0 || argv[0] == "" {
		return template{}, errors.New("empty command")
	}
	if strings.ContainsAny(argv[0], "{}") {
		return template{}, fmt.Errorf("the program %q may not contain placeholders", argv[0])
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return template{}, fmt.Errorf("%s: not found in PATH (give an absolute path)", argv[0])
	}
	if !filepath.IsAbs(path) {
		if path, err = filepath.Abs(path); err != nil {
			return template{}, err
		}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return template{}, err
	}
	if isShell(argv[0]) || isShell(path) || isShell(real) {
		return template{}, fmt.Errorf("%s is a shell or interpreter: commands run without a shell, give the firewall program itself", argv[0])
	}
	t := template{path: path}
	for i, a := range argv[1:] {
		if isShell(a) {
			return template{}, fmt.Errorf("argument %d (%q) runs a shell or interpreter: commands run without a shell", i+1, a)
		}
		if slices.Contains(shellOperators, a) || strings.Contains(a, "$(") || strings.Contains(a, "${") || strings.Contains(a, "`") {
			return template{}, fmt.Errorf("argument %d (%q) is shell syntax, but commands run without a shell", i+1, a)
		}
		var ps []part
		rest := a
		for len(rest) > 0 {
			loc := placeholderRE.FindStringIndex(rest)
			if loc == nil {
				ps = append(ps, part{lit: rest, ph: -1})
				break
			}
			if loc[0] > 0 {
				ps = append(ps, part{lit: rest[:loc[0]], ph: -1})
			}
			name := rest[loc[0]+1 : loc[1]-1]
			k := slices.Index(placeholders, name)
			if k < 0 {
				return template{}, fmt.Errorf("argument %d: unknown placeholder {%s} (known: {%s})", i+1, name, strings.Join(placeholders, "}, {"))
			}
			ps = append(ps, part{ph: k})
			rest = rest[loc[1]:]
		}
		t.args = append(t.args, ps)
	}
	return t, nil
}

// expand returns the argument vector (without the program) for v.
func (t template) expand(v *cmdValues) []string {
	args := make([]string, len(t.args))
	for i, ps := range t.args {
		var sb strings.Builder
		for _, p := range ps {
			if p.ph < 0 {
				sb.WriteString(p.lit)
			} else {
				sb.WriteString(v[p.ph])
			}
		}
		args[i] = sb.String()
	}
	return args
}

var userRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$`)

// ValidUser reports whether a user name may appear in a command: letters,
// digits and ._@- only, not starting with "-" or "." (so it cannot pass
// for an option or a path), at most 64 bytes.
func ValidUser(u string) bool { return userRE.MatchString(u) }

// values checks g and returns its placeholder values. Every value is made
// from a parsed field, so none can carry anything but what it says.
func values(g Grant) (*cmdValues, error) {
	if !g.Addr.IsValid() || g.Addr.Zone() != "" {
		return nil, errors.New("firewall: command: invalid address")
	}
	if _, err := ipproto(g.Proto); err != nil {
		return nil, fmt.Errorf("firewall: command: %w", err)
	}
	if g.Port == 0 {
		return nil, errors.New("firewall: command: port 0")
	}
	if g.User != "" && !ValidUser(g.User) {
		return nil, fmt.Errorf("firewall: command: user name %q not allowed in commands", g.User)
	}
	a := g.Addr.Unmap()
	v := &cmdValues{a.String(), "ipv4", "4", g.Proto.String(), strconv.Itoa(int(g.Port)), "", g.User}
	if a.Is6() {
		v[1], v[2] = "ipv6", "6"
	}
	secs := (g.Timeout + time.Second - 1) / time.Second
	v[5] = strconv.FormatInt(int64(max(secs, 1)), 10)
	if v[6] == "" {
		v[6] = "-"
	}
	return v, nil
}

// cmdEnv is the whole environment of a command: nothing of the daemon's
// own leaks into it.
var cmdEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

// errTimedOut marks a command killed at its timeout: what it changed is
// unknown.
var errTimedOut = errors.New("timed out")

// run runs t with v and returns an error with the start of its output when
// it fails.
func (b *Command) run(ctx context.Context, t template, v *cmdValues) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.path, t.expand(v)...)
	cmd.Env = cmdEnv
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	CloseOnExecAll()
	err := cmd.Run()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay comes only with exit status 0: the command did
		// its work, and something it started kept its output open past
		// WaitDelay. Running it again would open or close twice.
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w after %v", errTimedOut, b.timeout)
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg != "" {
		return fmt.Errorf("%s: %w: %s", filepath.Base(t.path), err, msg)
	}
	return fmt.Errorf("%s: %w", filepath.Base(t.path), err)
}

// pick returns t4 for IPv4 grants and t6 for IPv6 ones.
func (b *Command) pick(g Grant, t4, t6 template) template {
	if g.Addr.Unmap().Is6() {
		return t6
	}
	return t4
}

func (b *Command) stripe(k grantKey) *sync.Mutex {
	return &b.stripes[maphash.Comparable(b.seed, k)%uint64(len(b.stripes))]
}

// Name implements Backend.
func (b *Command) Name() string { return "command" }

// Setup opens the journal, closes every grant in it whose time is up
// (before it returns) and schedules the others. Running it again does
// nothing more.
func (b *Command) Setup(ctx context.Context) error {
	b.mu.Lock()
	if b.j != nil {
		b.mu.Unlock()
		return nil
	}
	j, err := openJournal(b.jpath)
	if err != nil {
		b.mu.Unlock()
		return fmt.Errorf("firewall: command: %w", err)
	}
	b.j = j
	now := time.Now()
	var due []*cmdGrant
	for _, e := range j.entries() {
		cg := &cmdGrant{g: e.Grant, expiry: e.Expiry}
		b.grants[keyOf(e.Grant)] = cg
		if e.Expiry.After(now) {
			k := keyOf(e.Grant)
			cg.timer = time.AfterFunc(e.Expiry.Sub(now), func() { b.expire(k) })
		} else {
			due = append(due, cg)
		}
	}
	b.mu.Unlock()
	// Close the overdue ones now, cmdParallel at a time, then tidy.
	var wg sync.WaitGroup
	for _, cg := range due {
		k := keyOf(cg.g)
		wg.Go(func() { b.expire(k) })
	}
	wg.Wait()
	if err := j.tidy(); err != nil {
		return fmt.Errorf("firewall: command: %w", err)
	}
	return nil
}

// Grant implements Backend. The open command runs once per grant; a
// re-grant of an open one only moves its closing time (running open again
// would duplicate rules with most firewalls).
func (b *Command) Grant(ctx context.Context, g Grant) error {
	v, err := values(g)
	if err != nil {
		return err
	}
	if g.Timeout <= 0 {
		return fmt.Errorf("firewall: command: grant timeout %v", g.Timeout)
	}
	g.Addr = g.Addr.Unmap()
	k := keyOf(g)
	s := b.stripe(k)
	s.Lock()
	defer s.Unlock()
	b.mu.Lock()
	j, cg := b.j, b.grants[k]
	b.mu.Unlock()
	if j == nil {
		return errors.New("firewall: command: not set up")
	}
	expiry := time.Now().Add(g.Timeout)
	if cg != nil {
		// Only this call touches k (stripe lock), so cg stays ours.
		if err := j.opened(journalEntry{Grant: g, Expiry: expiry}); err != nil {
			return fmt.Errorf("firewall: command: %w", err)
		}
		b.mu.Lock()
		cg.expiry, cg.g.User = expiry, g.User
		if cg.timer != nil {
			cg.timer.Reset(time.Until(expiry))
		}
		b.mu.Unlock()
		return nil
	}
	// On record before it runs: a crash in between leaves a record of a
	// door maybe open, which the next start closes.
	if err := j.opened(journalEntry{Grant: g, Expiry: expiry}); err != nil {
		return fmt.Errorf("firewall: command: %w", err)
	}
	err = b.run(ctx, b.pick(g, b.open, b.open6), v)
	if err != nil && !errors.Is(err, errTimedOut) {
		// It failed cleanly: nothing is open.
		return errors.Join(fmt.Errorf("firewall: command: open: %w", err), j.closed(g))
	}
	// Open, or killed halfway: either way it gets closed at its time.
	cg = &cmdGrant{g: g, expiry: expiry}
	b.mu.Lock()
	b.grants[k] = cg
	cg.timer = time.AfterFunc(time.Until(expiry), func() { b.expire(k) })
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("firewall: command: open: %w", err)
	}
	return nil
}

// expire closes k if its time is up, and retries a failed close.
func (b *Command) expire(k grantKey) {
	s := b.stripe(k)
	s.Lock()
	defer s.Unlock()
	b.mu.Lock()
	cg := b.grants[k]
	if cg == nil {
		b.mu.Unlock()
		return
	}
	if left := time.Until(cg.expiry); left > 0 {
		cg.timer.Reset(left) // extended meanwhile
		b.mu.Unlock()
		return
	}
	g := cg.g
	b.mu.Unlock()
	v, err := values(g)
	if err == nil {
		b.closing <- struct{}{}
		err = b.run(context.Background(), b.pick(g, b.close, b.close6), v)
		<-b.closing
	}
	b.finish(k, cg, err)
}

// finish records the outcome of closing cg.
func (b *Command) finish(k grantKey, cg *cmdGrant, err error) {
	b.mu.Lock()
	j := b.j
	defer func() {
		b.mu.Unlock()
		if j == nil {
			return // closed meanwhile
		}
		if jerr := j.closed(cg.g); jerr != nil {
			b.log.Error("journal", "err", jerr)
		}
	}()
	if err != nil {
		cg.tries++
		if cg.tries < cmdCloseTries {
			b.log.Warn("close command failed, will retry", "addr", cg.g.Addr, "proto", cg.g.Proto, "port", cg.g.Port, "err", err)
			d := time.Second << (cg.tries - 1)
			if cg.timer == nil {
				cg.timer = time.AfterFunc(d, func() { b.expire(k) })
			} else {
				cg.timer.Reset(d)
			}
			j = nil // still open
			return
		}
		b.log.Error("close command failed, giving up", "addr", cg.g.Addr, "proto", cg.g.Proto, "port", cg.g.Port, "err", err)
	}
	if cg.timer != nil {
		cg.timer.Stop()
	}
	if b.grants[k] == cg {
		delete(b.grants, k)
	}
}

// Revoke implements Backend: it runs the close command now.
func (b *Command) Revoke(ctx context.Context, g Grant) error {
	v, err := values(g)
	if err != nil {
		return err
	}
	k := keyOf(g)
	s := b.stripe(k)
	s.Lock()
	defer s.Unlock()
	b.mu.Lock()
	cg := b.grants[k]
	b.mu.Unlock()
	if cg == nil {
		return nil
	}
	v[5] = "0"
	err = b.run(ctx, b.pick(g, b.close, b.close6), v)
	if err != nil {
		b.mu.Lock()
		cg.tries = cmdCloseTries - 1 // one more try at its time, then give up
		if cg.timer != nil {
			cg.timer.Reset(max(time.Until(cg.expiry), 0))
		}
		b.mu.Unlock()
		return fmt.Errorf("firewall: command: close: %w", err)
	}
	b.finish(k, cg, nil)
	return nil
}

// List implements Backend: the grants open by the journal, with their time
// left.
func (b *Command) List(ctx context.Context) ([]Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gs := make([]Grant, 0, len(b.grants))
	now := time.Now()
	for _, cg := range b.grants {
		g := cg.g
		g.Timeout = max(cg.expiry.Sub(now), 0)
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return gs, nil
}

// Teardown implements Backend: it closes every open grant now.
func (b *Command) Teardown(ctx context.Context) error {
	b.mu.Lock()
	gs := make([]Grant, 0, len(b.grants))
	for _, cg := range b.grants {
		gs = append(gs, cg.g)
	}
	b.mu.Unlock()
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs error
		sem  = make(chan struct{}, cmdParallel)
	)
	for _, g := range gs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := b.Revoke(ctx, g); err != nil {
				emu.Lock()
				errs = errors.Join(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// Close stops the timers and closes the journal, leaving the grants open
// and on record for the next instance (as a crash would, but tidily).
func (b *Command) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, cg := range b.grants {
		if cg.timer != nil {
			cg.timer.Stop()
		}
	}
	clear(b.grants)
	if b.j == nil {
		return nil
	}
	err := b.j.close()
	b.j = nil
	return err
}

// SplitCommand splits one configuration line into an argument vector for
// CommandConfig, the way a POSIX shell splits words but with none of its
// expansions: words are separated by blanks; '...' keeps everything
// inside as it is; "..." keeps everything but \" and \\, which stand for
// " and \; outside quotes a backslash keeps the next character. Nothing
// else is special ($, `, *, ~ and ; are plain characters, and
// NewCommand refuses the ones that suggest a shell was expected).
func SplitCommand(line string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' at column %d", i+1)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inArg = true
		case c == '"':
			start := i + 1
			for i++; ; i++ {
				if i >= len(line) {
					return nil, fmt.Errorf("unterminated \" at column %d", start)
				}
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				} else if line[i] == '"' {
					break
				}
				cur.WriteByte(line[i])
			}
			inArg = true
		case c == '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("backslash at the end of the line")
			}
			i++
			cur.WriteByte(line[i])
			inArg = true
		case c < 0x20 || c == 0x7f:
			return nil, fmt.Errorf("control character at column %d", i+1)
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}
