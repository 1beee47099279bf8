package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NAT forwards ports of a NAT gateway to inside hosts, per remote address,
// with kernel timeouts; nat.go describes the objects it owns. It is safe
// for concurrent use.
type NAT struct {
	outside []string
	mark    uint32

	mu      sync.Mutex // serialises use of conn: replies must not interleave
	nftConn            // netns: our duplicate of NATOptions.NetNS, or 0
	table   *nftables.Table
	map4    *nftables.Set
	map6    *nftables.Set
}

// NewNAT returns a NAT forwarder. It checks the options and opens a
// netlink socket; it changes nothing until Setup.
func NewNAT(opts NATOptions) (*NAT, error) {
	n := &NAT{outside: slices.Clone(opts.Outside), mark: opts.Mark, nftConn: nftConn{}}
	if n.mark == 0 {
		n.mark = DefaultNATMark
	}
	if bits.OnesCount32(n.mark) != 1 {
		return nil, fmt.Errorf("firewall: nat: mark %#x is not a single bit", n.mark)
	}
	for _, name := range n.outside {
		if name == "" || len(name) >= unix.IFNAMSIZ {
			return nil, fmt.Errorf("firewall: nat: %q is not an interface name", name)
		}
	}
	if opts.NetNS != 0 {
		// Our own copy: the socket is dialled again after errors.
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("firewall: nat: network namespace: %w", err)
		}
		n.netns = fd
	}
	n.table = &nftables.Table{Name: NATTable, Family: nftables.TableFamilyINet}
	n.map4 = &nftables.Set{
		Table: n.table, Name: NATMap4, IsMap: true, HasTimeout: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
		DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
	}
	n.map6 = &nftables.Set{
		Table: n.table, Name: NATMap6, IsMap: true, HasTimeout: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService),
		DataType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService),
	}
	if err := n.dial(); err != nil {
		if n.netns != 0 {
			unix.Close(n.netns)
		}
		return nil, fmt.Errorf("firewall: nat: %w", err)
	}
	return n, nil
}

// Close releases the netlink socket and namespace descriptor; the kernel
// objects and the forwards in them stay, and expire on time.
func (n *NAT) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.CloseLasting()
	n.conn = nil
	if n.netns != 0 {
		unix.Close(n.netns)
		n.netns = 0
	}
	return err
}

// Setup creates the table, maps and chains, or repairs them in one batch:
// the chains' rules are replaced atomically and the maps keep their
// forwards. A map or chain of the wrong kind (an older layout, or someone
// else's) is replaced together with the whole table. Running Setup twice
// leaves the same state as running it once.
func (n *NAT) Setup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("firewall: nat: closed")
	}
	stale, err := n.stale()
	if err != nil {
		return err
	}
	c := n.conn
	if stale {
		c.DelTable(n.table)
	}
	c.AddTable(n.table)
	for _, m := range []*nftables.Set{n.map4, n.map6} {
		if err := c.AddSet(m, nil); err != nil {
			return fmt.Errorf("firewall: nat: map %s: %w", m.Name, err)
		}
	}
	pre := c.AddChain(&nftables.Chain{
		Name: NATPrerouting, Table: n.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(NATPriority),
		Policy: ref(nftables.ChainPolicyAccept),
	})
	fwd := c.AddChain(&nftables.Chain{
		Name: NATForwardChain, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(NATForwardPriority),
		Policy: ref(nftables.ChainPolicyAccept),
	})
	c.FlushChain(pre)
	c.FlushChain(fwd)
	for _, r := range n.rules(pre, fwd) {
		c.AddRule(r)
	}
	if err := n.flush(); err != nil {
		return fmt.Errorf("firewall: nat: setup: %w", err)
	}
	return nil
}

// stale reports whether the table holds objects of our names that are not
// what Setup creates.
func (n *NAT) stale() (bool, error) {
	if t, err := n.conn.ListTableOfFamily(NATTable, nftables.TableFamilyINet); err != nil || t == nil {
		return false, nil // absent
	}
	sets, err := n.conn.GetSets(n.table)
	if err != nil {
		return false, fmt.Errorf("firewall: nat: list maps: %w", err)
	}
	for _, want := range []*nftables.Set{n.map4, n.map6} {
		for _, s := range sets {
			if s.Name == want.Name && (!s.IsMap || !s.HasTimeout || s.Interval ||
				s.KeyType.Bytes != want.KeyType.Bytes || s.KeyType.GetNFTMagic() != want.KeyType.GetNFTMagic() ||
				s.DataType.Bytes != want.DataType.Bytes || s.DataType.GetNFTMagic() != want.DataType.GetNFTMagic()) {
				return true, nil
			}
		}
	}
	for _, want := range []struct {
		name string
		typ  nftables.ChainType
		hook *nftables.ChainHook
		prio int32
	}{
		{NATPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, NATPriority},
		{NATForwardChain, nftables.ChainTypeFilter, nftables.ChainHookForward, NATForwardPriority},
	} {
		ch, err := n.conn.ListChain(n.table, want.name)
		if err != nil || ch == nil {
			continue // absent
		}
		if ch.Type != want.typ || ch.Hooknum == nil || *ch.Hooknum != *want.hook ||
			ch.Priority == nil || int32(*ch.Priority) != want.prio {
			return true, nil
		}
	}
	return false, nil
}

// Registers as the kernel numbers them: the 16-byte NFT_REG_1..4 and the
// 4-byte NFT_REG32_00.. that overlay them (NFT_REG32_00..03 = NFT_REG_1).
const (
	natReg1   = 1 // NFT_REG_1
	natReg3   = 3 // NFT_REG_3, clear of a looked-up IPv6 value in NFT_REG_1 and NFT_REG32_04
	natReg32  = 8 // NFT_REG32_00
	rtnLocal  = 2 // RTN_LOCAL, the fib address type of the host's own addresses
	natIfSize = unix.IFNAMSIZ
)

// rules builds the chains' rules (see nat.go).
func (n *NAT) rules(pre, fwd *nftables.Chain) []*nftables.Rule {
	mark := binaryutil.NativeEndian.PutUint32(n.mark)
	setBit := func(load, store expr.Any) []expr.Any {
		return []expr.Any{
			load,
			&expr.Bitwise{SourceRegister: natReg3, DestRegister: natReg3, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^n.mark), Xor: mark},
			store,
		}
	}
	dnat := func(iif string, nfproto byte, addrOff, addrLen uint32, m *nftables.Set) *nftables.Rule {
		var e []expr.Any
		if iif != "" {
			name := make([]byte, natIfSize)
			copy(name, iif)
			e = append(e,
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: natReg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: natReg1, Data: name})
		}
		// Key registers: address, then protocol, then port, one after
		// the other from NFT_REG32_00. The value lands in NFT_REG_1 on:
		// address, then port in the next 4-byte register.
		proto := natReg32 + addrLen/4
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: natReg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: natReg1, Data: []byte{nfproto}},
			&expr.Fib{Register: natReg1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: natReg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
			&expr.Payload{DestRegister: natReg32, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: addrLen},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: proto},
			&expr.Payload{DestRegister: proto + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: natReg32, SetName: m.Name, SetID: m.ID, DestRegister: natReg1, IsDestRegSet: true},
		)
		e = append(e, setBit(
			&expr.Ct{Key: expr.CtKeyMARK, Register: natReg3},
			&expr.Ct{Key: expr.CtKeyMARK, Register: natReg3, SourceRegister: true})...)
		e = append(e, &expr.NAT{
			Type: expr.NATTypeDestNAT, Family: uint32(nfproto),
			RegAddrMin: natReg1, RegAddrMax: natReg1, RegProtoMin: proto, RegProtoMax: proto,
			Specified: true,
		})
		return &nftables.Rule{Table: n.table, Chain: pre, Exprs: e}
	}
	var rs []*nftables.Rule
	ifs := n.outside
	if len(ifs) == 0 {
		ifs = []string{""}
	}
	for _, iif := range ifs {
		rs = append(rs,
			dnat(iif, unix.NFPROTO_IPV4, 12, 4, n.map4),
			dnat(iif, unix.NFPROTO_IPV6, 8, 16, n.map6))
	}
	accept := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: natReg1},
		&expr.Bitwise{SourceRegister: natReg1, DestRegister: natReg1, Len: 4, Mask: mark, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: natReg1, Data: mark},
	}
	accept = append(accept, setBit(
		&expr.Meta{Key: expr.MetaKeyMARK, Register: natReg3},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: natReg3, SourceRegister: true})...)
	accept = append(accept, &expr.Verdict{Kind: expr.VerdictAccept})
	return append(rs, &nftables.Rule{Table: n.table, Chain: fwd, Exprs: accept})
}

type natElem struct {
	m        *nftables.Set
	key, val []byte // val nil: any value (Revoke without an inside host)
	timeout  time.Duration
}

func (n *NAT) elements(fs []Forward, forward bool) ([]natElem, error) {
	es := make([]natElem, 0, len(fs))
	for _, f := range fs {
		key, v6, err := natKey(f.Remote, f.Proto, f.Port)
		var val []byte
		if err == nil && (forward || f.To.IsValid()) {
			val, err = natVal(f.To, v6)
		}
		if err != nil {
			return nil, fmt.Errorf("firewall: nat: %v: %w", f, err)
		}
		if forward && f.Timeout < time.Millisecond {
			// An element without a timeout would never expire.
			return nil, fmt.Errorf("firewall: nat: %v: timeout %v too short", f, f.Timeout)
		}
		e := natElem{m: n.map4, key: key, val: val, timeout: min(f.Timeout, maxNATTimeout).Round(time.Millisecond)}
		if v6 {
			e.m = n.map6
		}
		// A later forward of the same key replaces an earlier one.
		es = slices.DeleteFunc(es, func(o natElem) bool { return o.m == e.m && bytes.Equal(o.key, e.key) })
		es = append(es, e)
	}
	return es, nil
}

// Forward opens every f for f.Timeout (rounded to milliseconds), in one
// atomic batch. A forward whose remote, protocol and port are already
// forwarded replaces the old one, its inside host and its time left: a
// repeated forward refreshes, and a forward to another inside host takes
// the port over (the engine in package trigger decides whether it may).
// Connections already made through the old forward keep their inside host.
func (n *NAT) Forward(ctx context.Context, fs ...Forward) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	es, err := n.elements(fs, true)
	if err != nil || len(es) == 0 {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("firewall: nat: closed")
	}
	// Fast path, for new forwards and renewals: add, delete, add. The
	// first add makes the delete valid whether or not the element
	// existed, and the last one sets the new timeout on every kernel
	// (before the "set element timeout update support" of 2024, adding
	// an element that exists kept its old timeout). It fails with EEXIST
	// when a key is forwarded to another inside host.
	err = n.batch(es, func(c *nftables.Conn, e natElem, el []nftables.SetElement) error {
		return errors.Join(c.SetAddElements(e.m, el), c.SetDeleteElements(e.m, el), c.SetAddElements(e.m, el))
	})
	if !errors.Is(err, unix.EEXIST) {
		return n.wrap("forward", err)
	}
	return n.replace(es)
}

// Replace is Forward for a caller that knows the ports are forwarded to
// another inside host (a last-wins takeover): it lists the map first and
// replaces what is there in one batch. Forward gets there too, but only
// after a batch the kernel refuses, and a refused batch costs about 10 ms
// of the kernel's time, against well under a millisecond for this path
// (BenchmarkNATForward).
func (n *NAT) Replace(ctx context.Context, fs ...Forward) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	es, err := n.elements(fs, true)
	if err != nil || len(es) == 0 {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("firewall: nat: closed")
	}
	return n.replace(es)
}

// replace deletes what is there for es's keys, whatever it points to, and
// adds es, in one batch. An element may expire between the listing and
// the batch; the batch then fails with ENOENT and is tried once more.
func (n *NAT) replace(es []natElem) error {
	for try := 0; ; try++ {
		have, err := n.present(es)
		if err != nil {
			return err
		}
		err = n.batch(es, func(c *nftables.Conn, e natElem, el []nftables.SetElement) error {
			var errs []error
			if old, ok := have[string(e.key)]; ok && old.m == e.m {
				errs = append(errs, c.SetDeleteElements(e.m, []nftables.SetElement{{Key: e.key}}))
			}
			return errors.Join(append(errs, c.SetAddElements(e.m, el))...)
		})
		if err == nil || try > 0 || !errors.Is(err, unix.ENOENT) {
			return n.wrap("forward", err)
		}
	}
}

// Revoke closes each forward f of f.Remote, f.Proto and f.Port before its
// time, if it leads to f.To; with f.To the zero AddrPort, whatever it
// leads to. A forward that is not there, or leads elsewhere, is left
// alone and is not an error.
func (n *NAT) Revoke(ctx context.Context, fs ...Forward) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	es, err := n.elements(fs, false)
	if err != nil || len(es) == 0 {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("firewall: nat: closed")
	}
	for try := 0; ; try++ {
		have, lerr := n.present(es)
		if lerr != nil {
			return lerr
		}
		var del []natElem
		for _, e := range es {
			old, ok := have[string(e.key)]
			if ok && old.m == e.m && (e.val == nil || bytes.Equal(old.val, e.val)) {
				del = append(del, e)
			}
		}
		if len(del) == 0 {
			return nil
		}
		err = n.batch(del, func(c *nftables.Conn, e natElem, _ []nftables.SetElement) error {
			return c.SetDeleteElements(e.m, []nftables.SetElement{{Key: e.key}})
		})
		if err == nil || try > 0 || !errors.Is(err, unix.ENOENT) {
			return n.wrap("revoke", err)
		}
	}
}

// batch queues op for every element and sends them as one transaction.
func (n *NAT) batch(es []natElem, op func(c *nftables.Conn, e natElem, el []nftables.SetElement) error) error {
	for _, e := range es {
		el := []nftables.SetElement{{Key: e.key, Val: e.val, Timeout: e.timeout}}
		if err := op(n.conn, e, el); err != nil {
			// Nothing was sent; drop what was queued with a fresh socket.
			n.conn.CloseLasting()
			return errors.Join(err, n.dial())
		}
	}
	return n.flush()
}

// present returns the elements of es's maps that the kernel holds, by key.
func (n *NAT) present(es []natElem) (map[string]natElem, error) {
	have := make(map[string]natElem)
	for _, m := range []*nftables.Set{n.map4, n.map6} {
		if !slices.ContainsFunc(es, func(e natElem) bool { return e.m == m }) {
			continue
		}
		els, err := n.conn.GetSetElements(m)
		if err != nil {
			return nil, fmt.Errorf("firewall: nat: list %s: %w", m.Name, err)
		}
		for _, el := range els {
			have[string(el.Key)] = natElem{m: m, key: el.Key, val: el.Val}
		}
	}
	return have, nil
}

func (n *NAT) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("firewall: nat: %s: %w", what, err)
}

// List returns the forwards in the kernel with the time it gives them
// left, IPv4 first, each family sorted by remote address and port.
func (n *NAT) List(ctx context.Context) ([]Forward, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil, errors.New("firewall: nat: closed")
	}
	var fs []Forward
	for _, m := range []*nftables.Set{n.map4, n.map6} {
		els, err := n.conn.GetSetElements(m)
		if err != nil {
			return nil, fmt.Errorf("firewall: nat: list %s: %w", m.Name, err)
		}
		start := len(fs)
		for _, el := range els {
			f, ok := parseNATElement(el.Key, el.Val)
			if !ok {
				continue // not one of ours
			}
			f.Timeout = el.Expires
			fs = append(fs, f)
		}
		slices.SortFunc(fs[start:], func(a, b Forward) int {
			if c := a.Remote.Compare(b.Remote); c != 0 {
				return c
			}
			if a.Proto != b.Proto {
				return int(a.Proto) - int(b.Proto)
			}
			return int(a.Port) - int(b.Port)
		})
	}
	return fs, nil
}

// Teardown deletes the table with everything in it. A table that is not
// there is not an error.
func (n *NAT) Teardown(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errors.New("firewall: nat: closed")
	}
	n.conn.DelTable(n.table)
	if err := n.flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("firewall: nat: teardown: %w", err)
	}
	return nil
}
