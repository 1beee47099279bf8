package vectors

import (
	"encoding/binary"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock"
)

// fuzzVectors returns the embedded vectors that need no passphrase, sorted
// by name.
func fuzzVectors(tb testing.TB) []*Vector {
	var vs []*Vector
	err := fs.WalkDir(cipherknock.Vectors, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(cipherknock.Vectors, p)
		if err != nil {
			return err
		}
		v, err := Parse(path.Base(p), data)
		if err != nil {
			return err
		}
		if v.Header["passphrase"] == "" && v.Header["receiver-passphrase"] == "" {
			vs = append(vs, v)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	slices.SortFunc(vs, func(a, b *Vector) int { return strings.Compare(a.Name, b.Name) })
	return vs
}

// FuzzReceiverAgainstReference is a differential test of the receiver: it
// takes a vector, changes what the receiver observes and when, and requires
// encoding.Span.Decode and crypto.Opener.Open to reach the same class as the
// reference receiver written from SPEC.md's pseudo-code.
//
// ops is read two bytes at a time: the first byte picks a position from -1
// (just below the span) to 40 (just above it), the second the byte value;
// each pair becomes one more observed port. keep says how many of the
// vector's own ports come first.
func FuzzReceiverAgainstReference(f *testing.F) {
	vs := fuzzVectors(f)
	f.Add(uint16(0), uint8(255), []byte{}, int16(0))
	f.Add(uint16(3), uint8(10), []byte{10, 5, 0, 0x11}, int16(61))
	f.Add(uint16(7), uint8(255), []byte{41, 0, 1, 2, 1, 3}, int16(-61))
	f.Add(uint16(42), uint8(24), []byte{25, 1}, int16(600))
	f.Fuzz(func(t *testing.T, which uint16, keep uint8, ops []byte, dt int16) {
		v := vs[int(which)%len(vs)].Clone()
		c := newChecker()
		in, err := c.inputs(v)
		if err != nil {
			t.Fatal(err)
		}
		body := v.Body[:min(int(keep), len(v.Body))]
		for i := 0; i+1 < len(ops); i += 2 {
			pos := int(ops[i]%42) - 1
			port := int(in.span.Base) + pos*256 + int(ops[i+1])
			if port < 0 || port > 65535 {
				continue
			}
			body = append(body, uint16(port))
		}
		v.Body = body
		now, _ := strconv.ParseInt(v.Header["receiver-time"], 10, 64)
		v.Header["receiver-time"] = strconv.FormatInt(now+int64(dt), 10)
		if _, _, _, err := c.receive(v, in); err != nil {
			t.Fatalf("%s with body %v at %+d s: %v", v.Name, body, dt, err)
		}
	})
}

func TestRefInRange(t *testing.T) {
	p := make([]byte, 29)
	binary.BigEndian.PutUint16(p[1:], 22)
	binary.BigEndian.PutUint16(p[3:], 1)
	p[0] = 0x10
	copy(p[13:], []byte{0x20, 0x01, 0x0d, 0xb8})
	if !refInRange(2, p) {
		t.Error("open tcp/22 for 2001:db8:: is out of range")
	}
	p[13] = 0xff
	if refInRange(2, p) {
		t.Error("ff01:db8:: is in range")
	}
}
