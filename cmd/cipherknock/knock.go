package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cipherknock/cipherknock/client"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/profile"
)

// sendFlags are the options of every command that sends a knock.
type sendFlags struct {
	Address    string        `short:"a" help:"Address to open: source (the knock's own; bound under the tag when this host's IPv6 address is global), auto (the public address found with STUN, bound under the tag; falls back to source when unanswered) or an IP address."`
	Via        string        `help:"Send the knock as udp datagrams or tcp SYNs (default: the profile's)."`
	Pacing     time.Duration `help:"Pause between packets, e.g. 2ms."`
	Repeat     int           `help:"Send each packet N times, 1..8 (default: the profile's)."`
	Shuffle    bool          `help:"Send the packets in random order."`
	IPv4       bool          `name:"ipv4" short:"4" help:"Use IPv4 only." xor:"family"`
	IPv6       bool          `name:"ipv6" short:"6" help:"Use IPv6 only." xor:"family"`
	STUN       string        `name:"stun" placeholder:"HOST:PORT,..." help:"STUN servers for --address auto."`
	Timeout    time.Duration `default:"3s" help:"Time limit for name resolution and STUN."`
	TimeOffset time.Duration `name:"time-offset" placeholder:"DURATION" help:"Add DURATION to the knock's time, for a clock known to be off the server's (--time-offset=-90s goes back)."`

	Realm        string `group:"Without a profile" help:"Realm of the server."`
	User         int    `group:"Without a profile" help:"User index."`
	Base         int    `group:"Without a profile" default:"20480" help:"First port of the knock span."`
	KeyFile      string `group:"Without a profile" placeholder:"FILE" help:"Read the key from FILE (mode 0600; - for standard input); default: $CIPHERKNOCK_KEY."`
	RealmKeyFile string `group:"Without a profile" placeholder:"FILE" help:"Read the realm key from FILE (mode 0600; - for standard input); default: $CIPHERKNOCK_REALM_KEY."`
}

// portFlags choose the port a knock opens or closes.
type portFlags struct {
	Port  int    `short:"p" help:"Port (default: the profile's)."`
	Proto string `help:"Protocol of that port: tcp or udp (default: the profile's)."`
}

// check refuses the waiting flags with --no-confirm, where they would do
// nothing.
func (cf *confirmFlags) check(a *app) error {
	if !cf.NoConfirm {
		return nil
	}
	for _, name := range []string{"wait", "retries", "budget"} {
		if a.given[name] {
			return usagef("--%s does nothing with --no-confirm", name)
		}
	}
	return nil
}

// confirmFlags are the options of the commands that open and confirm.
type confirmFlags struct {
	Duration  time.Duration `short:"d" help:"How long the port stays open, e.g. 30s or 1h (default: the profile's)."`
	Wait      time.Duration `default:"3s" help:"How long to wait for the port to answer after each knock."`
	Retries   int           `default:"2" help:"Knock again up to N times when the port does not answer."`
	NoConfirm bool          `help:"Do not wait for the port: exit once the knock is sent."`
}

// loadProfile returns the stored profile called target or, when there is
// none and a key is given, a profile for host target built from the flags.
func (f *sendFlags) loadProfile(a *app, target string) (*profile.Profile, error) {
	st, err := a.store()
	if err != nil {
		return nil, err
	}
	if st.Exists(target) {
		// A flag that would do nothing is refused, not ignored.
		for _, name := range []string{"realm", "user", "base", "key-file", "realm-key-file"} {
			if a.given[name] {
				return nil, usagef("--%s is for knocking without a profile: profile %q has its own", name, displayArg(target))
			}
		}
		p, err := st.Load(target)
		return p, usage(err)
	}
	keyText, err := a.readSecret(f.KeyFile, "CIPHERKNOCK_KEY", "key")
	if err != nil {
		return nil, err
	}
	if keyText == "" {
		if profile.CheckName(target) != nil {
			return nil, usagef("unknown profile %q", displayArg(target))
		}
		_, err := st.Load(target)
		return nil, hintError{usage(err), []string{"to knock on a host without a profile, give --realm and the key with --key-file or CIPHERKNOCK_KEY"}}
	}
	key, err := crypto.ParseKey(keyText)
	if err != nil {
		return nil, usagef("bad key: %v", err)
	}
	if f.Realm == "" {
		return nil, usagef("--realm is required to knock on a host without a profile")
	}
	if err := profile.CheckHost(target); err != nil {
		return nil, usagef("%q: %v", displayArg(target), err)
	}
	if f.User < 0 || f.User > 65535 {
		return nil, usagef("--user must be 0..65535")
	}
	if f.Base < encoding.MinBase || f.Base > encoding.MaxBase {
		return nil, usagef("--base must be %d..%d", encoding.MinBase, encoding.MaxBase)
	}
	p := profile.New(target, f.Realm, uint16(f.User), key)
	p.Base = uint16(f.Base)
	rkText, err := a.readSecret(f.RealmKeyFile, "CIPHERKNOCK_REALM_KEY", "realm key")
	if err != nil {
		return nil, err
	}
	if rkText != "" {
		rk, err := crypto.ParseRealmKey(rkText)
		if err != nil {
			return nil, usagef("bad realm key: %v", err)
		}
		p.RealmKey = &rk
	}
	return p, usage(p.Validate())
}

// displayArg shortens an argument for an error line.
func displayArg(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// request builds the client request for profile p from the flags.
func (f *sendFlags) request(p *profile.Profile, pf portFlags, cf *confirmFlags, budget time.Duration) (*client.Request, error) {
	r := &client.Request{
		Profile:   p.URI(),
		Port:      pf.Port,
		Proto:     pf.Proto,
		Address:   f.Address,
		Transport: f.Via,
		STUN:      f.STUN,
		Repeat:    f.Repeat,
		Shuffle:   f.Shuffle,
	}
	if f.STUN != "" && cmp.Or(f.Address, p.Address) != profile.AddressAuto {
		return nil, usagef("--stun is only for --address auto")
	}
	if f.TimeOffset%time.Second != 0 {
		return nil, usagef("--time-offset must be whole seconds")
	}
	if off := f.TimeOffset / time.Second; off < -client.MaxTimeOffset || off > client.MaxTimeOffset {
		return nil, usagef("--time-offset must be within a day either way")
	}
	r.TimeOffset = int(f.TimeOffset / time.Second)
	if cf == nil {
		r.Close = true
	} else {
		r.Confirm, r.Retries = !cf.NoConfirm, cf.Retries
		if cf.Duration != 0 {
			if cf.Duration%time.Second != 0 || cf.Duration < time.Second || cf.Duration > crypto.MaxDuration*time.Second {
				return nil, usagef("--duration must be whole seconds from 1s to 18h12m15s")
			}
			r.Duration = int(cf.Duration / time.Second)
		}
		if cf.Wait < 0 || budget < 0 {
			return nil, usagef("durations must not be negative")
		}
		r.WaitMs = int(cf.Wait / time.Millisecond)
		r.BudgetMs = int(budget / time.Millisecond)
		if cf.Wait > 0 && r.WaitMs == 0 || budget > 0 && r.BudgetMs == 0 {
			return nil, usagef("durations must be at least 1ms")
		}
	}
	if f.Pacing < 0 || f.Timeout < 0 {
		return nil, usagef("durations must not be negative")
	}
	r.PacingMs = int(f.Pacing / time.Millisecond)
	r.TimeoutMs = int(f.Timeout / time.Millisecond)
	if f.Timeout > 0 && r.TimeoutMs == 0 || f.Pacing > 0 && r.PacingMs == 0 {
		return nil, usagef("durations must be at least 1ms")
	}
	switch {
	case f.IPv4:
		r.Family = 4
	case f.IPv6:
		r.Family = 6
	}
	return r, nil
}

type knockCmd struct {
	Target string        `arg:"" name:"profile|host" help:"Profile name, or a host when the key is given with --key-file or CIPHERKNOCK_KEY."`
	Budget time.Duration `placeholder:"DURATION" help:"Total time for every knock and wait together (default: none; the waits and retries alone bound it)."`
	portFlags
	confirmFlags
	sendFlags
}

// Help shows examples and the exit status under knock --help.
func (c *knockCmd) Help() string {
	return `Examples:
  cipherknock knock gate                         # the profile's port, for the profile's time
  cipherknock knock gate --repeat 2 --shuffle    # a lossy mobile link
  cipherknock knock gate -p 8443 -d 10m
  cipherknock knock gate --time-offset=-90s      # this clock is 90 s ahead
  CIPHERKNOCK_KEY=... cipherknock knock 192.0.2.1 --realm gate --user 3 --no-confirm

Exit status: 0 when the port answered (or --no-confirm), 1 when it did not
or the network failed, 2 on a usage or profile error.`
}

func (c *knockCmd) Run(a *app) error {
	if err := c.confirmFlags.check(a); err != nil {
		return err
	}
	p, err := c.loadProfile(a, c.Target)
	var res *client.Result
	if err == nil {
		res, err = c.knock(a, p, c.portFlags, &c.confirmFlags, c.Budget)
	}
	if err != nil {
		if a.json && !a.resultSent { // scripts get a result object whatever went wrong
			a.emit(map[string]any{"event": "result", "ok": false, "confirmed": false, "error": err.Error()})
		}
		return err
	}
	switch {
	case res.AlreadyOpen:
		a.say("%s/%d on %s was already open: it answered before the knock could be processed (knock %d, %d packets, %.2f s)", res.Proto, res.Port, res.Host, res.Attempts, res.Packets, float64(res.ElapsedMs)/1000)
	case res.Confirmed:
		a.say("%s/%d on %s is open (knock %d, %d packets, %.2f s)", res.Proto, res.Port, res.Host, res.Attempts, res.Packets, float64(res.ElapsedMs)/1000)
	default:
		a.say("knocked on %s: %d %s packets (not confirmed)", res.Host, res.Packets, res.Transport)
	}
	return nil
}

// knock runs the client for profile p with the flags (cf nil: a close
// knock), printing progress, and the result object with --json.
func (f *sendFlags) knock(a *app, p *profile.Profile, pf portFlags, cf *confirmFlags, budget time.Duration) (*client.Result, error) {
	req, err := f.request(p, pf, cf, budget)
	if err != nil {
		return nil, err
	}
	if proto, port := cmp.Or(req.Proto, p.Proto.String()), cmp.Or(req.Port, int(p.Port)); req.Confirm && proto == "udp" {
		return nil, usagef("udp/%d cannot be confirmed by a TCP probe: add --no-confirm", port)
	}
	k, err := client.NewKnocker(req)
	if err != nil {
		return nil, usage(err)
	}
	ev := &events{a: a}
	res, err := k.Run(ev)
	ev.stop()
	if err != nil && client.IsNotConfirmed(err) {
		err = hintError{err, failureHints(res, p, clockUnsynchronised())}
	}
	if a.json {
		out := map[string]any{
			"event":        "result",
			"ok":           err == nil,
			"confirmed":    res.Confirmed,
			"already_open": res.AlreadyOpen,
			"attempts":     res.Attempts,
			"packets":      res.Packets,
			"host":         res.Host,
			"port":         res.Port,
			"proto":        res.Proto,
			"transport":    res.Transport,
			"server":       res.Server,
			"target":       res.Target,
			"opens":        res.Opens,
			"elapsed_ms":   res.ElapsedMs,
		}
		if req.Close {
			out["action"] = "close"
		}
		if err != nil {
			out["error"] = err.Error()
		}
		a.emit(out)
		a.resultSent = true
	}
	return res, err
}

// failureHints says what the client can tell about a knock that was not
// confirmed: whether the server answered the probes at all, and whether
// this machine's clock is known to be unsynchronised.
func failureHints(res *client.Result, p *profile.Profile, clockUnsync bool) []string {
	var h []string
	base := int(p.Base)
	if clockUnsync {
		h = append(h, fmt.Sprintf("this machine's clock is not synchronised (no NTP): if it is off the server's by more than its window (%d s by default), the knock is refused; correct it, or knock with --time-offset", crypto.DefaultWindow))
	}
	if res.Reset {
		h = append(h, fmt.Sprintf("%s answered the probes with a reset: the host is up and reachable, but nothing listens on %s/%d there (or a firewall rejects instead of dropping)", res.Host, res.Proto, res.Port))
	} else {
		h = append(h, fmt.Sprintf("nothing on %s answered the probes: the daemon may be down, %s packets to ports %d-%d filtered on the way, or %s not the server this profile is for", res.Host, res.Transport, base, base+encoding.SpanSize-1, res.Host))
	}
	h = append(h, fmt.Sprintf("or the server refused the knock: key, realm, realm key or user index differ from its configuration, or the clocks differ by more than its window (%d s by default); cipherknockd logs each rejection at log-level = debug", crypto.DefaultWindow))
	return h
}

// events shows the client's progress: a live line on a terminal, JSON lines
// with --json, nothing otherwise.
type events struct {
	a      *app
	mu     sync.Mutex
	ticker *time.Ticker
	done   chan struct{}
}

func (e *events) Event(kind string, attempt int, detail string) {
	e.stop()
	if e.a.json {
		e.a.emit(map[string]any{"event": kind, "attempt": attempt, "detail": detail})
		return
	}
	e.a.status(detail)
	if kind == "knocked" && e.a.tty {
		e.tick(detail)
	}
}

// tick refreshes the progress line with the time spent waiting.
func (e *events) tick(detail string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	e.ticker = time.NewTicker(100 * time.Millisecond)
	e.done = make(chan struct{})
	t, done := e.ticker, e.done
	go func() {
		for {
			select {
			case <-t.C:
				e.mu.Lock()
				select {
				case <-done: // stopped while this tick waited for the lock
				default:
					e.a.status(fmt.Sprintf("%s; waiting for an answer %.1f s", detail, time.Since(start).Seconds()))
				}
				e.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
}

func (e *events) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ticker != nil {
		e.ticker.Stop()
		close(e.done)
		e.ticker = nil
	}
	e.a.endStatus()
}

type connectCmd struct {
	Profile  string        `arg:"" help:"Profile name."`
	Host     string        `arg:"" help:"Host to connect to (ssh's %h)."`
	Port     int           `arg:"" help:"Port to connect to (ssh's %p)."`
	Budget   time.Duration `default:"8s" help:"Total time for every knock and wait together: less than ssh's usual ConnectTimeout, so that connect's own error is the one shown."`
	KeepOpen bool          `help:"Leave the grant to expire instead of sending a close knock when the session ends."`
	confirmFlags
	sendFlags
}

// Help shows examples and the exit status under connect --help.
func (c *connectCmd) Help() string {
	return `Examples:
  # ~/.ssh/config
  Host gate
      ProxyCommand cipherknock connect gate %h %p
  ssh -o ProxyCommand='cipherknock connect gate %h %p' gate.example.net

When the session ends, connect sends a close knock (unless --keep-open):
connection tracking keeps the session itself open, so the grant is needed
only to log in.

Exit status: 0 when the session ended normally, 1 when the port did not
answer within --budget or the connection failed, 2 on a usage or profile
error. Standard output carries the connection: --json is refused.`
}

// Run knocks for the port, waits until it answers and relays standard input
// and output to it, so that ssh's ProxyCommand can use it; then it closes
// the grant.
func (c *connectCmd) Run(a *app) error {
	if a.json {
		return usagef("connect does not take --json: standard output carries the connection")
	}
	if err := c.confirmFlags.check(a); err != nil {
		return err
	}
	p, err := c.loadProfile(a, c.Profile)
	if err != nil {
		return err
	}
	if err := profile.CheckHost(c.Host); err != nil {
		return usagef("%q: %v", displayArg(c.Host), err)
	}
	if c.Port < 1 || c.Port > 65535 {
		return usagef("port must be 1..65535")
	}
	p.Host, p.Port, p.Proto = c.Host, uint16(c.Port), ports.TCP
	res, err := c.knock(a, p, portFlags{}, &c.confirmFlags, c.Budget)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", res.Target, c.Wait)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %v", res.Target, errors.Unwrap(err))
	}
	// ssh ends its ProxyCommand with SIGHUP when the session is over:
	// that, too, ends the relay, and the close knock still goes out.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPIPE)
	defer signal.Stop(sig)
	done := make(chan error, 1)
	go func() { done <- relay(conn, a.stdin, a.stdout) }()
	select {
	case err = <-done:
	case <-sig:
		conn.Close()
	}
	if !c.KeepOpen {
		// The session is over: close the door behind it.
		q := *a
		q.quiet = true
		if _, cerr := c.sendFlags.knock(&q, p, portFlags{}, nil, 0); cerr != nil {
			fmt.Fprintf(a.stderr, "cipherknock: warning: cannot send the close knock (the grant expires by itself): %v\n", cerr)
		}
	}
	return err
}

type closeCmd struct {
	Target string `arg:"" name:"profile|host" help:"Profile name, or a host when the key is given with --key-file or CIPHERKNOCK_KEY."`
	portFlags
	sendFlags
}

// Help shows examples and the exit status under close --help.
func (c *closeCmd) Help() string {
	return `Examples:
  cipherknock close gate            # revoke the grant for the profile's port
  cipherknock close gate -p 8443

The server revokes the grant for this address and port, if it has one;
sessions already established stay up. Nothing answers a close knock, so it
is not confirmed.

Exit status: 0 when the close knock was sent, 1 when the network failed,
2 on a usage or profile error.`
}

func (c *closeCmd) Run(a *app) error {
	p, err := c.loadProfile(a, c.Target)
	var res *client.Result
	if err == nil {
		res, err = c.knock(a, p, c.portFlags, nil, 0)
	}
	if err != nil {
		if a.json && !a.resultSent {
			a.emit(map[string]any{"event": "result", "action": "close", "ok": false, "confirmed": false, "error": err.Error()})
		}
		return err
	}
	a.say("sent a close knock for %s/%d to %s: %d %s packets", res.Proto, res.Port, res.Host, res.Packets, res.Transport)
	return nil
}

// relay copies in to conn and conn to out until conn's side ends.
func relay(conn net.Conn, in io.Reader, out io.Writer) error {
	defer conn.Close()
	go func() {
		io.Copy(conn, in)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	_, err := io.Copy(out, conn)
	return err
}
