package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// NFTables is the nftables backend: it talks netlink to the kernel
// directly (no nft process). See nftables.go for the objects it owns and
// how it lives next to a host ruleset.
type NFTables struct {
	opts Options
	mark uint32

	mu      sync.Mutex // serialises use of conn: replies must not interleave
	nftConn            // in Options.NetNS

	table *nftables.Table
	set4  *nftables.Set
	set6  *nftables.Set

	owner bool   // the table carries the flags owner and persist
	why   string // why not, when it does not
}

var (
	_ Backend   = (*NFTables)(nil)
	_ io.Closer = (*NFTables)(nil)
	_ Backend   = (*Command)(nil)
	_ io.Closer = (*Command)(nil)
)

// NewNFTables returns the nftables backend. It checks the protected port
// ranges and opens a netlink socket; it changes nothing until Setup.
func NewNFTables(opts Options) (Backend, error) {
	return newNFTables(opts)
}

func newNFTables(opts Options, connOpts ...nftables.ConnOption) (*NFTables, error) {
	if err := checkProtect(opts.Protect); err != nil {
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	if err := checkLog(opts.Log); err != nil {
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	b := &NFTables{opts: opts, mark: opts.Mark, nftConn: nftConn{netns: opts.NetNS, extra: connOpts}}
	if opts.NetNS != 0 {
		// Our own copy: the socket is dialled again after errors.
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("firewall: nftables: namespace: %w", err)
		}
		b.opts.NetNS = fd
	}
	if b.mark == 0 {
		b.mark = DefaultMark
	}
	b.table = &nftables.Table{Name: opts.name(), Family: nftables.TableFamilyINet}
	if opts.NoOwner {
		b.why = "turned off in the configuration (firewall-owner = no): others can remove the table, and the daemon restores it when it notices"
	} else {
		b.owner = true
		b.table.Flags = nftables.TableFlagOwner | nftables.TableFlagPersist
	}
	b.set4 = &nftables.Set{
		Table: b.table, Name: NFTablesSet4, HasTimeout: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
	}
	b.set6 = &nftables.Set{
		Table: b.table, Name: NFTablesSet6, HasTimeout: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService),
	}
	if err := b.dial(); err != nil {
		if b.opts.NetNS != 0 {
			unix.Close(b.opts.NetNS)
		}
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	return b, nil
}

// checkLog validates a Log: its ports, and a prefix of at most
// MaxLogPrefix letters, digits and "_.:-", or else a group from 1 on.
func checkLog(l Log) error {
	if len(l.Ports) == 0 {
		return nil
	}
	if err := checkProtect(l.Ports); err != nil {
		return err
	}
	if l.Prefix == "" {
		if l.Group == 0 {
			return errors.New("log group 0 is the kernel's default group; use 1 to 65535")
		}
		return nil
	}
	if !ValidLogPrefix(l.Prefix) {
		return fmt.Errorf("log prefix %q: at most %d letters, digits and _.:-", l.Prefix, MaxLogPrefix)
	}
	return nil
}

func checkProtect(rs []ports.Range) error {
	for _, r := range rs {
		if _, err := ipproto(r.Proto); err != nil {
			return err
		}
		if r.From == 0 || r.To < r.From {
			return fmt.Errorf("bad port range %s/%d-%d", r.Proto, r.From, r.To)
		}
	}
	return nil
}

// Name implements Backend.
func (b *NFTables) Name() string { return "nftables" }

// Setup creates the table, sets and chain, or repairs them: the chain's
// rules are replaced in the same batch, so there is no moment without
// them, and the sets keep their elements. A set or chain of the wrong kind
// (someone else's, or an older layout), or a table without the flags this
// backend wants, is replaced with the whole table in one batch that also
// puts the grants back with their time left.
//
// Where the kernel has them (Linux 6.9), the table carries the flags owner
// and persist: only this backend's netlink socket can change or delete it
// ("nft flush ruleset" leaves it alone), and after the daemon exits the
// table stays, with its drops and its grants expiring on time, until the
// next daemon claims it again. A table owned by another live socket is
// refused: another daemon runs in this network namespace.
func (b *NFTables) Setup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.setup()
	if err != nil && b.owner && !b.opts.NoOwner && errors.Is(err, unix.EOPNOTSUPP) {
		// A kernel without the flags (owner: 5.12, persist: 6.9).
		b.owner, b.why = false, fmt.Sprintf("the kernel refuses the table flags owner and persist (%v): others can remove the table, and the daemon restores it when it notices", err)
		b.table.Flags = 0
		err = b.setup()
	}
	if err != nil {
		return fmt.Errorf("firewall: nftables: setup: %w", err)
	}
	return nil
}

func (b *NFTables) setup() error {
	c := b.conn
	t, _ := c.ListTableOfFamily(b.table.Name, nftables.TableFamilyINet)
	if t != nil && t.Flags&nftables.TableFlagOwner != 0 {
		pid, err := c.GetPortID()
		if err != nil {
			return err
		}
		if t.Owner != pid {
			who := b.tagLocked()
			if who == "" {
				who = "another process"
			}
			return fmt.Errorf("table inet %s is owned by %s (netlink port %d): another cipherknockd runs in this network namespace; stop it, or give this one another firewall-name", b.table.Name, who, t.Owner)
		}
	}
	if t != nil && t.Flags&nftables.TableFlagOwner == 0 {
		// No owner in the kernel: the tag says who made the table.
		if tag := b.tagLocked(); tag != "" && tag != b.opts.Tag && tagAlive(tag) {
			return fmt.Errorf("table inet %s belongs to %s, which is running: another cipherknockd runs in this network namespace; stop it, or give this one another firewall-name", b.table.Name, tag)
		}
	}
	stale, err := b.stale()
	if err != nil {
		return err
	}
	if t != nil && !stale && t.Flags&(nftables.TableFlagOwner|nftables.TableFlagPersist) != b.table.Flags {
		stale = true // flags cannot be changed in place
	}
	var keep []Grant
	if t != nil && stale {
		keep, _ = b.list()
		c.DelTable(b.table)
	}
	c.AddTable(b.table)
	chain := c.AddChain(&nftables.Chain{
		Name:     NFTablesChain,
		Table:    b.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(NFTablesPriority),
		Policy:   ref(nftables.ChainPolicyAccept),
	})
	for _, s := range []*nftables.Set{b.set4, b.set6} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	c.FlushChain(chain)
	for _, r := range b.rules(chain) {
		c.AddRule(r)
	}
	for _, g := range keep {
		if g.Timeout < time.Millisecond {
			continue
		}
		set, key, err := b.element(g)
		if err == nil {
			c.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: g.Timeout.Round(time.Millisecond) + kernelTick}})
		}
	}
	return b.flush()
}

func ref[T any](v T) *T { return &v }

// stale reports whether an existing table holds objects of our names that
// are not what we would create.
func (b *NFTables) stale() (bool, error) {
	t, err := b.conn.ListTableOfFamily(b.table.Name, nftables.TableFamilyINet)
	if err != nil || t == nil {
		return false, nil // absent
	}
	sets, err := b.conn.GetSets(b.table)
	if err != nil {
		return false, fmt.Errorf("list sets: %w", err)
	}
	for _, want := range []*nftables.Set{b.set4, b.set6} {
		for _, s := range sets {
			if s.Name == want.Name && (!s.HasTimeout || s.IsMap || s.Interval || s.KeyType.Bytes != want.KeyType.Bytes || s.KeyType.GetNFTMagic() != want.KeyType.GetNFTMagic()) {
				return true, nil
			}
		}
	}
	ch, err := b.conn.ListChain(b.table, NFTablesChain)
	if err != nil {
		return false, nil // absent
	}
	if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput ||
		ch.Priority == nil || *ch.Priority != NFTablesPriority || ch.Type != nftables.ChainTypeFilter {
		return true, nil
	}
	return false, nil
}

// rules builds the chain's rules (see nftables.go).
func (b *NFTables) rules(chain *nftables.Chain) []*nftables.Rule {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rule := func(e ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Table: b.table, Chain: chain, Exprs: e}
	}
	// Registers 8.. are the 4-byte registers a concatenated key is loaded
	// into, one field after the other.
	const reg32 = 8
	grant := func(nfproto byte, addrOff, addrLen uint32, set *nftables.Set) *nftables.Rule {
		next := reg32 + addrLen/4
		return rule(
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Payload{DestRegister: reg32, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: addrLen},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
			&expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: reg32, SetName: set.Name, SetID: set.ID},
			// meta mark set meta mark | b.mark
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^b.mark), Xor: binaryutil.NativeEndian.PutUint32(b.mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
			accept,
		)
	}
	rs := []*nftables.Rule{
		// meta mark set meta mark & ~b.mark: a packet that arrives with
		// the bit already set (by a mangle rule, tc or anyone) must not
		// pass the host's mark rule as if it were granted.
		rule(
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^b.mark), Xor: make([]byte, 4)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		),
		rule(
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			accept,
		),
		rule(
			&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_LOOPBACK)},
			accept,
		),
		grant(unix.NFPROTO_IPV4, 12, 4, b.set4),
		grant(unix.NFPROTO_IPV6, 8, 16, b.set6),
	}
	if b.opts.Tag != "" {
		rs[0].UserData = userdata.AppendString(nil, userdata.TypeComment, b.opts.Tag)
	}
	for _, r := range b.opts.Log.Ports {
		p, _ := ipproto(r.Proto)
		log := &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN, Group: b.opts.Log.Group, Snaplen: nflogSnaplen}
		if b.opts.Log.Prefix != "" {
			log = &expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Data: []byte(b.opts.Log.line()), Level: expr.LogLevelInfo}
		}
		rs = append(rs, rule(append(portMatch(p, r), log)...))
	}
	for _, r := range b.opts.Protect {
		p, _ := ipproto(r.Proto)
		rs = append(rs, rule(append(portMatch(p, r), drop)...))
	}
	return rs
}

// portMatch matches packets of IP protocol p to the ports of r.
func portMatch(p byte, r ports.Range) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
	if r.From == r.To {
		return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.From)})
	}
	return append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1,
		FromData: binaryutil.BigEndian.PutUint16(r.From), ToData: binaryutil.BigEndian.PutUint16(r.To)})
}

// nflogSnaplen is how much of a logged packet NFLOG copies: the IPv6 and
// TCP headers with room to spare.
const nflogSnaplen = 128

func (b *NFTables) element(g Grant) (*nftables.Set, []byte, error) {
	if g.Addr.Zone() != "" {
		return nil, nil, errors.New("address with a zone")
	}
	key, v6, err := setKey(g.Addr, g.Proto, g.Port)
	if err != nil {
		return nil, nil, err
	}
	if v6 {
		return b.set6, key, nil
	}
	return b.set4, key, nil
}

// kernelTick is added to every element's timeout: the kernel counts
// timeouts in jiffies (1 to 10 ms) from a clock that may lag up to one
// tick, so without it an element could go a few milliseconds before its
// time. In a virtual machine whose CPUs are starved, jiffies can lag the
// wall clock by more than a tick (seen: 18 ms under a load of 10 on 2
// vCPUs, and 78 ms once while the whole test suite ran on 2 vCPUs), so the
// margin is many ticks; no one notices 100 ms more on a grant of seconds
// or hours. List subtracts it again.
const kernelTick = 100 * time.Millisecond

// Grant implements Backend. When an element that exists is added again,
// older kernels keep its first timeout (the nftables wiki: "the element
// should be recreated") and kernels with commit 4201f3938914 ("set element
// timeout update support", 2024) replace it, so a grant is sent as add,
// delete, add in one atomic batch: the first add makes the delete valid whether or not the
// element existed, and the last add sets the new timeout. The batch is a
// single transaction, so a re-grant never closes the door in between.
func (b *NFTables) Grant(ctx context.Context, g Grant) error {
	set, key, err := b.element(g)
	if err != nil {
		return fmt.Errorf("firewall: nftables: grant: %w", err)
	}
	if g.Timeout < time.Millisecond {
		// An element without a timeout would never expire.
		return fmt.Errorf("firewall: nftables: grant timeout %v too short", g.Timeout)
	}
	el := []nftables.SetElement{{Key: key, Timeout: g.Timeout.Round(time.Millisecond) + kernelTick}}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conn
	if err := errors.Join(
		c.SetAddElements(set, el),
		c.SetDeleteElements(set, []nftables.SetElement{{Key: key}}),
		c.SetAddElements(set, el),
	); err != nil {
		return fmt.Errorf("firewall: nftables: grant: %w", err)
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("firewall: nftables: grant %s %s/%d: %w", g.Addr, g.Proto, g.Port, err)
	}
	return nil
}

// Revoke implements Backend, with the same add-then-delete batch, so that
// revoking an absent grant is not an error.
func (b *NFTables) Revoke(ctx context.Context, g Grant) error {
	set, key, err := b.element(g)
	if err != nil {
		return fmt.Errorf("firewall: nftables: revoke: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conn
	if err := errors.Join(
		c.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: time.Second}}),
		c.SetDeleteElements(set, []nftables.SetElement{{Key: key}}),
	); err != nil {
		return fmt.Errorf("firewall: nftables: revoke: %w", err)
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("firewall: nftables: revoke %s %s/%d: %w", g.Addr, g.Proto, g.Port, err)
	}
	return nil
}

// List implements Backend: the kernel's elements with their time left.
func (b *NFTables) List(ctx context.Context) ([]Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gs, err := b.list()
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	return gs, nil
}

func (b *NFTables) list() ([]Grant, error) {
	var gs []Grant
	for _, set := range []*nftables.Set{b.set4, b.set6} {
		els, err := b.conn.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", set.Name, err)
		}
		for _, e := range els {
			addr, proto, port, ok := parseSetKey(e.Key)
			if !ok {
				continue // not one of ours
			}
			gs = append(gs, Grant{Addr: addr, Proto: proto, Port: port, Timeout: max(0, e.Expires-kernelTick)})
		}
	}
	slices.SortFunc(gs, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return gs, nil
}

// Teardown implements Backend: it deletes the table with everything in it.
func (b *NFTables) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn.DelTable(b.table)
	if err := b.flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("firewall: nftables: teardown: %w", err)
	}
	return nil
}

// Close releases the netlink socket (and namespace descriptor); the
// kernel objects stay.
func (b *NFTables) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.conn.CloseLasting()
	if b.opts.NetNS != 0 {
		unix.Close(b.opts.NetNS)
		b.opts.NetNS = 0
	}
	return err
}

// ProbeNFTables reports whether the kernel's nf_tables works here (in the
// namespace netns, when non-zero): it creates and deletes a throwaway
// table in one batch, which needs the module and CAP_NET_ADMIN.
func ProbeNFTables(netns int) error {
	opts := []nftables.ConnOption{}
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: fmt.Sprintf("cipherknock-probe-%d", unix.Getpid()), Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	return c.Flush()
}

// flush sends the buffered batch. When it fails the socket is replaced
// (nftConn.flush), and a table with the owner flag belonged to the old
// one: claim it again at once, so that it is not left for anyone to flush.
func (b *NFTables) flush() error {
	err := b.nftConn.flush()
	if err != nil && b.owner {
		b.conn.AddTable(b.table)
		if cerr := b.nftConn.flush(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("claiming table inet %s again: %w", b.table.Name, cerr))
		}
	}
	return err
}

// tagLocked returns the comment on the first rule of the table's chain:
// the tag of the daemon that made it, or "".
func (b *NFTables) tagLocked() string {
	rs, err := b.conn.GetRules(b.table, &nftables.Chain{Name: NFTablesChain, Table: b.table})
	if err != nil || len(rs) == 0 {
		return ""
	}
	tag, _ := userdata.GetString(rs[0].UserData, userdata.TypeComment)
	return tag
}

// Protected implements Supervised.
func (b *NFTables) Protected() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner, b.why
}

// Verify implements Supervised: the table (owned by this backend's
// socket, when it has the owner flag), both sets, the chain on its hook
// and priority, and exactly the rules Setup put there.
func (b *NFTables) Verify(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.verify(); err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	return nil
}

func (b *NFTables) verify() error {
	c := b.conn
	t, err := c.ListTableOfFamily(b.table.Name, nftables.TableFamilyINet)
	if err != nil || t == nil {
		return fmt.Errorf("table inet %s is gone", b.table.Name)
	}
	if b.owner {
		pid, err := c.GetPortID()
		if err != nil {
			return err
		}
		if t.Flags&nftables.TableFlagOwner == 0 || t.Owner != pid {
			return fmt.Errorf("table inet %s is not owned by this daemon", b.table.Name)
		}
	}
	stale, err := b.stale()
	if err != nil {
		return err
	}
	if stale {
		return fmt.Errorf("table inet %s holds objects of another kind", b.table.Name)
	}
	sets, err := c.GetSets(b.table)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	for _, want := range []*nftables.Set{b.set4, b.set6} {
		if !slices.ContainsFunc(sets, func(s *nftables.Set) bool { return s.Name == want.Name }) {
			return fmt.Errorf("set %s is gone", want.Name)
		}
	}
	ch, err := c.ListChain(b.table, NFTablesChain)
	if err != nil || ch == nil {
		return fmt.Errorf("chain %s is gone", NFTablesChain)
	}
	rs, err := c.GetRules(b.table, ch)
	if err != nil {
		return fmt.Errorf("chain %s: %w", NFTablesChain, err)
	}
	if want := len(b.rules(ch)); len(rs) != want {
		return fmt.Errorf("chain %s holds %d rules, not %d", NFTablesChain, len(rs), want)
	}
	return nil
}

// Watch implements Supervised: it listens to nf_tables' change
// notifications (the multicast group "nft monitor" reads) and calls
// changed for every deletion, and for any change of a table of ours,
// made by another socket than this backend's. iptables-nft's changes
// arrive there too.
func (b *NFTables) Watch(ctx context.Context, changed func()) error {
	err := watchNFT(ctx, b.opts.NetNS, func() uint32 {
		b.mu.Lock()
		defer b.mu.Unlock()
		pid, _ := b.conn.GetPortID()
		return pid
	}, changed)
	if err != nil {
		return fmt.Errorf("firewall: nftables: watch: %w", err)
	}
	return nil
}

var _ Supervised = (*NFTables)(nil)

// Adopter is implemented by backends that must take over the kernel
// objects of the backend they replace at a reload rather than make their
// own: an nftables table with the owner flag belongs to one netlink
// socket, so the new backend swaps sockets with the old one.
type Adopter interface {
	// Adopt swaps connections with old, if old is the same kind of
	// backend for the same objects; calling it again swaps them back.
	Adopt(old Backend)
}

// Adopt implements Adopter.
func (b *NFTables) Adopt(old Backend) {
	o, ok := old.(*NFTables)
	if !ok || o == b || o.table.Name != b.table.Name {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn, o.conn = o.conn, b.conn
	b.owner, b.why, b.table.Flags = o.owner, o.why, o.table.Flags
}

// tagAlive reports whether the tag "cipherknockd pid=N ..." names a live
// cipherknockd other than this process.
func tagAlive(tag string) bool {
	var pid int
	if _, err := fmt.Sscanf(tag, "cipherknockd pid=%d", &pid); err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "cipherknockd"
}
