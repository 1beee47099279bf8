package client

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/client/stuntest"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/profile"
)

func testProfile(t *testing.T, host string) (*profile.Profile, crypto.Key) {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := profile.New(host, "test.realm", 3, k)
	return p, k
}

// freePort returns a loopback TCP port with nothing listening on it.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

type recorder struct{ ports []uint16 }

func (r *recorder) send(port uint16) error { r.ports = append(r.ports, port); return nil }
func (r *recorder) close()                 {}

// TestSendAssembles checks that the packets of one knock, shuffled and
// repeated, assemble into a knock that opens with the right fields.
func TestSendAssembles(t *testing.T) {
	p, key := testProfile(t, "127.0.0.1")
	p.Repeat = 3
	k, err := NewKnocker(&Request{Profile: p.URI(), Shuffle: true, Address: "192.0.2.9", Port: 443, Duration: 90})
	if err != nil {
		t.Fatal(err)
	}
	kn := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: netip.MustParseAddr("192.0.2.9"),
		Proto: ports.TCP, Port: 443, Duration: 90, Time: uint32(time.Now().Unix())}
	kn.RandomNonce()
	b, err := crypto.Seal(nil, k.realm, p.User, k.user, &kn)
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	n, err := k.send(context.Background(), &r, netip.MustParseAddr("127.0.0.1"), b)
	if err != nil || n != 3*crypto.LenIPv4 || len(r.ports) != n {
		t.Fatalf("send = %d, %v; recorded %d", n, err, len(r.ports))
	}
	var a encoding.Assembler
	sorted := true
	for i, port := range r.ports {
		a.AddPort(p.Span(), port)
		if i > 0 && i < crypto.LenIPv4 && port < r.ports[i-1] {
			sorted = false
		}
	}
	if sorted {
		t.Error("shuffled packets came out in position order")
	}
	if !a.Complete() || a.Conflicted() {
		t.Fatalf("assembler: complete %v, conflicted %v", a.Complete(), a.Conflicted())
	}
	realm, _ := crypto.NewRealm(p.Realm, nil)
	o := crypto.NewOpener(realm, map[uint16]*crypto.User{3: crypto.NewUser(&key)}, 0)
	got, err := o.Open(a.Knock(nil), time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	if got.Knock != kn || got.User != 3 {
		t.Errorf("opened %+v user %d, want %+v user 3", got.Knock, got.User, kn)
	}
}

func TestRunConfirmed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p, _ := testProfile(t, "127.0.0.1")
	for _, via := range []string{"udp", "tcp"} {
		k, err := NewKnocker(&Request{Profile: p.URI(), Port: l.Addr().(*net.TCPAddr).Port, Transport: via, Confirm: true, WaitMs: 2000})
		if err != nil {
			t.Fatal(err)
		}
		res, err := k.Run(nil)
		if err != nil {
			t.Fatalf("%s: %v", via, err)
		}
		if !res.Confirmed || res.Attempts != 1 || res.Packets != crypto.LenSource || res.Opens != "source" {
			t.Errorf("%s: result %+v", via, res)
		}
	}
}

type eventLog []string

func (e *eventLog) Event(kind string, attempt int, detail string) { *e = append(*e, kind) }

func TestRunNotConfirmed(t *testing.T) {
	p, _ := testProfile(t, "127.0.0.1")
	k, err := NewKnocker(&Request{Profile: p.URI(), Port: freePort(t), Confirm: true, WaitMs: 200, Retries: 1, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ev eventLog
	res, err := k.Run(&ev)
	if !IsNotConfirmed(err) || !strings.Contains(err.Error(), "did not answer after 2 knocks") {
		t.Fatalf("Run = %v, want not confirmed after 2 knocks", err)
	}
	if res.Confirmed || res.Attempts != 2 || res.Packets != 2*2*crypto.LenSource {
		t.Errorf("result %+v", res)
	}
	want := "knocked unanswered knocked unanswered"
	if got := strings.Join(ev, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestRunAutoAddress(t *testing.T) {
	stun := stuntest.Start(t, "udp4")
	p, _ := testProfile(t, "127.0.0.1")
	p.Address = profile.AddressAuto
	p.STUN = []string{stun}
	k, err := NewKnocker(&Request{Profile: p.URI(), TimeoutMs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	res, err := k.Run(nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Opens != "127.0.0.1" || res.Mode != "bound" || res.Packets != crypto.LenSource {
		t.Errorf("result %+v, want a 24-packet knock bound to 127.0.0.1", res)
	}
}

// TestRunAutoLyingSTUN: a STUN server that lies gets a knock bound to its
// answer, which the server refuses as a bad tag; when the knock is not
// answered the client falls back to mode source and says so.
func TestRunAutoLyingSTUN(t *testing.T) {
	stun := stuntest.StartOn(t, "udp4", "127.0.0.1:0", netip.MustParseAddr("203.0.113.66"))
	p, _ := testProfile(t, "127.0.0.1")
	p.Address = profile.AddressAuto
	p.STUN = []string{stun}
	k, err := NewKnocker(&Request{Profile: p.URI(), Port: freePort(t), Confirm: true, WaitMs: 200, Retries: 1, TimeoutMs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	var ev eventLog
	res, err := k.Run(&ev)
	if !IsNotConfirmed(err) {
		t.Fatalf("Run = %v", err)
	}
	want := "address knocked unanswered fallback knocked unanswered"
	if got := strings.Join(ev, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if res.Mode != "source" || res.Opens != "source" {
		t.Errorf("after the fallback: %+v", res)
	}
}

func TestSTUNQueryIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		nstest.Skip(t, "needs an IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	stun := stuntest.Start(t, "udp6")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a, err := stunQuery(ctx, stun, 6)
	if err != nil || a != netip.IPv6Loopback() {
		t.Errorf("stunQuery = %v, %v; want ::1", a, err)
	}
}

func TestSTUNNoAnswer(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0") // a server that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	_, err = stunQuery(ctx, c.LocalAddr().String(), 4)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("stunQuery = %v, want did not answer", err)
	}
}

// rfc5769Response is the sample IPv4 response of RFC 5769 §2.2.
const rfc5769Response = "0101003c2112a442b7e7a701bc34d686fa87dfae" +
	"8022000b7465737420766563746f7220" +
	"002000080001a147e112a643" +
	"000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7" +
	"80280004c07d4c96"

func TestParseSTUNResponseRFC5769(t *testing.T) {
	m, _ := hex.DecodeString(rfc5769Response)
	var id [12]byte
	copy(id[:], m[8:20])
	got, err := parseSTUNResponse(m, id)
	if want := netip.MustParseAddrPort("192.0.2.1:32853"); err != nil || got != want {
		t.Errorf("parse = %v, %v; want %v", got, err, want)
	}
	id[0]++
	if _, err := parseSTUNResponse(m, id); err != errSTUNIgnore {
		t.Errorf("other transaction: %v, want errSTUNIgnore", err)
	}
	if _, err := parseSTUNResponse(m[:len(m)-4], [12]byte(m[8:20])); err == nil {
		t.Error("truncated message parsed")
	}
}

func TestResponderRoundTrip(t *testing.T) {
	for _, from := range []string{"198.51.100.7:4242", "[2001:db8::7]:65000"} {
		var id [12]byte
		copy(id[:], "abcdefghijkl")
		ap := netip.MustParseAddrPort(from)
		got, err := parseSTUNResponse(stuntest.Response(stunRequest(id), ap), id)
		if err != nil || got != ap {
			t.Errorf("%s: parsed %v, %v", from, got, err)
		}
	}
}

func FuzzParseSTUNResponse(f *testing.F) {
	m, _ := hex.DecodeString(rfc5769Response)
	f.Add(m)
	var id [12]byte
	f.Add(stuntest.Response(stunRequest(id), netip.MustParseAddrPort("[2001:db8::1]:1")))
	f.Add(stunRequest(id))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id [12]byte
		if len(b) >= 20 {
			copy(id[:], b[8:20])
		}
		parseSTUNResponse(b, id)
	})
}

func TestNewErrors(t *testing.T) {
	p, _ := testProfile(t, "127.0.0.1")
	u := p.URI()
	tests := []struct {
		r    Request
		want string
	}{
		{Request{Profile: "cipherknock://h/?realm=r"}, "malformed profile URI"},
		{Request{Profile: u, Port: 70000}, "port must be"},
		{Request{Profile: u, Proto: "icmp"}, "protocol must be"},
		{Request{Profile: u, Duration: -1}, "duration must be"},
		{Request{Profile: u, Address: "255.255.255.255"}, "cannot be opened"},
		{Request{Profile: u, Transport: "sctp"}, "transport must be"},
		{Request{Profile: u, Family: 5}, "IP version"},
		{Request{Profile: u, STUN: "nope"}, "want host:port"},
		{Request{Profile: u, Retries: 99}, "retries must be"},
		{Request{Profile: u, Host: "a b"}, "not a valid DNS name"},
		{Request{Profile: u, Proto: "udp", Port: 51820, Confirm: true}, "udp/51820 cannot be confirmed"},
	}
	for _, tt := range tests {
		_, err := NewKnocker(&tt.r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.r, err, tt.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	p, _ := testProfile(t, "127.0.0.1")
	k, _ := NewKnocker(&Request{Profile: p.URI(), Family: 6})
	if _, err := k.Run(nil); err == nil || err.Error() != "host 127.0.0.1 is not an IPv6 address" {
		t.Errorf("Run -6 on an IPv4 host = %v", err)
	}
	// .onion names are never sent to DNS (RFC 7686): no traffic leaves.
	k, _ = NewKnocker(&Request{Profile: p.URI(), Host: "knock.onion"})
	if _, err := k.Run(nil); err == nil || err.Error() != "cannot resolve host knock.onion: no suitable address found" {
		t.Errorf("Run on an unresolvable host = %v", err)
	}
}

// TestCancel: Cancel, 300 ms into a knock that waits up to 10 s for its
// confirmation, ends Run with context.Canceled. The 5 s bound is generous
// (Run returns at once) and only tells a cancel from the full wait.
func TestCancel(t *testing.T) {
	p, _ := testProfile(t, "127.0.0.1")
	k, _ := NewKnocker(&Request{Profile: p.URI(), Port: freePort(t), Confirm: true, WaitMs: 10000})
	time.AfterFunc(300*time.Millisecond, k.Cancel)
	start := time.Now()
	_, err := k.Run(nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("Run after Cancel = %v after %v", err, time.Since(start))
	}
}

func TestParseProfile(t *testing.T) {
	p, _ := testProfile(t, "knock.example.org")
	info, err := ParseProfile(p.URI())
	if err != nil {
		t.Fatal(err)
	}
	if info.Host != "knock.example.org" || info.Realm != "test.realm" || info.User != 3 || info.Port != 22 || info.Proto != "tcp" {
		t.Errorf("info %+v", info)
	}
}

// BenchmarkKnock measures sealing and sending one source-mode knock over
// UDP on the loopback, name resolution excluded.
func BenchmarkKnock(b *testing.B) {
	k0, _ := crypto.GenerateKey()
	p := profile.New("127.0.0.1", "bench", 0, k0)
	k, err := NewKnocker(&Request{Profile: p.URI()})
	if err != nil {
		b.Fatal(err)
	}
	server := netip.MustParseAddr("127.0.0.1")
	s, err := newSender("udp", server)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	kn := crypto.Knock{Action: crypto.ActionOpen, Proto: ports.TCP, Port: 22, Duration: 60}
	var buf [crypto.MaxLen]byte
	b.ReportAllocs()
	for b.Loop() {
		kn.Time = uint32(time.Now().Unix())
		kn.RandomNonce()
		kb, _ := crypto.Seal(buf[:0], k.realm, 0, k.user, &kn)
		if _, err := k.send(context.Background(), s, server, kb); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPacing checks that packets are spaced by at least the pacing.
func TestPacing(t *testing.T) {
	p, _ := testProfile(t, "127.0.0.1")
	k, err := NewKnocker(&Request{Profile: p.URI(), PacingMs: 4})
	if err != nil {
		t.Fatal(err)
	}
	var stamps []time.Time
	var r stampRecorder
	r.f = func() { stamps = append(stamps, time.Now()) }
	if _, err := k.send(context.Background(), &r, netip.MustParseAddr("127.0.0.1"), make([]byte, crypto.LenSource)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(stamps); i++ {
		if d := stamps[i].Sub(stamps[i-1]); d < 4*time.Millisecond {
			t.Fatalf("packets %d and %d only %v apart", i-1, i, d)
		}
	}
	if len(stamps) != crypto.LenSource {
		t.Errorf("%d packets, want %d", len(stamps), crypto.LenSource)
	}
}

type stampRecorder struct{ f func() }

func (r *stampRecorder) send(uint16) error { r.f(); return nil }
func (r *stampRecorder) close()            {}
