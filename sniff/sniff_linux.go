package sniff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/encoding"
)

const (
	pollTimeout = 100 * time.Millisecond // how soon Run notices cancellation when idle
	resync      = 30 * time.Second       // full interface rescan, in case an update was lost
	resubscribe = time.Second
)

// source is where packets come from: an AF_PACKET receive ring
// (capture_afpacket.go), or libpcap when built with the pcap tag
// (capture_pcap.go). A source starts out dropping everything.
type source interface {
	// next returns the next packet from its IP header on (cut to the
	// snap length) and what the kernel says about it; errIdle when none
	// came within pollTimeout.
	next() (data []byte, f frame, err error)
	// ready reports whether next would return at once (false when the
	// source cannot tell).
	ready() bool
	// setFilter installs the kernel filter for f and the interfaces.
	setFilter(f filterSpec, ifindexes []int) error
	// counters returns the running totals of packets the kernel filter
	// passed and of those dropped for lack of room.
	counters() (matched, dropped uint64)
	close()
}

var errIdle = errors.New("no packet")

// frame is what the kernel reports about a packet besides its bytes.
type frame struct {
	ifindex int       // the interface it arrived on; -1: a packet to ignore
	at      time.Time // the kernel's receive time
	wire    int       // its length from the IP header on, before the cut
	tagged  bool      // it carried a VLAN tag (the tagged copy of a frame)
	// outgoing: the host sent it (only trigger packets may be outgoing)
	outgoing bool
}

// Sniffer captures knock packets. Create it with New, then call Run once.
type Sniffer struct {
	cfg    Config
	spec   filterSpec
	log    *slog.Logger
	named  map[string]bool
	inside map[string]bool // Config.Inside

	ns  netns.NsHandle
	nl  *netlink.Handle
	src source

	dec   *decoder
	ifs   atomic.Pointer[[]int]        // ifindexes captured for knocks, sorted
	addrs atomic.Pointer[[]netip.Addr] // the host's addresses, knock destinations
	tifs  atomic.Pointer[[]int]        // ifindexes captured for triggers, sorted

	mu       sync.Mutex // guards the fields below and filter changes
	closed   bool
	attached bool // the capture filter, not the initial drop-all
	matched  uint64
	dropped  uint64

	ran       atomic.Bool
	read      atomic.Uint64
	delivered atomic.Uint64
	rejected  atomic.Uint64

	// The reader's own counts, published to the three above whenever it
	// hands a batch on or waits: an atomic add per packet would be a full
	// barrier per packet.
	count struct{ read, delivered, rejected uint64 }
}

// publish makes the reader's counts visible to Stats.
func (s *Sniffer) publish() {
	s.read.Store(s.count.read)
	s.delivered.Store(s.count.delivered)
	s.rejected.Store(s.count.rejected)
}

// New opens the capture socket in the network namespace of the calling
// thread (the process's own, unless the caller switched a locked thread)
// and attaches the kernel filter for cfg. Packets are queued in the ring
// from then on, until Run reads them. It needs CAP_NET_RAW.
func New(cfg Config, log *slog.Logger) (*Sniffer, error) {
	if _, err := encoding.NewSpan(int(cfg.Span.Base)); err != nil {
		return nil, fmt.Errorf("sniff: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec := filterSpec{span: cfg.Span, outgoing: cfg.Outgoing}
	for _, r := range cfg.Triggers {
		if r.From == 0 || r.From > r.To || cfg.Span.Contains(r.From) || cfg.Span.Contains(r.To) ||
			(r.From < cfg.Span.Base && r.To > cfg.Span.Last()) {
			return nil, fmt.Errorf("sniff: trigger ports %d-%d: empty or overlapping the span", r.From, r.To)
		}
		spec.triggers = append(spec.triggers, r)
	}
	spec.triggers = mergeRanges(spec.triggers)
	if len(spec.triggers) > 0 && !sourceTriggers {
		return nil, errors.New("sniff: port triggering needs the AF_PACKET capture (a build without the pcap tag)")
	}
	s := &Sniffer{cfg: cfg, spec: spec, log: log, dec: newDecoderFor(spec), named: make(map[string]bool), inside: make(map[string]bool)}
	for _, n := range cfg.Interfaces {
		s.named[n] = true
	}
	for _, n := range cfg.Inside {
		s.inside[n] = true
	}
	empty := []int{}
	s.ifs.Store(&empty)
	s.tifs.Store(&empty)

	var err error
	if s.ns, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("sniff: network namespace: %w", err)
	}
	if s.nl, err = netlink.NewHandleAt(s.ns); err != nil {
		s.ns.Close()
		return nil, fmt.Errorf("sniff: netlink: %w", err)
	}
	if s.src, err = openSource(); err != nil {
		s.nl.Close()
		s.ns.Close()
		return nil, err
	}
	if err := s.refresh(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// Close releases the socket of a Sniffer whose Run was never called; once
// Run has started, Close does nothing and Run releases the socket when it
// returns.
func (s *Sniffer) Close() error {
	if s.ran.Load() {
		return nil
	}
	return s.close()
}

func (s *Sniffer) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.kernelStats()
	s.closed = true
	s.src.close()
	s.nl.Close()
	s.ns.Close()
	return nil
}

// Run reads packets until ctx is done and calls fn, from this goroutine,
// for each knock packet. fn must not keep p, which is reused. Run can be
// called once; it closes the Sniffer when it returns, and returns nil
// when ctx ended it.
func (s *Sniffer) Run(ctx context.Context, fn func(p *Packet)) error {
	return s.RunBatch(ctx, func(ps []Packet) {
		for i := range ps {
			fn(&ps[i])
		}
	})
}

// batchSize is the most packets RunBatch hands on at once.
const batchSize = 64

// RunBatch is Run with the packets handed on in batches, in the order they
// were read: a batch ends when batchSize packets are waiting, when the
// ring has no more, and before a nap, so a packet waits for no packet that
// has not arrived. fn must not keep ps, which is reused.
func (s *Sniffer) RunBatch(ctx context.Context, fn func(ps []Packet)) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("sniff: Run called twice")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("sniff: Run after Close")
	}
	defer s.close()

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(wctx)
	}()
	defer wg.Wait()
	defer stop()

	var batch [batchSize]Packet
	var z napper
	k := 0 // packets in batch
	flush := func() {
		// Counts first: once fn has a packet, Stats counts it.
		if s.count.read != s.read.Load() {
			s.publish()
		}
		if k > 0 {
			fn(batch[:k])
			k = 0
		}
	}
	defer s.publish()
	done := ctx.Done()
	rawNap := runtime.GOMAXPROCS(0) > 1
	for n := 0; ; n++ {
		if k == batchSize || !s.src.ready() {
			flush()
		}
		data, fr, err := s.src.next()
		if err != nil {
			if err == errIdle {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			return fmt.Errorf("sniff: read: %w", err)
		}
		if s.process(data, fr, &batch[k]) {
			k++
		}
		if d := z.next(fr.at); d > 0 {
			flush()
			nap(d, rawNap)
		}
		// A steady stream never times out, so look now and then.
		if n&255 == 0 {
			select {
			case <-done:
				return nil
			default:
			}
		}
	}
}

// Interrupt mitigation. The ring hands each frame over at once, so a
// reader that has caught up sleeps in poll and is woken for every single
// packet: under a flood that is a context switch per packet, ten times the
// cost of the packet itself. When packets arrive densely and the reader has
// caught up with them, it naps instead, so that its next read finds a batch
// waiting; the nap bounds what it adds to a packet's latency. Old packets
// (a backlog older than the nap) never cause a nap, so the reader drains a
// backlog at full speed, and a quiet stream never naps at all.
//
// Only a stream whose last window of a thousand packets came densely (a
// flood; the senders of one pause now and then) gets naps, long enough to
// find about napBatch packets waiting, from napMin up to napMax. A short
// burst, such as a knock sent back to back, never does: each of its
// packets is read as soon as the reader is woken, since a nap within a
// knock adds to its last packet's latency (it was half of the time from
// the last packet to the daemon's batch in the side-by-side harness) and
// saves only the few wakeups of one knock. Under a flood a knock's
// packets wait at most two naps, far below what an assembly may take, and
// the ring holds many times the packets of a nap.
const (
	denseGap   = 125 * time.Microsecond // packets closer than this are a dense stream
	floodEnd   = 100 * time.Millisecond // a silence this long ends a flood
	sustained  = 1024                   // packets of a window of the stream
	napBatch   = 2048                   // packets a grown nap aims to find waiting
	napMin     = 100 * time.Microsecond // the shortest nap, under a flood
	napMax     = 4 * time.Millisecond   // the longest nap, under a flood
	clockEvery = 16                     // packets between clock reads, at most
)

// napper decides, from the kernel's receive times alone, whether and how
// long the reader naps after a packet.
type napper struct {
	// Times in nanoseconds since 1970, as the kernel stamps packets;
	// plain integers, as time.Time's arithmetic costs more than the rest
	// of the decision.
	prev   int64 // the previous packet
	wstart int64 // the first packet of the current window
	wn     int   // packets in the current window
	mean   int64 // mean gap over the stream's last full window
	flood  bool  // that window was dense
	clock  int64 // the time, read at most clockEvery packets ago
	reads  int   // packets since clock was read

	now func() time.Time // nil: time.Now; tests set it
}

// next returns how long to nap after the packet received at t: 0 when the
// packet is not part of a dense stream or is a backlog's.
func (z *napper) next(t time.Time) time.Duration {
	at := t.UnixNano()
	gap := at - z.prev
	switch {
	case gap >= 0:
		z.prev = at
	case gap > -int64(floodEnd):
		// Packets received on two CPUs at about the same time reach the
		// ring slightly out of order: for the stream, no gap at all.
		// (Taking it for a new stream kept floods below 100k packets/s
		// from ever counting as one.)
		gap = 0
	default:
		z.prev = at // the clock was stepped back
	}
	if gap >= int64(floodEnd) || gap < 0 {
		z.wstart, z.wn, z.flood = at, 0, false
	}
	// The mean follows the rate over windows of sustained packets.
	if z.wn++; z.wn == sustained {
		z.mean = (at - z.wstart) / sustained
		z.flood = z.mean < int64(denseGap)
		z.wstart, z.wn = at, 0
	}
	// In a flood the reader naps whenever the packet it just read is
	// younger than the nap: its backlog stays under two naps' worth of
	// packets, a small part of the ring. (How young the last packet of a
	// batch is depends on how the senders batch their packets and on the
	// machine's load; a tighter bound missed most chances to nap on a
	// busy machine.) Outside a flood it never naps.
	if !z.flood {
		return 0
	}
	d := min(max(time.Duration(z.mean)*napBatch, napMin), napMax)
	// How old the packet is: a clock read costs about as much as the
	// rest of a packet's path, so under a flood it is read every
	// clockEvery packets, and whenever a packet is not older than the
	// clock (which is then stale). A stale clock makes a packet look
	// younger than it is, by no more than the reader took for the last
	// few packets: a backlog that built up since is newer than the clock,
	// so it is timed with a fresh one and drained without a nap.
	if z.reads++; z.reads >= clockEvery || at >= z.clock {
		z.reads = 0
		if z.now != nil {
			z.clock = z.now().UnixNano()
		} else {
			z.clock = time.Now().UnixNano()
		}
	}
	if z.clock-at >= int64(d) {
		return 0
	}
	return d
}

// htons puts a 16-bit value in network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// nap sleeps for d. With more than one P it is a raw system call: the
// runtime is not told, so its monitor thread is not woken to watch a
// thread blocked in a system call (under a flood that doubled the
// wakeups), and the process's other goroutines (the grant worker among
// them) run on the other P meanwhile. With one P a raw nap would keep them
// waiting for its length, so it is an ordinary system call there.
func nap(d time.Duration, raw bool) {
	ts := unix.NsecToTimespec(int64(d))
	if raw {
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		return
	}
	unix.Nanosleep(&ts, nil)
}

// process is the user-space half of the per-packet path: it re-checks a
// packet read from the ring and fills p.
func (s *Sniffer) process(data []byte, fr frame, p *Packet) bool {
	s.count.read++
	if fr.tagged || !s.dec.decodeFrame(data, fr.wire, p) || !s.captured(p.Kind, fr.ifindex) ||
		p.Kind == Knock && (fr.outgoing || !s.local(p.Dst)) {
		s.count.rejected++
		return false
	}
	p.Ifindex = fr.ifindex
	p.Time = fr.at
	s.count.delivered++
	return true
}

// local reports whether a is one of the host's own addresses: the host
// delivers a knock packet addressed to no other (SPEC.md §10.2). Before the
// first interface scan nothing is local.
func (s *Sniffer) local(a netip.Addr) bool {
	set := s.addrs.Load()
	if set == nil {
		return false
	}
	for _, l := range *set {
		if l == a {
			return true
		}
	}
	return false
}

func (s *Sniffer) captured(k Kind, ifindex int) bool {
	set := s.ifs.Load()
	if k == Trigger {
		set = s.tifs.Load()
	}
	for _, i := range *set {
		if i == ifindex {
			return true
		}
	}
	return false
}

// Stats returns the counters so far. It is safe to call at any time.
func (s *Sniffer) Stats() Stats {
	s.mu.Lock()
	s.kernelStats()
	st := Stats{Matched: s.matched, Dropped: s.dropped}
	s.mu.Unlock()
	st.Read = s.read.Load()
	st.Delivered = s.delivered.Load()
	st.Rejected = s.rejected.Load()
	st.Interfaces = len(*s.ifs.Load())
	return st
}

// kernelStats takes the source's counters while it is open. s.mu must be
// held.
func (s *Sniffer) kernelStats() {
	if !s.closed {
		s.matched, s.dropped = s.src.counters()
	}
}

// refresh recomputes the captured interfaces and, if they changed, swaps
// the user-space set and the kernel filter, in that order: a packet that
// passed the old filter is still checked against the new set.
func (s *Sniffer) refresh() error {
	links, local, err := links(s.nl)
	if err != nil {
		return err
	}
	var idx, tidx []int
	var names, tnames []string
	for _, l := range links {
		if s.cfg.Knocks(l) {
			idx = append(idx, l.Index)
			names = append(names, l.Name)
		}
		if s.cfg.TriggersOn(l) {
			tidx = append(tidx, l.Index)
			tnames = append(tnames, l.Name)
		}
	}
	slices.Sort(idx)
	slices.Sort(tidx)
	// The kernel filter passes the union; process tells them apart.
	kernel := append(slices.Clone(idx), tidx...) // non-nil: an empty set drops all
	slices.Sort(kernel)
	kernel = slices.Compact(kernel)

	s.addrs.Store(&local)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.attached && slices.Equal(idx, *s.ifs.Load()) && slices.Equal(tidx, *s.tifs.Load()) {
		return nil
	}
	if idx == nil {
		idx = []int{}
	}
	if tidx == nil {
		tidx = []int{}
	}
	s.ifs.Store(&idx)
	s.tifs.Store(&tidx)
	if err := s.src.setFilter(s.spec, kernel); err != nil {
		s.attached = false // try again on the next update
		return fmt.Errorf("sniff: attach filter: %w", err)
	}
	s.attached = true
	slices.Sort(names)
	s.log.Info("capturing", "interfaces", names, "ports", fmt.Sprintf("%d-%d", s.cfg.Span.Base, s.cfg.Span.Last()))
	if len(s.spec.triggers) > 0 {
		slices.Sort(tnames)
		s.log.Info("capturing triggers", "interfaces", tnames, "outgoing", s.spec.outgoing)
	}
	for _, set := range []map[string]bool{s.named, s.inside} {
		for n := range set {
			if !slices.Contains(names, n) && !slices.Contains(tnames, n) {
				s.log.Warn("interface not present yet", "interface", n)
			}
		}
	}
	return nil
}

// watch follows link and address changes in the Sniffer's namespace, so
// interfaces that appear, come back or get an address are captured
// without reopening anything: the one socket listens on all interfaces.
func (s *Sniffer) watch(ctx context.Context) {
	for ctx.Err() == nil {
		s.follow(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(resubscribe):
		}
	}
}

func (s *Sniffer) follow(ctx context.Context) {
	lch := make(chan netlink.LinkUpdate, 64)
	ach := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	onErr := func(err error) { s.log.Debug("netlink subscription", "err", err) }
	if err := netlink.LinkSubscribeWithOptions(lch, done, netlink.LinkSubscribeOptions{Namespace: &s.ns, ErrorCallback: onErr}); err != nil {
		s.log.Warn("cannot follow interface changes", "err", err)
		return
	}
	// A subscription closes its channel once its socket is closed; keep
	// it from blocking on a send until then.
	defer func() {
		go func() {
			for range lch {
			}
		}()
	}()
	if err := netlink.AddrSubscribeWithOptions(ach, done, netlink.AddrSubscribeOptions{Namespace: &s.ns, ErrorCallback: onErr}); err != nil {
		s.log.Warn("cannot follow address changes", "err", err)
		return
	}
	defer func() {
		go func() {
			for range ach {
			}
		}()
	}()
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		// Changes made while (re)subscribing are caught here.
		if err := s.refresh(); err != nil {
			s.log.Warn("interface update", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-lch:
			if !ok {
				return
			}
		case _, ok := <-ach:
			if !ok {
				return
			}
		case <-tick.C:
		}
		// Coalesce a burst of updates into one rescan.
		for drained := false; !drained; {
			select {
			case _, ok := <-lch:
				if !ok {
					return
				}
			case _, ok := <-ach:
				if !ok {
					return
				}
			default:
				drained = true
			}
		}
	}
}
