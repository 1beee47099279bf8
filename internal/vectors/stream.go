package vectors

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// Stream vectors (SPEC.md §12.1): a packet stream from any number of
// sources, the receiver's configuration and clock, and after each packet
// the opens it causes with their outcome. They specify the assembler of
// §10.2 by example, where ordinary vectors specify one knock.

// StreamKeys are the header keys of a stream vector, in the order the
// generator writes them (SPEC.md §12.1).
var StreamKeys = []string{"comment", "key", "user-index", "realm", "span-base",
	"receiver-time", "receiver-window", "assembler-timeout", "recent"}

// Replay is the outcome of an open whose knock was already accepted.
const Replay = "replay"

// StreamPacket is one packet of a stream and the opens it causes.
type StreamPacket struct {
	MS    int64 // arrival, milliseconds after the stream's start
	Src   netip.Addr
	Port  uint16
	Opens []StreamOpen
}

// StreamOpen is one open of a reading: the bytes opened and the outcome,
// success, a failure class of §8 or replay.
type StreamOpen struct {
	Knock []byte
	Class string
}

// Stream is a parsed stream vector.
type Stream struct {
	Name    string
	Header  map[string]string
	Packets []StreamPacket
}

// ParseStream reads a stream vector.
func ParseStream(name string, data []byte) (*Stream, error) {
	s := &Stream{Name: path.Base(name), Header: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	inBody := false
	for sc.Scan() {
		line++
		t := sc.Text()
		if !inBody {
			if t == "" {
				inBody = true
				continue
			}
			k, v, ok := strings.Cut(t, ": ")
			if !ok || v == "" || strings.TrimSpace(v) != v {
				return nil, fmt.Errorf("%s:%d: not a header line", name, line)
			}
			if !slices.Contains(StreamKeys, k) {
				return nil, fmt.Errorf("%s:%d: unknown header key %q", name, line, k)
			}
			if _, dup := s.Header[k]; dup {
				return nil, fmt.Errorf("%s:%d: key %q twice", name, line, k)
			}
			s.Header[k] = v
			continue
		}
		f := strings.Fields(t)
		switch {
		case len(f) == 4 && f[0] == ">" && f[1] == "open":
			if len(s.Packets) == 0 {
				return nil, fmt.Errorf("%s:%d: an open before any packet", name, line)
			}
			k, err := hex.DecodeString(f[2])
			if err != nil || len(k) == 0 || strings.ToLower(f[2]) != f[2] {
				return nil, fmt.Errorf("%s:%d: bad knock hex", name, line)
			}
			class := strings.ReplaceAll(f[3], "_", " ")
			if _, ok := Classes[class]; !ok && class != Success && class != Replay {
				return nil, fmt.Errorf("%s:%d: unknown outcome %q", name, line, f[3])
			}
			p := &s.Packets[len(s.Packets)-1]
			p.Opens = append(p.Opens, StreamOpen{k, class})
		case len(f) == 3:
			ms, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || ms < 0 || strconv.FormatInt(ms, 10) != f[0] {
				return nil, fmt.Errorf("%s:%d: bad arrival time", name, line)
			}
			if n := len(s.Packets); n > 0 && ms < s.Packets[n-1].MS {
				return nil, fmt.Errorf("%s:%d: arrival times go back", name, line)
			}
			src, err := netip.ParseAddr(f[1])
			if err != nil || src.String() != f[1] || src.Zone() != "" {
				return nil, fmt.Errorf("%s:%d: bad source address", name, line)
			}
			port, err := parsePort(f[2])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, line, err)
			}
			s.Packets = append(s.Packets, StreamPacket{MS: ms, Src: src, Port: port})
		default:
			return nil, fmt.Errorf("%s:%d: not a packet or open line", name, line)
		}
	}
	if !inBody {
		return nil, fmt.Errorf("%s: no empty line after the header", name)
	}
	for _, k := range []string{"key", "user-index", "realm", "receiver-time"} {
		if s.Header[k] == "" {
			return nil, fmt.Errorf("%s: missing %s", name, k)
		}
	}
	return s, nil
}

// FormatStream writes s in the file format.
func FormatStream(s *Stream) []byte {
	var b bytes.Buffer
	for _, k := range StreamKeys {
		if v, ok := s.Header[k]; ok {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	for _, p := range s.Packets {
		fmt.Fprintf(&b, "%d %s %d\n", p.MS, p.Src, p.Port)
		for _, o := range p.Opens {
			fmt.Fprintf(&b, "> open %x %s\n", o.Knock, strings.ReplaceAll(o.Class, " ", "_"))
		}
	}
	return b.Bytes()
}

// streamConfig is a stream's receiver.
type streamConfig struct {
	opener  *crypto.Opener
	span    encoding.Span
	start   int64 // receiver-time, Unix seconds, at ms 0
	timeout int64 // ms
	recent  int64 // ms
}

func streamReceiver(h map[string]string) (*streamConfig, error) {
	key, err := crypto.ParseKey(h["key"])
	if err != nil {
		return nil, fmt.Errorf("key: %v", err)
	}
	index, err := parseUint(h["user-index"], 16)
	if err != nil {
		return nil, errors.New("bad user-index")
	}
	realm, err := crypto.NewRealm(h["realm"], nil)
	if err != nil {
		return nil, fmt.Errorf("realm: %v", err)
	}
	c := &streamConfig{span: encoding.DefaultSpan, timeout: 10000, recent: encoding.Recent / 1_000_000}
	if s, ok := h["span-base"]; ok {
		b, err := parseUint(s, 16)
		if err != nil {
			return nil, errors.New("bad span-base")
		}
		if c.span, err = encoding.NewSpan(int(b)); err != nil {
			return nil, err
		}
	}
	if c.start, err = parseTime(h["receiver-time"]); err != nil {
		return nil, fmt.Errorf("receiver-time: %v", err)
	}
	window := 0
	if s, ok := h["receiver-window"]; ok {
		w, err := parseUint(s, 16)
		if err != nil || w < crypto.MinWindow || w > crypto.MaxWindow {
			return nil, errors.New("bad receiver-window")
		}
		window = int(w)
	}
	for k, p := range map[string]*int64{"assembler-timeout": &c.timeout, "recent": &c.recent} {
		if s, ok := h[k]; ok {
			v, err := parseUint(s, 32)
			if err != nil || v == 0 || v > 600_000 {
				return nil, fmt.Errorf("bad %s", k)
			}
			*p = int64(v)
		}
	}
	if c.recent != encoding.Recent/1_000_000 {
		return nil, fmt.Errorf("recent %d ms: this receiver implements %d ms only", c.recent, encoding.Recent/1_000_000)
	}
	c.opener = crypto.NewOpener(realm, map[uint16]*crypto.User{uint16(index): crypto.NewUser(&key)}, window)
	return c, nil
}

// RunStream plays the stream's packets through the receiver of SPEC.md
// §10.2 (one assembler per source, the replay cache of §7.2, no policy:
// every knock that opens and is not a replay is accepted) and returns the
// packets with the opens each caused.
func RunStream(s *Stream) ([]StreamPacket, error) {
	c, err := streamReceiver(s.Header)
	if err != nil {
		return nil, err
	}
	type entry struct {
		a    encoding.Assembler
		born int64
	}
	asm := map[netip.Addr]*entry{}
	seen := map[crypto.ReplayID]bool{}
	var buf [encoding.MaxPositions]byte
	out := make([]StreamPacket, len(s.Packets))
	for i, p := range s.Packets {
		out[i] = StreamPacket{MS: p.MS, Src: p.Src, Port: p.Port}
		pos, b, ok := c.span.Split(p.Port)
		if !ok || pos == 0 && crypto.KnockLen(b) == 0 {
			continue // not a knock packet; garbage takes no assembler
		}
		e := asm[p.Src]
		if e == nil || p.MS-e.born > c.timeout {
			e = &entry{born: p.MS}
			asm[p.Src] = e
		}
		if !e.a.AddAt(pos, b, encoding.Ticks(p.MS*1e6)) {
			continue
		}
		now := c.start + p.MS/1000
		var oerr error
		_, _, keep := e.a.Open(&buf, func(k []byte) encoding.Verdict {
			o := StreamOpen{Knock: bytes.Clone(k)}
			defer func() { out[i].Opens = append(out[i].Opens, o) }()
			opened, err := c.opener.OpenFrom(k, now, p.Src)
			if err != nil {
				o.Class = ""
				for name, sentinel := range Classes {
					if err == sentinel {
						o.Class = name
					}
				}
				if o.Class == "" {
					oerr = fmt.Errorf("open: error of no known class: %v", err)
				}
				return encoding.Failed
			}
			if seen[opened.ID] {
				o.Class = Replay
				return encoding.Refused
			}
			seen[opened.ID] = true
			o.Class = Success
			return encoding.Accepted
		})
		if oerr != nil {
			return nil, oerr
		}
		if !keep {
			delete(asm, p.Src)
		}
	}
	return out, nil
}

// CheckStream runs s and compares the opens with those it lists.
func CheckStream(s *Stream) error {
	got, err := RunStream(s)
	if err != nil {
		return err
	}
	for i, p := range got {
		want := s.Packets[i].Opens
		if len(p.Opens) != len(want) {
			return fmt.Errorf("packet %d (%d ms, %s, port %d): %d opens, the vector lists %d", i+1, p.MS, p.Src, p.Port, len(p.Opens), len(want))
		}
		for j, o := range p.Opens {
			if !bytes.Equal(o.Knock, want[j].Knock) || o.Class != want[j].Class {
				return fmt.Errorf("packet %d (%d ms, %s, port %d), open %d: %x %s, the vector says %x %s",
					i+1, p.MS, p.Src, p.Port, j+1, o.Knock, o.Class, want[j].Knock, want[j].Class)
			}
		}
	}
	return nil
}

// CheckStreamFS checks every regular file below the root of fsys as a
// stream vector, like CheckFS.
func CheckStreamFS(fsys fs.FS) (Report, error) {
	var r Report
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		res := Result{Name: path.Base(p)}
		res.Err = func() error {
			if err := CheckName(res.Name); err != nil {
				return err
			}
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
			if err != nil {
				return err
			}
			if len(data) > MaxFileSize {
				return fmt.Errorf("%s: larger than %d bytes", p, MaxFileSize)
			}
			s, err := ParseStream(p, data)
			if err != nil {
				return err
			}
			if err := CheckStream(s); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		}()
		r.Results = append(r.Results, res)
		return nil
	})
	if err != nil {
		return r, err
	}
	if len(r.Results) == 0 {
		return r, errors.New("no stream vectors found")
	}
	slices.SortStableFunc(r.Results, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}
