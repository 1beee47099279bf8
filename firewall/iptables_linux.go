package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/internal/namespace"
	"github.com/cipherknock/cipherknock/ports"
)

const (
	iptTable = "filter"
	iptHook  = "INPUT"
)

// iptFamily is one family's half of the backend.
type iptFamily struct {
	ipt   *iptables.IPTables
	set   ipsetFamily
	name  string // "iptables" or "ip6tables", for errors
	chain string // our chain in the filter table
}

var (
	_ Backend   = (*iptablesBackend)(nil)
	_ io.Closer = (*iptablesBackend)(nil)
)

type iptablesBackend struct {
	protect []ports.Range
	log     Log
	fams    []iptFamily // IPv4, then IPv6 unless the kernel has none

	// ns is a duplicate of Options.NetNS, or -1: the iptables commands
	// run in it. The netlink handle was opened in it and needs it no
	// more.
	ns netns.NsHandle

	// mu guards h against Close and serializes the backend's methods:
	// the socket answers one request at a time anyway, and Setup and
	// Teardown must not interleave with each other.
	mu sync.Mutex
	h  *netlink.Handle
}

// NewIPTables returns the iptables backend (configuration name
// "iptables"). It checks that the iptables and ip6tables commands exist
// and can read the filter table, and that the kernel speaks ipset, so a
// host that lacks either fails here with a clear error rather than at the
// first knock. It changes nothing: Setup installs the rules.
//
// opts.Protect may list ranges in any order, overlapping or not: the
// chain gets one DROP per merged range, sorted, so its content depends
// only on the set of protected ports.
//
// With opts.NetNS set, netlink messages go to that namespace and the
// iptables commands run in it; the backend keeps its own duplicate of the
// descriptor. Without it, the backend works in the namespace of the
// thread that calls NewIPTables (a daemon started with "ip netns exec"
// works in that namespace).
//
// The returned backend also implements io.Closer, which releases its
// netlink socket and namespace descriptor and leaves the kernel state as
// it is.
func NewIPTables(opts Options) (Backend, error) {
	protect, err := iptProtectRanges(opts.Protect)
	if err != nil {
		return nil, fmt.Errorf("firewall: iptables: %w", err)
	}
	if err := checkLog(opts.Log); err != nil {
		return nil, fmt.Errorf("firewall: iptables: %w", err)
	}
	b := &iptablesBackend{protect: protect, log: opts.Log, ns: netns.None()}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if opts.NetNS != 0 {
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("firewall: iptables: network namespace: %w", err)
		}
		b.ns = netns.NsHandle(fd)
		b.h, err = netlink.NewHandleAt(b.ns, unix.NETLINK_NETFILTER)
	} else {
		b.h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("firewall: iptables: netfilter netlink socket: %w", err)
	}
	if err := ipsetCheck(b.h); err != nil {
		return nil, fmt.Errorf("firewall: iptables: %w", err)
	}
	for _, p := range []struct {
		proto iptables.Protocol
		name  string
		set   ipsetFamily
	}{
		{iptables.ProtocolIPv4, "iptables", ipsetV4},
		{iptables.ProtocolIPv6, "ip6tables", ipsetV6},
	} {
		if p.proto == iptables.ProtocolIPv6 && !iptKernelHasIPv6() {
			// No IPv6 packet can arrive, so there is nothing to
			// protect; a host booted with ipv6.disable=1 has no
			// ip6tables tables either.
			continue
		}
		ipt, err := iptables.New(iptables.IPFamily(p.proto))
		if err != nil {
			return nil, fmt.Errorf("firewall: iptables: %s command: %w", p.name, err)
		}
		chain, set4, set6 := iptNames(opts.name())
		set := ipsetFamily{set4, p.set.family}
		if p.set.family == unix.AF_INET6 {
			set.set = set6
		}
		b.fams = append(b.fams, iptFamily{ipt: ipt, set: set, name: p.name, chain: chain})
	}
	err = b.inNS(func() error {
		for _, f := range b.fams {
			if _, err := f.ipt.List(iptTable, iptHook); err != nil {
				return fmt.Errorf("%s cannot read the %s table: %w", f.name, iptTable, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firewall: iptables: %w", err)
	}
	ok = true
	return b, nil
}

func (b *iptablesBackend) Name() string { return "iptables" }

// Close releases the netlink socket and the namespace descriptor. Grants
// stay in the kernel and expire there.
func (b *iptablesBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		b.h.Close()
		b.h = nil
	}
	if b.ns.IsOpen() {
		b.ns.Close()
		b.ns = netns.None()
	}
	return nil
}

// Setup creates or repairs, per family: the set, the chain and its rules,
// and the jump from INPUT. What is already right is left alone, so grants
// in the sets and established flows survive.
func (b *iptablesBackend) Setup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("firewall: iptables: closed")
	}
	return b.inNS(func() error {
		for _, f := range b.fams {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("firewall: iptables: %w", err)
			}
			if err := b.setupFamily(f); err != nil {
				return fmt.Errorf("firewall: iptables: %w", err)
			}
		}
		return nil
	})
}

func (b *iptablesBackend) setupFamily(f iptFamily) error {
	exists, ok, err := ipsetState(b.h, f.set)
	if err != nil {
		return err
	}
	if exists && !ok {
		// A set of our name but the wrong kind: our chain may reference
		// it, so empty the chain before replacing the set. The refill
		// below restores the rules.
		if err := iptClearChain(f); err != nil {
			return err
		}
		if err := ipsetDestroy(b.h, f.set); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if err := ipsetCreate(b.h, f.set); err != nil {
			return err
		}
	}
	if err := iptSyncChain(f, iptRules(f.set.set, b.protect, b.log)); err != nil {
		return err
	}
	return iptSyncJump(f)
}

// Teardown removes, per family, the jump, the chain and then the set.
// Objects already gone are not an error.
//
// The filter table and its built-in chains are the host's and stay. On a
// host whose iptables (nf_tables mode) had no rules at all before Setup,
// that leaves the empty filter table with an accept-policy INPUT chain
// that iptables created for the jump: it filters nothing, and the backend
// cannot tell it from one the host made, so it does not delete it.
func (b *iptablesBackend) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("firewall: iptables: closed")
	}
	return b.inNS(func() error {
		var errs []error
		for _, f := range b.fams {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := iptRemoveJumps(f); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := f.ipt.ClearAndDeleteChain(iptTable, f.chain); err != nil {
				errs = append(errs, fmt.Errorf("%s: delete chain %s: %w", f.name, f.chain, err))
				continue
			}
			if err := ipsetDestroy(b.h, f.set); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("firewall: iptables: %w", err)
		}
		return nil
	})
}

// Grant adds g to its family's set with g.Timeout (whole seconds, rounded
// up). If the entry is there already, the kernel sets its timeout anew.
func (b *iptablesBackend) Grant(ctx context.Context, g Grant) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, e, err := ipsetEntry(g, true)
	if err != nil {
		return fmt.Errorf("firewall: iptables: grant: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("firewall: iptables: closed")
	}
	fam, err := b.family(f)
	if err != nil {
		return fmt.Errorf("firewall: iptables: grant for %s: %w", g.Addr, err)
	}
	if err := ipsetCall(func() error { return b.h.IpsetAdd(fam.set.set, e) }); err != nil {
		return fmt.Errorf("firewall: iptables: ipset add %s: %w", fam.set.set, err)
	}
	return nil
}

// Revoke deletes g's entry. An entry that is not there is not an error.
func (b *iptablesBackend) Revoke(ctx context.Context, g Grant) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, e, err := ipsetEntry(g, false)
	if err != nil {
		return fmt.Errorf("firewall: iptables: revoke: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("firewall: iptables: closed")
	}
	fam, err := b.family(f)
	if err != nil {
		return nil // nothing of that family can be open
	}
	if err := ipsetCall(func() error { return b.h.IpsetDel(fam.set.set, e) }); err != nil {
		return fmt.Errorf("firewall: iptables: ipset del %s: %w", fam.set.set, err)
	}
	return nil
}

// family returns the half of the backend that handles the address
// family of f.
func (b *iptablesBackend) family(f ipsetFamily) (iptFamily, error) {
	for _, x := range b.fams {
		if x.set.family == f.family {
			return x, nil
		}
	}
	return iptFamily{}, errors.New("IPv6 is disabled in this kernel")
}

// List returns the entries of both sets with the time the kernel gives
// them, IPv4 first.
func (b *iptablesBackend) List(ctx context.Context) ([]Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return nil, errors.New("firewall: iptables: closed")
	}
	var gs []Grant
	var err error
	for _, f := range b.fams {
		if gs, err = ipsetGrants(b.h, f.set, gs); err != nil {
			return nil, fmt.Errorf("firewall: iptables: %w", err)
		}
	}
	return gs, nil
}

// iptKernelHasIPv6 reports whether the kernel supports IPv6 sockets at
// all; it is a variable so tests can play a kernel without IPv6.
var iptKernelHasIPv6 = func() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return !errors.Is(err, unix.EAFNOSUPPORT)
	}
	unix.Close(fd)
	return true
}

// inNS runs fn with the iptables commands it starts in the backend's
// namespace. A child process inherits the network namespace of the thread
// that forks it, so fn runs on a locked thread switched into ns.
func (b *iptablesBackend) inNS(fn func() error) error {
	CloseOnExecAll() // fn runs iptables commands
	if !b.ns.IsOpen() {
		return fn()
	}
	return namespace.Do(b.ns, fn)
}

// iptProtectRanges validates the protected ranges and returns them sorted
// by protocol and port with overlapping or adjacent ranges merged, so the
// chain's rules depend on the set of protected ports only.
func iptProtectRanges(in []ports.Range) ([]ports.Range, error) {
	for _, r := range in {
		if _, err := ipsetProto(r.Proto); err != nil {
			return nil, fmt.Errorf("protected range %d-%d: %w", r.From, r.To, err)
		}
		if r.From == 0 || r.From > r.To {
			return nil, fmt.Errorf("protected range %v/%d-%d: not a range of ports 1-65535", r.Proto, r.From, r.To)
		}
	}
	return ports.Merge(in), nil
}

// iptRules returns the chain's rules, each exactly as "iptables -S" prints
// it (without the "-A CHAIN" prefix), so that what is installed can be
// compared with what should be.
func iptRules(set string, protect []ports.Range, log Log) [][]string {
	rules := [][]string{
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-i", "lo", "-j", "RETURN"},
		{"-m", "set", "--match-set", set, "src,dst", "-j", "ACCEPT"},
	}
	for _, r := range log.Ports {
		target := []string{"-j", "NFLOG", "--nflog-group", strconv.Itoa(int(log.Group)), "--nflog-size", strconv.Itoa(nflogSnaplen)}
		if log.Prefix != "" {
			target = []string{"-j", "LOG", "--log-prefix", log.line(), "--log-level", "6"}
		}
		rules = append(rules, append(iptMatch(r), target...))
	}
	for _, r := range protect {
		rules = append(rules, append(iptMatch(r), "-j", "DROP"))
	}
	return rules
}

// iptMatch matches the protocol and destination ports of r.
func iptMatch(r ports.Range) []string {
	p := r.Proto.String()
	ports := strconv.Itoa(int(r.From))
	if r.To != r.From {
		ports += ":" + strconv.Itoa(int(r.To))
	}
	return []string{"-p", p, "-m", p, "--dport", ports}
}

// iptSave writes a rule's arguments as "iptables -S" prints them: an
// argument with a space in it is quoted (our log prefix is the only one,
// and holds no quote or backslash).
func iptSave(rule []string) string {
	out := make([]string, len(rule))
	for i, a := range rule {
		if strings.ContainsRune(a, ' ') {
			a = `"` + a + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// iptChainRules returns the rules of the chain as "iptables -S" prints them
// without the "-A CHAIN " prefix, and whether the chain exists.
func iptChainRules(f iptFamily) ([]string, bool, error) {
	exists, err := f.ipt.ChainExists(iptTable, f.chain)
	if err != nil || !exists {
		return nil, false, wrapIpt(f, "list chains", err)
	}
	lines, err := f.ipt.List(iptTable, f.chain)
	if err != nil {
		return nil, false, wrapIpt(f, "list "+f.chain, err)
	}
	var rules []string
	prefix := "-A " + f.chain + " "
	for _, l := range lines {
		if r, ok := strings.CutPrefix(l, prefix); ok {
			rules = append(rules, r)
		}
	}
	return rules, true, nil
}

// iptSyncChain makes the chain hold exactly want. If its content differs,
// the new rules are appended behind the old ones, which are then deleted
// from the top: at every moment the chain holds one complete rule list or
// both, never a partial one.
func iptSyncChain(f iptFamily, want [][]string) error {
	have, exists, err := iptChainRules(f)
	if err != nil {
		return err
	}
	if !exists {
		if err := f.ipt.NewChain(iptTable, f.chain); err != nil {
			return wrapIpt(f, "create chain "+f.chain, err)
		}
	}
	if slices.EqualFunc(have, want, func(h string, w []string) bool { return h == iptSave(w) }) {
		return nil
	}
	for _, r := range want {
		if err := f.ipt.Append(iptTable, f.chain, r...); err != nil {
			return wrapIpt(f, "append to "+f.chain, err)
		}
	}
	for range have {
		if err := f.ipt.DeleteById(iptTable, f.chain, 1); err != nil {
			return wrapIpt(f, "delete from "+f.chain, err)
		}
	}
	return nil
}

// iptClearChain flushes the chain if it exists.
func iptClearChain(f iptFamily) error {
	exists, err := f.ipt.ChainExists(iptTable, f.chain)
	if err != nil || !exists {
		return wrapIpt(f, "list chains", err)
	}
	return wrapIpt(f, "flush "+f.chain, f.ipt.ClearChain(iptTable, f.chain))
}

// iptJumps returns the 1-based positions in INPUT of jumps to the chain.
func iptJumps(f iptFamily) ([]int, error) {
	lines, err := f.ipt.List(iptTable, iptHook)
	if err != nil {
		return nil, wrapIpt(f, "list "+iptHook, err)
	}
	var pos []int
	n := 0
	jump := "-A " + iptHook + " " + strings.Join(iptJump(f.chain), " ")
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue // the policy line
		}
		n++
		if l == jump {
			pos = append(pos, n)
		}
	}
	return pos, nil
}

// iptJump is the rule in INPUT that sends packets through the chain, and
// iptBridge a marked copy that stands in for it while it is repaired.
func iptJump(chain string) []string { return []string{"-j", chain} }
func iptBridge(chain string) []string {
	return []string{"-m", "comment", "--comment", "cipherknock repair", "-j", chain}
}

// iptNames returns the chain and set names for the object base name:
// CIPHERKNOCK, cipherknock4 and cipherknock6 for the default.
func iptNames(name string) (chain, set4, set6 string) {
	return strings.ToUpper(name), name + "4", name + "6"
}

// iptSyncJump makes the jump the first rule of INPUT and the only one.
//
// Other programs may edit INPUT at the same time, so rules are deleted by
// their content, never by a position read earlier, which might by then
// be someone else's rule. As deleting by content removes the first match,
// a marked bridge jump is inserted first: while the plain jumps are
// deleted and the one first jump inserted, the chain stays in the path.
func iptSyncJump(f iptFamily) error {
	pos, err := iptJumps(f)
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == 1 {
		return nil
	}
	if err := f.ipt.Insert(iptTable, iptHook, 1, iptBridge(f.chain)...); err != nil {
		return wrapIpt(f, "insert jump into "+iptHook, err)
	}
	if err := iptDeleteAll(f, iptJump(f.chain), len(pos)); err != nil {
		return err
	}
	if err := f.ipt.Insert(iptTable, iptHook, 1, iptJump(f.chain)...); err != nil {
		return wrapIpt(f, "insert jump into "+iptHook, err)
	}
	return iptDeleteAll(f, iptBridge(f.chain), 1)
}

// iptRemoveJumps deletes every jump to the chain from INPUT, including a
// bridge a repair left behind.
func iptRemoveJumps(f iptFamily) error {
	// Without the chain there can be no jump to it, and iptables refuses
	// to check for one.
	if exists, err := f.ipt.ChainExists(iptTable, f.chain); err != nil || !exists {
		return wrapIpt(f, "list chains", err)
	}
	if err := iptDeleteAll(f, iptBridge(f.chain), 1); err != nil {
		return err
	}
	pos, err := iptJumps(f)
	if err != nil {
		return err
	}
	return iptDeleteAll(f, iptJump(f.chain), len(pos))
}

// iptDeleteAll deletes rule from INPUT while it is there. n is how many
// copies were seen; a few more are allowed for copies added meanwhile,
// but the loop is bounded.
func iptDeleteAll(f iptFamily, rule []string, n int) error {
	for range n + 8 {
		ok, err := f.ipt.Exists(iptTable, iptHook, rule...)
		if err != nil {
			return wrapIpt(f, "check "+iptHook, err)
		}
		if !ok {
			return nil
		}
		if err := f.ipt.Delete(iptTable, iptHook, rule...); err != nil {
			return wrapIpt(f, "delete jump from "+iptHook, err)
		}
	}
	return fmt.Errorf("%s: jumps to %s keep reappearing in %s", f.name, f.chain, iptHook)
}

func wrapIpt(f iptFamily, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", f.name, what, err)
}

var _ Supervised = (*iptablesBackend)(nil)

// Protected implements Supervised: nothing in iptables keeps others from
// flushing the chain or deleting the jump.
func (b *iptablesBackend) Protected() (bool, string) {
	return false, "iptables has no owner for rules: others can flush them (iptables -F, iptables-restore), and the daemon restores them when it notices"
}

// Verify implements Supervised: per family, the set of the right kind,
// the chain with exactly its rules, and the one jump to it at the top of
// INPUT.
func (b *iptablesBackend) Verify(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("firewall: iptables: closed")
	}
	err := b.inNS(func() error {
		for _, f := range b.fams {
			exists, ok, err := ipsetState(b.h, f.set)
			if err != nil {
				return err
			}
			if !exists || !ok {
				return fmt.Errorf("set %s is gone or of another kind", f.set.set)
			}
			have, exists, err := iptChainRules(f)
			if err != nil {
				return err
			}
			want := iptRules(f.set.set, b.protect, b.log)
			if !exists || !slices.EqualFunc(have, want, func(h string, w []string) bool { return h == iptSave(w) }) {
				return fmt.Errorf("%s: chain %s is gone or changed", f.name, f.chain)
			}
			if err := iptJumpFirst(f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("firewall: iptables: %w", err)
	}
	return nil
}

// Watch implements Supervised. iptables-nft's changes are nf_tables
// changes and come as notifications; iptables-legacy sends none.
func (b *iptablesBackend) Watch(ctx context.Context, changed func()) error {
	if !iptablesIsNFT() {
		return ErrNoNotifications
	}
	b.mu.Lock()
	fd := -1
	if b.ns.IsOpen() {
		fd = int(b.ns)
	}
	b.mu.Unlock()
	if fd < 0 {
		fd = 0
	}
	if err := watchNFT(ctx, fd, func() uint32 { return 0 }, changed); err != nil {
		return fmt.Errorf("firewall: iptables: watch: %w", err)
	}
	return nil
}

// iptablesIsNFT reports whether the iptables command is iptables-nft
// ("iptables v1.8.9 (nf_tables)").
func iptablesIsNFT() bool {
	out, err := exec.Command("iptables", "--version").Output()
	return err == nil && strings.Contains(string(out), "nf_tables")
}

// iptJumpFirst checks that INPUT jumps to the chain exactly once, with
// nothing before the jump but jumps to other cipherknock daemons' chains
// (CIPHERKNOCK-*, which only accept granted and drop protected packets),
// so that two daemons with different object names do not keep moving
// each other's jump.
func iptJumpFirst(f iptFamily) error {
	lines, err := f.ipt.List(iptTable, iptHook)
	if err != nil {
		return wrapIpt(f, "list "+iptHook, err)
	}
	jump := "-A " + iptHook + " " + strings.Join(iptJump(f.chain), " ")
	seen := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		if l == jump {
			seen++
			continue
		}
		other, ok := strings.CutPrefix(l, "-A "+iptHook+" -j ")
		if seen == 0 && !(ok && (other == IPTablesChain || strings.HasPrefix(other, IPTablesChain+"-"))) {
			return fmt.Errorf("%s: a rule comes before the jump to %s in %s: %s", f.name, f.chain, iptHook, l)
		}
	}
	if seen != 1 {
		return fmt.Errorf("%s: %s jumps to %s %d times, not once", f.name, iptHook, f.chain, seen)
	}
	return nil
}
