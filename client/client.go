// Package client knocks: it seals a knock for a profile (SPEC.md §5, §6),
// maps it onto the profile's port span (SPEC.md §9) and sends one empty UDP
// datagram or one TCP SYN per port, from an ordinary unprivileged socket. It
// can then confirm that the knock worked by probing the opened TCP port, and
// knock again when it did not.
//
// The exported API uses only strings, integers, booleans, byte slices,
// errors, and structs and interfaces made of those, so that gomobile can bind
// it for a phone app: a Request names a profile by its URI (the profile
// package documents the format), NewKnocker checks it, and Knocker.Run carries it
// out, reporting progress to an optional Events value.
//
// Address modes (SPEC.md §5.1): with "source" (the default) the knock opens
// the address the server sees it come from; when this host's own address
// toward the server is a global IPv6 address, the client binds that
// address under the tag (mode bound), so that a copy raced from elsewhere
// cannot open anything or even burn the knock. With "auto" the client asks
// a STUN server for its public address with one Binding request (RFC 8489
// §6, §14.2) and binds that address the same way: a lying STUN server or a
// NAT that changes the address can only make the knock fail, never
// redirect it. A bound knock that gets no answer is followed by knocks in
// mode source, and an event says so. An explicit IP address is sent in the
// knock (modes ipv4, ipv6), for opening another address than the source,
// which the server's policy must allow.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/profile"
)

// Defaults of a Request's zero fields.
const (
	DefaultTimeoutMs = 3000 // name resolution, STUN
	DefaultWaitMs    = 3000 // probing after each knock
	DefaultRetries   = 2    // knocks after the first
	MaxRetries       = 20
	ProbeIntervalMs  = 150
)

// DefaultSTUN lists the STUN servers asked when a profile names none.
var DefaultSTUN = "stun.l.google.com:19302,stun.cloudflare.com:3478"

// Request describes one knock. Zero fields take the profile's settings or the
// package defaults.
type Request struct {
	Profile string // profile URI, cipherknock://... (contains the key)

	Host      string // server to knock on instead of the profile's host
	Port      int    // port to open, 1..65535
	Proto     string // "tcp" or "udp": protocol of that port
	Duration  int    // seconds the port stays open, 1..65535
	Address   string // "source", "auto" or an IP address to open
	Transport string // "udp" or "tcp": how the knock's packets are sent
	Family    int    // 4 or 6 to use only that IP version; 0 for either
	STUN      string // comma-separated host:port STUN servers
	PacingMs  int    // pause between packets
	Repeat    int    // times each packet is sent, 1..8
	Shuffle   bool   // send the packets of each pass in random order
	TimeoutMs int    // for name resolution and STUN

	Confirm bool // probe Host:Port over TCP after each knock (TCP ports only)
	WaitMs  int  // how long to probe after each knock
	Retries int  // knocks after the first when the probe gets no answer

	// BudgetMs bounds the whole run, every knock and wait together; 0 for
	// no bound. Waits are cut short to fit it.
	BudgetMs int
	// TimeOffset is added to the knock's time, in seconds (negative to
	// go back), for a clock known to be off the server's.
	TimeOffset int
	// Close sends a close knock (SPEC.md §11): the server revokes the
	// grant for Port and Proto. Confirm must be false.
	Close bool
}

// Result says what Run did.
type Result struct {
	Host      string // the server's name, as knocked on
	Port      int    // the port the knock opens
	Proto     string // its protocol
	Transport string // how the knock was sent: "udp" or "tcp"
	Confirmed bool   // the probed port answered
	// AlreadyOpen: a probe sent before the first knock was answered, so
	// the port was open already and the knock itself is not confirmed.
	AlreadyOpen bool
	// Reset: the server answered a probe with a TCP reset (the port is
	// closed there, but the host is up and reachable).
	Reset     bool
	Attempts  int    // knocks sent
	Packets   int    // packets sent, all knocks together
	Server    string // the server's IP address
	Target    string // host:port that was probed, or would be; "[v6]:port" for IPv6
	Opens     string // the address the knock opens, or "source"
	Mode      string // the knock's address mode: source, bound, ipv4 or ipv6
	ElapsedMs int64  // from the start of Run
}

// Events receives progress reports from Run. kind is one of "resolved",
// "address", "knocked", "confirmed", "unanswered", "fallback"; attempt counts knocks from
// 1 (0 before the first knock); detail is a short human-readable line.
type Events interface {
	Event(kind string, attempt int, detail string)
}

// ErrNotConfirmed is returned by Run when the port never answered.
var ErrNotConfirmed = errors.New("port did not answer")

// notConfirmed is an error that is ErrNotConfirmed with a detailed message.
type notConfirmed string

func (e notConfirmed) Error() string        { return string(e) }
func (e notConfirmed) Is(target error) bool { return target == ErrNotConfirmed }

// IsNotConfirmed reports whether err says that the knock was not confirmed,
// as opposed to a problem with the request, the network or the system.
func IsNotConfirmed(err error) bool { return errors.Is(err, ErrNotConfirmed) }

// Knocker carries out one Request. It may be run more than once; Cancel
// stops a run in progress from another goroutine.
type Knocker struct {
	p       *profile.Profile
	req     Request
	realm   *crypto.Realm
	user    *crypto.User
	stun    []string
	family  int
	timeout time.Duration
	wait    time.Duration
	pacing  time.Duration

	mu     sync.Mutex
	cancel context.CancelFunc
}

// NewKnocker checks req and prepares its keys. Errors never contain key material.
func NewKnocker(req *Request) (*Knocker, error) {
	p, err := profile.ParseURI(req.Profile)
	if err != nil {
		return nil, err
	}
	k := &Knocker{p: p, req: *req}
	k.req.Profile = ""
	if err := k.apply(); err != nil {
		return nil, err
	}
	k.realm, err = crypto.NewRealm(p.Realm, p.RealmKey)
	if err != nil {
		return nil, err
	}
	k.user = crypto.NewUser(&p.Key)
	return k, nil
}

// apply merges the request's overrides into the profile and checks them.
func (k *Knocker) apply() error {
	r, p := &k.req, k.p
	if r.Host != "" {
		if err := profile.CheckHost(r.Host); err != nil {
			return err
		}
		p.Host = r.Host
	}
	if r.Port != 0 {
		if r.Port < 1 || r.Port > 65535 {
			return errors.New("port must be 1..65535")
		}
		p.Port = uint16(r.Port)
	}
	if r.Proto != "" {
		pr, err := ports.ParseProto(r.Proto)
		if err != nil {
			return err
		}
		p.Proto = pr
	}
	if r.Duration != 0 {
		if r.Duration < 1 || r.Duration > crypto.MaxDuration {
			return errors.New("duration must be 1..65535 seconds")
		}
		p.Duration = uint16(r.Duration)
	}
	if r.Address != "" {
		if err := profile.CheckAddress(r.Address); err != nil {
			return err
		}
		p.Address = r.Address
	}
	if r.Transport != "" {
		if r.Transport != profile.ViaUDP && r.Transport != profile.ViaTCP {
			return errors.New("transport must be udp or tcp")
		}
		p.Via = r.Transport
	}
	if r.Repeat != 0 {
		if r.Repeat < 1 || r.Repeat > profile.MaxRepeat {
			return fmt.Errorf("repeat must be 1..%d", profile.MaxRepeat)
		}
		p.Repeat = r.Repeat
	}
	switch r.Family {
	case 0, 4, 6:
		k.family = r.Family
	default:
		return errors.New("IP version must be 4 or 6")
	}
	k.stun = p.STUN
	if r.STUN != "" {
		k.stun = strings.Split(r.STUN, ",")
	}
	if len(k.stun) == 0 {
		k.stun = strings.Split(DefaultSTUN, ",")
	}
	for _, s := range k.stun {
		if err := profile.CheckHostPort(s); err != nil {
			return fmt.Errorf("STUN server %q: %v", s, err)
		}
	}
	ms := func(v, def int, what string) (time.Duration, error) {
		if v < 0 {
			return 0, fmt.Errorf("%s must not be negative", what)
		}
		if v == 0 {
			v = def
		}
		return time.Duration(v) * time.Millisecond, nil
	}
	var err error
	if k.timeout, err = ms(r.TimeoutMs, DefaultTimeoutMs, "timeout"); err != nil {
		return err
	}
	if k.wait, err = ms(r.WaitMs, DefaultWaitMs, "wait"); err != nil {
		return err
	}
	if k.pacing, err = ms(r.PacingMs, 0, "pacing"); err != nil {
		return err
	}
	if r.Confirm && p.Proto == ports.UDP {
		return fmt.Errorf("udp/%d cannot be confirmed by a TCP probe: knock without confirmation", p.Port)
	}
	if r.Retries < 0 || r.Retries > MaxRetries {
		return fmt.Errorf("retries must be 0..%d", MaxRetries)
	}
	if r.BudgetMs < 0 {
		return errors.New("budget must not be negative")
	}
	if r.TimeOffset < -MaxTimeOffset || r.TimeOffset > MaxTimeOffset {
		return fmt.Errorf("time offset must be within ±%d seconds", MaxTimeOffset)
	}
	if r.Close && r.Confirm {
		return errors.New("a close knock cannot be confirmed by a probe")
	}
	return nil
}

// MaxTimeOffset bounds Request.TimeOffset, in seconds (a day).
const MaxTimeOffset = 86400

// Cancel stops a run in progress; Run then returns an error.
func (k *Knocker) Cancel() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cancel != nil {
		k.cancel()
	}
}

type nopEvents struct{}

func (nopEvents) Event(string, int, string) {}

// Run knocks, and when the request asks for confirmation probes the port and
// knocks again until it answers or the retries are used up. Without
// confirmation it returns after the first knock.
func (k *Knocker) Run(ev Events) (*Result, error) {
	if ev == nil {
		ev = nopEvents{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.mu.Lock()
	k.cancel = cancel
	k.mu.Unlock()
	defer cancel()
	return k.run(ctx, ev)
}

func (k *Knocker) run(ctx context.Context, ev Events) (*Result, error) {
	start := time.Now()
	p := k.p
	res := &Result{Host: p.Host, Port: int(p.Port), Proto: p.Proto.String(), Transport: p.Via}
	server, err := k.resolve(ctx)
	if err != nil {
		return res, err
	}
	res.Server = server.String()
	res.Target = netip.AddrPortFrom(server, p.Port).String()
	if p.Host != server.String() {
		ev.Event("resolved", 0, fmt.Sprintf("%s is %s", p.Host, server))
	}

	kn := crypto.Knock{Action: crypto.ActionOpen, Proto: p.Proto, Port: p.Port, Duration: p.Duration}
	if k.req.Close {
		kn.Action, kn.Duration = crypto.ActionClose, 0
	}
	switch p.Address {
	case profile.AddressSource:
		kn.Mode = crypto.ModeSource
		if a, ok := localGlobalIPv6(server, p.Port); ok {
			kn.Mode, kn.Addr = crypto.ModeBound, a
			ev.Event("address", 0, "binding the knock to this host's global address "+a.String())
		}
	case profile.AddressAuto:
		a, err := k.publicAddr(ctx, server)
		switch {
		case err != nil:
			kn.Mode = crypto.ModeSource
			ev.Event("fallback", 0, err.Error()+"; knocking in source mode")
		case !crypto.BoundAddrOK(a):
			kn.Mode = crypto.ModeSource
			ev.Event("fallback", 0, "STUN reported "+a.String()+", which cannot be bound; knocking in source mode")
		default:
			kn.Mode, kn.Addr = crypto.ModeBound, a.Unmap()
			ev.Event("address", 0, "public address "+a.String()+", bound under the tag")
		}
	default:
		kn.Addr = netip.MustParseAddr(p.Address).Unmap()
		kn.Mode = crypto.ModeIPv4
		if kn.Addr.Is6() {
			kn.Mode = crypto.ModeIPv6
		}
	}
	setOpens := func() {
		res.Mode = kn.Mode.String()
		res.Opens = profile.AddressSource
		if kn.Addr.IsValid() {
			res.Opens = kn.Addr.String()
		}
	}
	setOpens()

	confirm := k.req.Confirm
	tries := 1
	if confirm {
		tries += k.req.Retries
	}
	s, err := newSender(p.Via, server)
	if err != nil {
		return res, err
	}
	defer s.close()
	var deadline time.Time
	if k.req.BudgetMs > 0 {
		deadline = start.Add(time.Duration(k.req.BudgetMs) * time.Millisecond)
	}
	var pre *preProbe
	if confirm {
		// Sent before the knock: an answer to it means the port was open
		// before the knock could have been processed.
		pre = startPreProbe(server, p.Port)
		defer pre.stop()
	}
	var buf [crypto.MaxLen]byte
	for attempt := 1; attempt <= tries; attempt++ {
		kn.Time = uint32(time.Now().Unix() + int64(k.req.TimeOffset))
		if err := kn.RandomNonce(); err != nil {
			return res, err
		}
		b, err := crypto.Seal(buf[:0], k.realm, p.User, k.user, &kn)
		if err != nil {
			return res, fmt.Errorf("cannot seal the knock: %v", err)
		}
		n, err := k.send(ctx, s, server, b)
		res.Packets += n
		res.Attempts = attempt
		if err != nil {
			return res, err
		}
		ev.Event("knocked", attempt, fmt.Sprintf("knocked on %s with %d %s packets (ports %d-%d)", p.Host, n, p.Via, p.Base, p.Span().Last()))
		if !confirm {
			break
		}
		wait := k.wait
		if !deadline.IsZero() {
			wait = min(wait, time.Until(deadline))
		}
		answered, reset := probe(ctx, res.Target, wait)
		res.Reset = res.Reset || reset
		if answered {
			res.Confirmed = true
			res.AlreadyOpen = pre.answered()
			res.ElapsedMs = time.Since(start).Milliseconds()
			what := "answers"
			if res.AlreadyOpen {
				what = "was already open"
			}
			ev.Event("confirmed", attempt, fmt.Sprintf("%s/%d on %s %s", p.Proto, p.Port, p.Host, what))
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		ev.Event("unanswered", attempt, fmt.Sprintf("%s/%d on %s did not answer within %v", p.Proto, p.Port, p.Host, wait.Round(time.Millisecond)))
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			tries = attempt
			break
		}
		if kn.Mode == crypto.ModeBound && attempt < tries {
			// The server saw another source than the one bound (a NAT
			// that changes addresses, a wrong STUN answer, a server that
			// predates mode bound): such a knock can only fail.
			ev.Event("fallback", attempt, fmt.Sprintf("the knock bound to %s was not answered: the server may see another address; knocking in source mode", kn.Addr))
			kn.Mode, kn.Addr = crypto.ModeSource, netip.Addr{}
			setOpens()
		}
	}
	res.ElapsedMs = time.Since(start).Milliseconds()
	if confirm {
		where := p.Host
		if where != server.String() {
			where += " (" + server.String() + ")"
		}
		budget := ""
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			budget = fmt.Sprintf(" (the %v budget)", time.Duration(k.req.BudgetMs)*time.Millisecond)
		}
		return res, notConfirmed(fmt.Sprintf("%s/%d on %s did not answer after %d knock%s%s", p.Proto, p.Port, where, tries, plural(tries), budget))
	}
	return res, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// localGlobalIPv6 returns the address this host sends from toward server,
// if it is a global IPv6 address: one that no NAT is expected to rewrite,
// so the server sees it as the knock's source. Connecting a UDP socket
// sends nothing; it only picks the route and the source address.
func localGlobalIPv6(server netip.Addr, port uint16) (netip.Addr, bool) {
	if !server.Is6() || server.Is4In6() {
		return netip.Addr{}, false
	}
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, port)))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	if a.Zone() != "" || !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() || a.IsPrivate() || !crypto.BoundAddrOK(a) {
		return netip.Addr{}, false
	}
	return a, true
}

// resolve returns the server's address in the requested family.
func (k *Knocker) resolve(ctx context.Context) (netip.Addr, error) {
	host := k.p.Host
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if k.family == 4 && !a.Is4() || k.family == 6 && !a.Is6() {
			return netip.Addr{}, fmt.Errorf("host %s is not an IPv%d address", host, k.family)
		}
		return a, nil
	}
	network := "ip"
	if k.family != 0 {
		network += strconv.Itoa(k.family)
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			if de.IsTimeout {
				return netip.Addr{}, fmt.Errorf("cannot resolve host %s: timed out after %v", host, k.timeout)
			}
			return netip.Addr{}, fmt.Errorf("cannot resolve host %s: %s", host, de.Err)
		}
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return netip.Addr{}, fmt.Errorf("cannot resolve host %s: %s", host, ae.Err)
		}
		return netip.Addr{}, fmt.Errorf("cannot resolve host %s: %v", host, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("cannot resolve host %s: no address", host)
	}
	return addrs[0].Unmap(), nil
}

// probe starts a TCP connection to target every ProbeIntervalMs, each
// allowed to run until wait has passed, and reports whether one was
// established, and whether one was refused with a reset. Overlapping
// attempts matter: a SYN sent before the door opened is dropped, and the
// kernel would retry it only after a second, while a link with a long
// round trip needs each attempt to run long.
func probe(ctx context.Context, target string, wait time.Duration) (answered, reset bool) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: the other attempts end at once
	defer cancel()
	won := make(chan struct{}, 1)
	var refused atomic.Bool
	var d net.Dialer
	attempt := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.DialContext(ctx, "tcp", target)
			if err == nil {
				c.Close()
				select {
				case won <- struct{}{}:
				default:
				}
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused.Store(true)
			}
		}()
	}
	tick := time.NewTicker(ProbeIntervalMs * time.Millisecond)
	defer tick.Stop()
	attempt()
	for {
		select {
		case <-won:
			return true, refused.Load()
		case <-ctx.Done():
			return false, refused.Load()
		case <-tick.C:
			attempt()
		}
	}
}

// ProfileInfo describes a profile without its keys.
type ProfileInfo struct {
	Name      string
	Host      string
	Realm     string
	User      int
	Port      int
	Proto     string
	Duration  int
	Base      int
	Address   string
	Transport string
	Repeat    int
	STUN      string
	RealmKey  bool // the profile has a realm key
}

// ParseProfile checks a profile URI and describes it, so that an app can
// show what it scanned before storing it.
func ParseProfile(uri string) (*ProfileInfo, error) {
	p, err := profile.ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return &ProfileInfo{
		Name: p.Name, Host: p.Host, Realm: p.Realm, User: int(p.User),
		Port: int(p.Port), Proto: p.Proto.String(), Duration: int(p.Duration),
		Base: int(p.Base), Address: p.Address, Transport: p.Via, Repeat: p.Repeat,
		STUN: strings.Join(p.STUN, ","), RealmKey: p.RealmKey != nil,
	}, nil
}
