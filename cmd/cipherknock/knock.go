package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/cipherknock/cipherknock/client"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/profile"
)

// knockFlags are the options shared by knock and connect.
type knockFlags struct {
	Port      int           `short:"p" help:"Port to open (default: the profile's)."`
	Proto     string        `help:"Protocol of that port: tcp or udp (default: the profile's)."`
	Duration  time.Duration `short:"d" help:"How long the port stays open, e.g. 30s or 1h (default: the profile's)."`
	Address   string        `short:"a" help:"Address to open: source (the knock's own; bound under the tag when this host's IPv6 address is global), auto (the public address found with STUN, bound under the tag; falls back to source when unanswered) or an IP address."`
	Via       string        `help:"Send the knock as udp datagrams or tcp SYNs (default: the profile's)."`
	Pacing    time.Duration `help:"Pause between packets, e.g. 2ms."`
	Repeat    int           `help:"Send each packet N times, 1..8 (default: the profile's)."`
	Shuffle   bool          `help:"Send the packets in random order."`
	IPv4      bool          `name:"ipv4" short:"4" help:"Use IPv4 only." xor:"family"`
	IPv6      bool          `name:"ipv6" short:"6" help:"Use IPv6 only." xor:"family"`
	STUN      string        `name:"stun" placeholder:"HOST:PORT,..." help:"STUN servers for --address auto."`
	Timeout   time.Duration `default:"3s" help:"Time limit for name resolution and STUN."`
	Wait      time.Duration `default:"3s" help:"How long to wait for the port to answer after each knock."`
	Retries   int           `default:"2" help:"Knock again up to N times when the port does not answer."`
	NoConfirm bool          `help:"Do not wait for the port: exit once the knock is sent."`

	Realm        string `group:"Without a profile" help:"Realm of the server."`
	User         int    `group:"Without a profile" help:"User index."`
	Base         int    `group:"Without a profile" default:"20480" help:"First port of the knock span."`
	KeyFile      string `group:"Without a profile" placeholder:"FILE" help:"Read the key from FILE (- for standard input); default: $CIPHERKNOCK_KEY."`
	RealmKeyFile string `group:"Without a profile" placeholder:"FILE" help:"Read the realm key from FILE (- for standard input); default: $CIPHERKNOCK_REALM_KEY."`
}

// loadProfile returns the stored profile called target or, when there is
// none and a key is given, a profile for host target built from the flags.
func (f *knockFlags) loadProfile(a *app, target string) (*profile.Profile, error) {
	st, err := a.store()
	if err != nil {
		return nil, err
	}
	if st.Exists(target) {
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
func (f *knockFlags) request(p *profile.Profile) (*client.Request, error) {
	r := &client.Request{
		Profile:   p.URI(),
		Port:      f.Port,
		Proto:     f.Proto,
		Address:   f.Address,
		Transport: f.Via,
		STUN:      f.STUN,
		Repeat:    f.Repeat,
		Shuffle:   f.Shuffle,
		Confirm:   !f.NoConfirm,
		Retries:   f.Retries,
	}
	if f.Duration != 0 {
		if f.Duration%time.Second != 0 || f.Duration < time.Second || f.Duration > crypto.MaxDuration*time.Second {
			return nil, usagef("--duration must be whole seconds from 1s to 18h12m15s")
		}
		r.Duration = int(f.Duration / time.Second)
	}
	if f.Pacing < 0 || f.Timeout < 0 || f.Wait < 0 {
		return nil, usagef("durations must not be negative")
	}
	r.PacingMs = int(f.Pacing / time.Millisecond)
	r.TimeoutMs = int(f.Timeout / time.Millisecond)
	r.WaitMs = int(f.Wait / time.Millisecond)
	if f.Timeout > 0 && r.TimeoutMs == 0 || f.Wait > 0 && r.WaitMs == 0 || f.Pacing > 0 && r.PacingMs == 0 {
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
	Target string `arg:"" name:"profile|host" help:"Profile name, or a host when the key is given with --key-file or CIPHERKNOCK_KEY."`
	knockFlags
}

func (c *knockCmd) Run(a *app) error {
	p, err := c.loadProfile(a, c.Target)
	var res *client.Result
	if err == nil {
		res, err = c.knock(a, p)
	}
	if err != nil {
		if a.json && !a.resultSent { // scripts get a result object whatever went wrong
			a.emit(map[string]any{"event": "result", "ok": false, "confirmed": false, "error": err.Error()})
		}
		return err
	}
	switch {
	case res.Confirmed:
		a.say("%s/%d on %s is open (knock %d, %d packets, %.2f s)", res.Proto, res.Port, res.Host, res.Attempts, res.Packets, float64(res.ElapsedMs)/1000)
	default:
		a.say("knocked on %s: %d %s packets (not confirmed)", res.Host, res.Packets, res.Transport)
	}
	return nil
}

// knock runs the client for profile p with the flags, printing progress,
// and the result object with --json.
func (f *knockFlags) knock(a *app, p *profile.Profile) (*client.Result, error) {
	req, err := f.request(p)
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
		via, base := res.Transport, int(p.Base)
		err = hintError{err, []string{
			fmt.Sprintf("the server drops knocks whose time is off its clock by more than its window (%d s by default): check both clocks", crypto.DefaultWindow),
			fmt.Sprintf("or the key, realm or user index differ from the server's, or %s packets to ports %d-%d are filtered on the path", via, base, base+encoding.SpanSize-1),
		}}
	}
	if a.json {
		out := map[string]any{
			"event":      "result",
			"ok":         err == nil,
			"confirmed":  res.Confirmed,
			"attempts":   res.Attempts,
			"packets":    res.Packets,
			"host":       res.Host,
			"port":       res.Port,
			"proto":      res.Proto,
			"transport":  res.Transport,
			"server":     res.Server,
			"target":     res.Target,
			"opens":      res.Opens,
			"elapsed_ms": res.ElapsedMs,
		}
		if err != nil {
			out["error"] = err.Error()
		}
		a.emit(out)
		a.resultSent = true
	}
	return res, err
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
	Profile string `arg:"" help:"Profile name."`
	Host    string `arg:"" help:"Host to connect to (ssh's %h)."`
	Port    int    `arg:"" help:"Port to connect to (ssh's %p)."`
	knockFlags
}

// Run knocks for the port, waits until it answers and relays standard input
// and output to it, so that ssh's ProxyCommand can use it.
func (c *connectCmd) Run(a *app) error {
	a.json = false // standard output carries the connection
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
	p.Host, p.Port, p.Proto = c.Host, uint16(c.Port), crypto.TCP
	c.knockFlags.Port, c.knockFlags.Proto = 0, ""
	res, err := c.knock(a, p)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", res.Target, c.Wait)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %v", res.Target, errors.Unwrap(err))
	}
	return relay(conn, a.stdin, a.stdout)
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
