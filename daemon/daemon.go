// Package daemon is the receiver's pipeline (SPEC.md §10.2, §8, §7.2 and
// §11): it tracks the knocks in progress per source address in a table of
// fixed size, opens each knock once its packets are all in, checks its time,
// its replay ID and its user's policy, and hands the grant to a firewall
// backend; it also serves the local control socket, whose status
// (status.go) is one typed value, encoded to JSON only on the socket.
//
// Packets come from one sniff.Capture, run by Run; a sniff.BatchCapture
// hands them on in batches, and each batch's knock packets are filed under
// one lock and one clock reading (handleBatch). The per-packet path
// (HandlePacket) allocates nothing. A completed knock is
// validated in the same goroutine, because an Opener is not safe for
// concurrent use and opening is cheap (README, Performance); the firewall work
// is handed to a worker through a buffered channel, so capture never waits
// on the kernel.
//
// The same daemon does port triggering (trigger.go, package trigger): the
// capture's connection attempts to trigger ports become grants of the same
// backend, or forwards on a NAT gateway, with kernel expiry.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/replay"
	"github.com/cipherknock/cipherknock/sniff"
)

// Options configure a daemon.
type Options struct {
	Config *config.Config
	// Reload reads the configuration again (on SIGHUP or a reload
	// request). Nil: reloading is refused.
	Reload func() (*config.Config, error)
	// Capture opens the packet capture: knock packets, and trigger
	// packets when the configuration has triggers. Packets must be
	// queued from the moment it returns, so that Run may announce it is
	// listening.
	Capture func(*config.Config) (sniff.Capture, error)
	// Backend returns the firewall backend for a configuration.
	Backend func(*config.Config) (firewall.Backend, error)
	Log     *slog.Logger

	// NAT returns the NAT forwarder of a gateway's triggers (trigger.go);
	// nil: NewNAT.
	NAT func(*config.Config) (*firewall.NAT, error)

	// Clock is the wall clock that knocks' times are checked against
	// and the replay cache expires by; nil: time.Now. Tests step it.
	Clock func() time.Time
}

// ReplayFile is the replay cache's file name in the state directory.
const ReplayFile = "replay.cache"

// grantQueue is how many grants may wait for the firewall worker.
const grantQueue = 256

// Classes under which rejected knocks are counted and logged, besides
// crypto's and policy's own errors.
var (
	ErrReplayWrite  = errors.New("replay cache write")
	ErrFirewallBusy = errors.New("firewall busy")
	ErrFirewall     = errors.New("firewall error")
)

// classes lists every rejection class in SPEC.md §8 order.
var classes = []error{
	crypto.ErrUnknownVersion, crypto.ErrMalformed, crypto.ErrUnknownUser,
	crypto.ErrBadTag, crypto.ErrFieldRange, crypto.ErrStale, crypto.ErrFuture,
	replay.ErrReplay, replay.ErrFull, ErrReplayWrite,
	policy.ErrSource, policy.ErrPort, policy.ErrDuration, policy.ErrAddress,
	ErrFirewallBusy, ErrFirewall,
}

// classNames names the classes whose error says more than a receiver can
// know: a knock sealed under another realm key decrypts to an arbitrary
// user index, so "unknown user" may as well be a wrong realm key.
var classNames = map[error]string{
	crypto.ErrUnknownUser: "unknown user or wrong realm key",
}

// className is class i's name in logs, status and metrics.
func className(i int) string {
	if n, ok := classNames[classes[i]]; ok {
		return n
	}
	return classes[i].Error()
}

// Classes returns the names of the rejection classes, as logged.
func Classes() []string {
	s := make([]string, len(classes))
	for i := range classes {
		s[i] = className(i)
	}
	return s
}

func classOf(err error) int {
	for i, c := range classes {
		if err == c {
			return i
		}
	}
	return len(classes) - 1
}

// state is what a reload replaces.
type state struct {
	cfg    *config.Config
	opener *crypto.Opener // used only under Daemon.in
	users  map[uint16]*policy.User
}

type job struct {
	seq    uint64 // the knock's replay record, synced before the grant
	g      firewall.Grant
	close  bool
	user   string
	src    netip.Addr
	start  time.Time // first packet of the knock
	action crypto.Action
}

// recentSize is how many accepted knocks are remembered with their source,
// to tell a client's repeated pass of the same knock (harmless, not
// logged) from a replay by someone else.
const recentSize = 64

type sourceID struct {
	src netip.Addr
	id  crypto.ReplayID
}

// owner says who made a grant, for status, until when.
type owner struct {
	user    string
	expires time.Time
}

type grantKey struct {
	addr  netip.Addr
	proto ports.Proto
	port  uint16
}

// Daemon is a running receiver. Its state is grouped by concern, each
// lock beside what it guards, as one small struct.
//
// Lock order: a goroutine holding one of these locks may take only those
// after it in this list:
//
//	reloadMu -> sup.mu -> fw -> in -> (the replay cache's own) -> rej
//
// owners, trig.mu and life.mu are leaves: nothing else is locked while
// one of them is held, and none is held across a call to the firewall.
// The worker makes its grants holding no lock; a repair makes its own
// under sup.mu, which keeps a repair and a reload's new backend from
// overlapping.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	epoch time.Time // the source table's clock counts from here

	// st is the configuration in force and what is built from it: the
	// packet path loads it without a lock; a reload stores it under
	// in's lock, with the table's new timeout.
	st atomic.Pointer[state]

	// in is the packet path's state: the capture goroutine files each
	// packet and opens each complete knock under its lock (the opener,
	// in st, is used only under it too); Status and a reload take it
	// briefly.
	in struct {
		sync.Mutex
		table      *Table
		recent     [recentSize]sourceID // knocks accepted lately, by source
		recentNext int
		kbuf       [crypto.MaxLen]byte // the reading being opened
		run        [batchRun]filing    // handleRun's scratch
	}

	// replay is the replay cache, which locks itself. lostCache: its
	// file was damaged and moved aside; freshCache: there was no file,
	// so knocks sealed before the start are refused (SPEC.md §7.2).
	// Both are set by New and only read afterwards.
	replay     *replay.Cache
	lostCache  bool
	freshCache bool

	// fw is the firewall backend in force; a reload that changes the
	// protected ports replaces it (under sup.mu, so that no repair uses
	// the old one meanwhile).
	fw struct {
		sync.Mutex
		backend firewall.Backend
	}
	reloadMu sync.Mutex // one reload at a time
	sup      supervisor // firewall repairs (supervise.go)
	work     chan job   // the grants waiting for the worker
	trig     *triggers  // port triggering (trigger.go); nil without triggers

	rej rejections // rejected knocks by class

	// owners says who made each grant this daemon made, until when: for
	// status, restoring grants after a flush, and revoking by user or
	// at a reload.
	owners struct {
		sync.Mutex
		m map[grantKey]owner
	}

	// counters of the worker and the packet path.
	counters struct {
		accepted   atomic.Uint64 // knocks carried out
		duplicates atomic.Uint64 // a sender's repeated passes, ignored
	}

	capture atomic.Pointer[sniff.Capture] // the running capture, for its counters

	life lifecycle
}

// lifecycle is how Run ends and who waits for it.
type lifecycle struct {
	mu      sync.Mutex
	cancel  context.CancelFunc // ends Run; nil until Run has started
	stopped bool               // Stop came, maybe before Run started

	// teardown: remove the firewall objects on the way out, and repair
	// nothing meanwhile. Set by Stop before it cancels.
	teardown atomic.Bool

	done     chan struct{}  // closed when Run is about to return
	err      error          // Run's result, once done is closed
	handlers sync.WaitGroup // control connections being served
}

// New prepares a daemon: it opens the replay cache and builds the source
// table and the firewall backend, but changes nothing in the kernel.
func New(opts Options) (*Daemon, error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{
		opts:  opts,
		log:   log,
		epoch: time.Now(),
		work:  make(chan job, grantQueue),
		rej:   newRejections(),
	}
	d.in.table = NewTable(cfg.MaxSources, cfg.AssemblyTimeout)
	d.owners.m = map[grantKey]owner{}
	d.life.done = make(chan struct{})
	d.sup.kick = make(chan struct{}, 1)
	st, err := newState(cfg)
	if err != nil {
		return nil, err
	}
	d.st.Store(st)
	if opts.Clock == nil {
		d.opts.Clock = time.Now
	}
	rc, lost, fresh, err := replay.OpenState(filepath.Join(cfg.StateDir, ReplayFile), cfg.ReplayCacheSize, d.opts.Clock().Unix())
	if err != nil {
		return nil, err
	}
	d.replay, d.lostCache, d.freshCache = rc, lost, fresh
	d.replay.SetUsers(len(cfg.Users))
	fw, err := opts.Backend(cfg)
	if err != nil {
		return nil, err
	}
	d.fw.backend = fw
	if d.trig, err = newTriggers(opts, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func newState(cfg *config.Config) (*state, error) {
	o, users, err := cfg.Opener()
	if err != nil {
		return nil, err
	}
	return &state{cfg: cfg, opener: o, users: users}, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *config.Config { return d.st.Load().cfg }

// Run sets up the firewall and runs the daemon until ctx is done, capture
// fails, or a stop request arrives; a stop request also tears the firewall
// down. Grants stay in the kernel otherwise, and expire there.
func (d *Daemon) Run(ctx context.Context) error {
	err := d.run(ctx)
	d.life.err = err
	close(d.life.done)
	// Let a stop request that is waiting for this see its answer out
	// before the process exits.
	waited := make(chan struct{})
	go func() { d.life.handlers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
	return err
}

func (d *Daemon) run(ctx context.Context) (err error) {
	cfg := d.Config()
	if d.lostCache {
		d.log.Error("replay cache was damaged and moved aside; refusing knocks that could be in it",
			"file", filepath.Join(cfg.StateDir, ReplayFile)+".corrupt", "for", time.Duration(replay.Retention)*time.Second)
	}
	if d.freshCache {
		d.log.Warn("no replay cache file: started a new one; knocks sealed before now are refused as replays",
			"file", filepath.Join(cfg.StateDir, ReplayFile))
	}
	if h := d.replay.Horizon(); h > d.opts.Clock().Unix() {
		d.log.Warn("the replay horizon is ahead of the clock (the clock went back): knocks sealed before it are refused as replays",
			"horizon", time.Unix(h, 0).UTC().Format(time.RFC3339))
	}
	if r := d.replay.Reserve(); len(cfg.Users) > 1 && r < 16 {
		d.log.Warn("replay-cache-size leaves each user fewer than 16 reserved entries; raise it", "reserved", r, "users", len(cfg.Users))
	}
	if err := d.setup(ctx); err != nil {
		return err
	}
	if err := d.setupTriggers(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.life.mu.Lock()
	d.life.cancel = cancel
	if d.life.stopped {
		cancel() // a stop came while the firewall was set up
	}
	d.life.mu.Unlock()

	src, err := d.opts.Capture(cfg)
	if err != nil {
		return err
	}
	// Close releases a capture whose Run is never reached.
	defer src.Close()
	firewall.CloseOnExecAll() // the capture's raw socket is not opened with SOCK_CLOEXEC
	d.capture.Store(&src)
	ln, err := listenControl(cfg.ControlSocket)
	if err != nil {
		return err
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); d.supervise(ctx) }()
	go func() { defer wg.Done(); d.serveControl(ctx, ln) }()
	go func() { defer wg.Done(); d.worker() }()
	go func() { defer wg.Done(); d.summaries(ctx) }()

	d.log.Info("cipherknockd running",
		"realm", cfg.Realm, "span", fmt.Sprintf("%d-%d", cfg.Span.Base, cfg.Span.Last()),
		"firewall", d.backend().Name(), "users", len(cfg.Users),
		"sources", d.in.table.Cap(), "table-bytes", d.in.table.Bytes(),
		"replay-entries", d.replay.Len(), "control", cfg.ControlSocket)
	stopTriggers := d.startTriggers(ctx)
	if bc, ok := src.(sniff.BatchCapture); ok {
		err = bc.RunBatch(ctx, d.handleBatch)
	} else {
		err = src.Run(ctx, d.handle)
	}
	if ctx.Err() != nil {
		err = nil // a requested stop, not a capture failure
	}
	cancel()
	ln.Close()
	close(d.work)
	wg.Wait()
	stopTriggers()
	if d.life.teardown.Load() {
		tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer tcancel()
		if terr := d.backend().Teardown(tctx); terr != nil {
			return fmt.Errorf("teardown: %w", terr)
		}
		if terr := d.teardownTriggers(tctx); terr != nil {
			return fmt.Errorf("teardown: %w", terr)
		}
		d.log.Info("firewall torn down")
	}
	if c, ok := d.backend().(io.Closer); ok {
		c.Close()
	}
	d.closeTriggers()
	d.log.Info("cipherknockd stopped")
	return err
}

func (d *Daemon) setup(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.backend().Setup(sctx); err != nil {
		return err // the backend's errors name it and the step
	}
	return nil
}

func (d *Daemon) backend() firewall.Backend {
	d.fw.Lock()
	defer d.fw.Unlock()
	return d.fw.backend
}

// Stop asks Run to return, tearing the firewall down first if teardown is
// set. A Stop before Run has started makes Run return once it has set
// the firewall up.
func (d *Daemon) Stop(teardown bool) {
	if teardown {
		d.life.teardown.Store(true) // and no repair may put back what is torn down
	}
	d.life.mu.Lock()
	defer d.life.mu.Unlock()
	d.life.stopped = true
	if d.life.cancel != nil {
		d.life.cancel()
	}
}

func (d *Daemon) now() int64 { return int64(time.Since(d.epoch)) + 1 }

// handle is the capture's callback: it hands each packet to the path of
// its kind. It is called from the capture goroutine only.
func (d *Daemon) handle(p *sniff.Packet) {
	if p.Kind == sniff.Knock {
		d.HandlePacket(p.Src, p.DstPort)
		return
	}
	d.HandleTrigger(p)
}

// handleBatch is handle for a batch of packets, in order: the knock
// packets of a run take the receiver's lock and read its clock once (the
// clock of the moment the batch is handled, a few microseconds after its
// packets were read, or at most a nap of the reader after they arrived).
// It is called from the capture goroutine only.
func (d *Daemon) handleBatch(ps []sniff.Packet) {
	st := d.st.Load()
	now := d.now()
	for len(ps) > 0 {
		n := d.handleRun(st, ps, now)
		ps = ps[n:]
		if len(ps) > 0 && ps[0].Kind != sniff.Knock {
			d.HandleTrigger(&ps[0])
			ps = ps[1:]
		}
	}
}

// handleRun files the knock packets at the head of ps, up to the first
// other packet or batchRun packets, and returns how many it consumed. It
// hashes all their sources first, starting the fetch of each one's bucket
// (Table.Prefetch), and then files them in order, so the table's cache
// misses of a batch overlap instead of coming one after the other
// (BenchmarkSpoofedFlood).
func (d *Daemon) handleRun(st *state, ps []sniff.Packet, now int64) int {
	n := 0
	for n < len(ps) && n < batchRun && ps[n].Kind == sniff.Knock {
		n++
	}
	if n == 0 {
		return 0
	}
	d.in.Lock()
	defer d.in.Unlock()
	t := d.in.table
	run := d.in.run[:n]
	for i := range run {
		p, r := &ps[i], &run[i]
		pos, b, ok := st.cfg.Span.Split(p.DstPort)
		r.filing = ok && !p.Src.Is4In6() // as in HandlePacket
		r.key, r.pos, r.b = p.Src.As16(), pos, b
		r.h = t.Hash(&r.key)
		t.Prefetch(r.h)
	}
	for i := range run {
		if r := &run[i]; r.filing {
			d.addHashed(st, &r.key, r.h, r.pos, r.b, now)
		}
	}
	return n
}

// filing is a knock packet of handleRun's, hashed and waiting to be filed.
type filing struct {
	key    [16]byte
	h      uint64
	pos    int
	b      byte
	filing bool
}

// batchRun is the most knock packets handleRun files at once.
const batchRun = 64

// HandlePacket is the per-packet path: it files the packet under its
// source and, when that completes a knock, validates it.
func (d *Daemon) HandlePacket(src netip.Addr, port uint16) {
	st := d.st.Load()
	pos, b, ok := st.cfg.Span.Split(port)
	if !ok || src.Is4In6() {
		// An IPv4-mapped IPv6 source is never on the wire (the capture
		// drops it too): it must not share a.b.c.d's assembler.
		return
	}
	d.in.Lock()
	defer d.in.Unlock()
	key := src.As16()
	d.addHashed(st, &key, d.in.table.Hash(&key), pos, b, d.now())
}

// addHashed files the byte b at position pos under the source key (with
// its table Hash h) at time now and, when that completes a knock,
// validates it. d.in must be held.
func (d *Daemon) addHashed(st *state, key *[16]byte, h uint64, pos int, b byte, now int64) {
	s, done := d.in.table.AddHashed(key, h, pos, b, now)
	if !done {
		return
	}
	src := netip.AddrFrom16(*key).Unmap()
	// Open the readings in the order of SPEC.md §10.2; a reading that
	// opens but is a replay or refused by policy does not stop the other
	// reading from being tried.
	var openErr, refErr error
	from := src.Unmap()
	asm := d.in.table.asm(s)
	v, _, keep := asm.Open(&d.in.kbuf, func(k []byte) encoding.Verdict {
		v, err := d.check(st, from, k, s.born)
		switch {
		case v == encoding.Failed && openErr == nil:
			openErr = err
		case v == encoding.Refused && refErr == nil:
			refErr = err
		}
		return v
	})
	switch {
	case v == encoding.Accepted:
	case asm.Waiting():
		// The header of a longer mode still waits (a spoofed header):
		// the failure of the shorter one is not reported.
	case v == encoding.Refused:
		if refErr != nil {
			d.reject(refErr, from)
		}
	default:
		d.reject(openErr, from)
	}
	if !keep {
		d.in.table.Free(s)
	}
}

// check opens one reading of a complete knock and checks it in the order
// of SPEC.md §8: the opener's own checks (a bound knock against the source
// it came from), replay, then policy, and carries it out. It reports
// Failed with the opener's error when the reading does not open, Refused
// with the reason (nil for the sender's own repeated pass, which is
// counted, not reported) when it opens and is refused, and Accepted once
// the grant is queued.
//
// The replay ID is recorded before the policy decides (SPEC.md §7.2), so
// that a knock refused for its source address, port or duration cannot be
// replayed from an address or at a time the policy would accept. The
// record is written here and synced by the worker before it grants
// (Cache.Record, Cache.Sync), which keeps the disk off the packet path.
func (d *Daemon) check(st *state, src netip.Addr, k []byte, born int64) (encoding.Verdict, error) {
	now := d.opts.Clock()
	o, err := st.opener.OpenFrom(k, now.Unix(), src)
	if err != nil {
		return encoding.Failed, err
	}
	u := st.users[o.User]
	seq, err := d.replay.Record(o.ID, o.Knock.Time, now.Unix())
	switch {
	case errors.Is(err, replay.ErrReplay):
		if slices.Contains(d.in.recent[:], sourceID{src, o.ID}) {
			// The sender's own second pass: already acted on.
			d.counters.duplicates.Add(1)
			return encoding.Refused, nil
		}
		return encoding.Refused, replay.ErrReplay
	case errors.Is(err, replay.ErrFull):
		return encoding.Refused, err
	case err != nil:
		d.log.Error("knock refused: replay cache not written", "user", u.Name, "err", err)
		return encoding.Refused, ErrReplayWrite
	}
	d.in.recent[d.in.recentNext] = sourceID{src, o.ID}
	d.in.recentNext = (d.in.recentNext + 1) % recentSize
	target, err := u.Check(&o.Knock, src)
	if err != nil {
		return encoding.Refused, err
	}
	j := job{
		seq:    seq,
		g:      firewall.Grant{Addr: target, Proto: o.Knock.Proto, Port: o.Knock.Port, Timeout: time.Duration(o.Knock.Duration) * time.Second, User: u.Name},
		close:  o.Knock.Action == crypto.ActionClose,
		user:   u.Name,
		src:    src,
		start:  d.epoch.Add(time.Duration(born - 1)),
		action: o.Knock.Action,
	}
	select {
	case d.work <- j:
	default:
		return encoding.Refused, ErrFirewallBusy
	}
	return encoding.Accepted, nil
}

func (d *Daemon) reject(err error, src netip.Addr) {
	i := classOf(err)
	debug := d.log.Enabled(context.Background(), slog.LevelDebug)
	if d.rej.add(i, src, debug, time.Now()) {
		d.log.Debug("knock rejected", "class", className(i), "source", src)
	}
}

// rejections counts the rejected knocks by class (the index in classes):
// since the last summary, with the last source of each class, and in
// all; and rate-limits the debug log of single rejections.
type rejections struct {
	sync.Mutex
	since  []uint64
	last   []netip.Addr
	total  []uint64
	tokens tokens
}

func newRejections() rejections {
	return rejections{since: make([]uint64, len(classes)), last: make([]netip.Addr, len(classes)), total: make([]uint64, len(classes))}
}

// add counts a rejection of class i from src; with debug, it reports
// whether the rate limit lets it be logged.
func (r *rejections) add(i int, src netip.Addr, debug bool, now time.Time) bool {
	r.Lock()
	defer r.Unlock()
	r.since[i]++
	r.total[i]++
	r.last[i] = src
	return debug && r.tokens.take(now)
}

// flush returns the counts and last sources since the last flush, and
// starts counting again.
func (r *rejections) flush() (counts []uint64, last []netip.Addr) {
	r.Lock()
	defer r.Unlock()
	counts, last = slices.Clone(r.since), slices.Clone(r.last)
	clear(r.since)
	clear(r.last)
	return counts, last
}

// totals returns the counts in all, by class name, leaving out the
// classes with none.
func (r *rejections) totals() map[string]uint64 {
	m := map[string]uint64{}
	r.Lock()
	defer r.Unlock()
	for i, n := range r.total {
		if n > 0 {
			m[className(i)] = n
		}
	}
	return m
}

// At log-level debug each rejection is logged when it happens, at most
// rejectLogBurst at once and rejectLogRate a second on average; the
// summaries count them all.
const (
	rejectLogRate  = 10
	rejectLogBurst = 20
)

// tokens is a token bucket, refilled at rejectLogRate a second.
type tokens struct {
	n  float64
	at time.Time
}

func (b *tokens) take(now time.Time) bool {
	if b.at.IsZero() {
		b.n = rejectLogBurst
	} else {
		b.n = min(rejectLogBurst, b.n+now.Sub(b.at).Seconds()*rejectLogRate)
	}
	b.at = now
	if b.n < 1 {
		return false
	}
	b.n--
	return true
}

// worker carries grants out, one at a time, until the queue is closed.
func (d *Daemon) worker() {
	for j := range d.work {
		// On disk before the grant: a crash after this point cannot let
		// the same knock in again. One sync covers every knock recorded
		// before it, so a burst of knocks costs one sync, not one each.
		if err := d.replay.Sync(j.seq); err != nil {
			d.log.Error("knock refused: replay cache not written", "user", j.user, "err", err)
			d.reject(ErrReplayWrite, j.src)
			continue
		}
		fw := d.backend()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if j.close {
			err = fw.Revoke(ctx, j.g)
		} else {
			err = fw.Grant(ctx, j.g)
			if err != nil && d.repair(ctx, time.Now()) {
				// Someone had removed our objects: restored, try again.
				err = fw.Grant(ctx, j.g)
			}
		}
		cancel()
		if err != nil {
			d.log.Error("firewall refused a grant", "user", j.user, "addr", j.g.Addr, "proto", j.g.Proto.String(), "port", j.g.Port, "err", err)
			d.reject(ErrFirewall, j.src)
			continue
		}
		d.counters.accepted.Add(1)
		k := grantKey{j.g.Addr, j.g.Proto, j.g.Port}
		d.owners.Lock()
		if j.close {
			delete(d.owners.m, k)
		} else {
			d.owners.m[k] = owner{j.user, time.Now().Add(j.g.Timeout)}
		}
		d.owners.Unlock()
		attrs := []any{"user", j.user, "action", j.action.String(), "addr", j.g.Addr, "proto", j.g.Proto.String(), "port", j.g.Port}
		if !j.close {
			attrs = append(attrs, "duration", j.g.Timeout)
		}
		if j.src != j.g.Addr {
			attrs = append(attrs, "source", j.src)
		}
		attrs = append(attrs, "latency", time.Since(j.start).Round(time.Microsecond))
		d.log.Info("knock accepted", attrs...)
	}
}

// summaries logs the rejected knocks by class, at most once per interval.
func (d *Daemon) summaries(ctx context.Context) {
	t := time.NewTicker(d.Config().RejectLogInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.flushRejects()
			return
		case <-t.C:
			d.flushRejects()
			d.pruneOwners()
			// The records of knocks refused by policy are synced
			// here, or by the next grant's sync.
			if err := d.replay.SyncAll(); err != nil {
				d.log.Error("replay cache not written", "err", err)
			}
		}
	}
}

func (d *Daemon) flushRejects() {
	counts, last := d.rej.flush()
	for i, n := range counts {
		if n > 0 {
			d.log.Warn("knocks rejected", "class", className(i), "count", n, "last-source", last[i])
		}
	}
}

// pruneOwners forgets who made the grants that have expired.
func (d *Daemon) pruneOwners() {
	now := time.Now()
	d.owners.Lock()
	defer d.owners.Unlock()
	for k, o := range d.owners.m {
		if now.After(o.expires) {
			delete(d.owners.m, k)
		}
	}
}

// Reload reads the configuration again and puts it in force for the next
// knock (ReloadSummary without the summary).
func (d *Daemon) Reload() error {
	_, err := d.ReloadSummary()
	return err
}

// ReloadSummary reads the configuration again and puts it in force for
// the next knock. It checks the firewall objects and repairs them; grants
// of users the new configuration removed, or of ports their user may no
// longer open, are revoked; other grants stay. Settings that only a
// restart can change keep their old values, with a warning. The summary,
// one line, says what changed.
func (d *Daemon) ReloadSummary() (string, error) {
	if d.opts.Reload == nil {
		return "", errors.New("this daemon cannot reload its configuration")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, err := d.opts.Reload()
	if err != nil {
		return "", err
	}
	old := d.Config()
	restart := config.RestartOnly(old, cfg)
	for _, name := range restart {
		d.log.Warn("configuration change needs a restart; keeping the old value", "key", name)
	}
	commitTriggers, err := d.reloadTriggers(cfg, old)
	if err != nil {
		return "", err
	}

	st, err := newState(cfg)
	if err != nil {
		return "", err
	}
	if !slices.Equal(cfg.Protect(), old.Protect()) {
		// The protected ports changed: set up a backend for the new ones.
		// Setup keeps the grants already in the kernel.
		fw, err := d.opts.Backend(cfg)
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.sup.mu.Lock() // no repair with the old backend meanwhile
		cur := d.backend()
		a, adopts := fw.(firewall.Adopter)
		if adopts {
			a.Adopt(cur)
		}
		if err := fw.Setup(ctx); err != nil {
			if adopts {
				a.Adopt(cur) // give the old one its objects back
			}
			d.sup.mu.Unlock()
			if c, ok := fw.(io.Closer); ok {
				c.Close()
			}
			return "", err // the backend's errors name it and the step
		}
		d.fw.Lock()
		prev := d.fw.backend
		d.fw.backend = fw
		d.fw.Unlock()
		d.sup.mu.Unlock()
		if c, ok := prev.(io.Closer); ok && prev != fw {
			c.Close()
		}
	}
	d.replay.SetUsers(len(cfg.Users))
	commitTriggers()
	d.in.Lock()
	d.in.table.SetTimeout(cfg.AssemblyTimeout)
	d.st.Store(st)
	d.in.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	repaired := d.repair(ctx, time.Now())
	revoked := d.revokeOrphans(ctx, cfg)
	d.log.Info("configuration reloaded", "users", len(cfg.Users))
	return reloadSummary(old, cfg, revoked, restart, repaired), nil
}

func reloadSummary(old, cfg *config.Config, revoked []firewall.Grant, restart []string, repaired bool) string {
	names := func(c *config.Config) map[string]bool {
		m := map[string]bool{}
		for _, u := range c.Users {
			m[u.Name] = true
		}
		return m
	}
	was, now := names(old), names(cfg)
	var added, removed []string
	for n := range now {
		if !was[n] {
			added = append(added, n)
		}
	}
	for n := range was {
		if !now[n] {
			removed = append(removed, n)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "users added: "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "users removed: "+strings.Join(removed, ", "))
	}
	if len(revoked) > 0 {
		parts = append(parts, fmt.Sprintf("%d grants revoked: %s", len(revoked), grantList(revoked)))
	}
	if !slices.Equal(old.Protect(), cfg.Protect()) {
		parts = append(parts, "protected ports now "+protectList(cfg))
	}
	if repaired {
		parts = append(parts, "firewall objects restored")
	}
	if len(restart) > 0 {
		parts = append(parts, "need a restart (old values kept): "+strings.Join(restart, ", "))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("configuration reloaded: no change (%d users)", len(cfg.Users))
	}
	return "configuration reloaded: " + strings.Join(parts, "; ")
}
