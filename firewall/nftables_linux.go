package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
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
		return nil, err
	}
	b := &NFTables{opts: opts, mark: opts.Mark, nftConn: nftConn{what: "nftables", netns: opts.NetNS, extra: connOpts}}
	if opts.NetNS != 0 {
		// Our own copy: the socket is dialled again after errors.
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("nftables: namespace: %w", err)
		}
		b.opts.NetNS = fd
	}
	if b.mark == 0 {
		b.mark = DefaultMark
	}
	b.table = &nftables.Table{Name: NFTablesTable, Family: nftables.TableFamilyINet}
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
		return nil, err
	}
	return b, nil
}

func checkProtect(rs []PortRange) error {
	for _, r := range rs {
		if _, err := ipproto(r.Proto); err != nil {
			return err
		}
		if r.From == 0 || r.To < r.From {
			return fmt.Errorf("firewall: bad port range %s/%d-%d", r.Proto, r.From, r.To)
		}
	}
	return nil
}

// Name implements Backend.
func (b *NFTables) Name() string { return "nftables" }

// Setup creates the table, sets and chain, or repairs them: the chain's
// rules are replaced in the same batch, so there is no moment without
// them, and the sets keep their elements. A set or chain of the wrong kind
// (someone else's, or an older layout) is replaced with the whole table.
func (b *NFTables) Setup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	stale, err := b.stale()
	if err != nil {
		return err
	}
	c := b.conn
	if stale {
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
			return fmt.Errorf("nftables: setup: set %s: %w", s.Name, err)
		}
	}
	c.FlushChain(chain)
	for _, r := range b.rules(chain) {
		c.AddRule(r)
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("nftables: setup: %w", err)
	}
	return nil
}

func ref[T any](v T) *T { return &v }

// stale reports whether an existing table holds objects of our names that
// are not what we would create.
func (b *NFTables) stale() (bool, error) {
	t, err := b.conn.ListTableOfFamily(NFTablesTable, nftables.TableFamilyINet)
	if err != nil || t == nil {
		return false, nil // absent
	}
	sets, err := b.conn.GetSets(b.table)
	if err != nil {
		return false, fmt.Errorf("nftables: list sets: %w", err)
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
	for _, r := range b.opts.Protect {
		p, _ := ipproto(r.Proto)
		e := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		}
		if r.From == r.To {
			e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.From)})
		} else {
			e = append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint16(r.From), ToData: binaryutil.BigEndian.PutUint16(r.To)})
		}
		rs = append(rs, rule(append(e, drop)...))
	}
	return rs
}

func (b *NFTables) element(g Grant) (*nftables.Set, []byte, error) {
	if g.Addr.Zone() != "" {
		return nil, nil, errors.New("firewall: address with a zone")
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
// vCPUs), so the margin is several ticks; no one notices 50 ms more on a
// grant of seconds or hours. List subtracts it again.
const kernelTick = 50 * time.Millisecond

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
		return err
	}
	if g.Timeout < time.Millisecond {
		// An element without a timeout would never expire.
		return fmt.Errorf("firewall: grant timeout %v too short", g.Timeout)
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
		return err
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("nftables: grant %s %s/%d: %w", g.Addr, g.Proto, g.Port, err)
	}
	return nil
}

// Revoke implements Backend, with the same add-then-delete batch, so that
// revoking an absent grant is not an error.
func (b *NFTables) Revoke(ctx context.Context, g Grant) error {
	set, key, err := b.element(g)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conn
	if err := errors.Join(
		c.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: time.Second}}),
		c.SetDeleteElements(set, []nftables.SetElement{{Key: key}}),
	); err != nil {
		return err
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("nftables: revoke %s %s/%d: %w", g.Addr, g.Proto, g.Port, err)
	}
	return nil
}

// List implements Backend: the kernel's elements with their time left.
func (b *NFTables) List(ctx context.Context) ([]Grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var gs []Grant
	for _, set := range []*nftables.Set{b.set4, b.set6} {
		els, err := b.conn.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("nftables: list %s: %w", set.Name, err)
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
		return fmt.Errorf("nftables: teardown: %w", err)
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
