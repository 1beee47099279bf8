package vectors

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// MaxFileSize bounds the size of one vector file.
const MaxFileSize = 64 << 10

// Result is the outcome of checking one vector: Err is nil when it passed.
type Result struct {
	Name string
	Err  error
}

// Report lists the result of every vector, sorted by name.
type Report struct {
	Results []Result
}

// Failed returns how many vectors failed.
func (r Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.Err != nil {
			n++
		}
	}
	return n
}

// Summary returns one line such as "62 vectors: 62 passed, 0 failed".
func (r Report) Summary() string {
	f := r.Failed()
	return fmt.Sprintf("%d vectors: %d passed, %d failed", len(r.Results), len(r.Results)-f, f)
}

// CheckFS checks every regular file below the root of fsys as a vector; a
// file's base name is the vector's name. The error is for an unreadable or
// empty tree; a vector that does not parse or does not check is a failed
// Result.
func CheckFS(fsys fs.FS) (Report, error) {
	var r Report
	seen := make(map[string]bool)
	c := newChecker()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		name := path.Base(p)
		res := Result{Name: name}
		switch {
		case seen[name]:
			res.Err = fmt.Errorf("%s: two vectors have this name", p)
		case CheckName(name) != nil:
			res.Err = fmt.Errorf("%s: %v", p, CheckName(name))
		default:
			res.Err = c.checkFile(fsys, p, name)
		}
		seen[name] = true
		r.Results = append(r.Results, res)
		return nil
	})
	if err != nil {
		return r, err
	}
	if len(r.Results) == 0 {
		return r, errors.New("no test vectors found")
	}
	slices.SortStableFunc(r.Results, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

func (c *checker) checkFile(fsys fs.FS, p, name string) error {
	f, err := fsys.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("%s: larger than %d bytes", p, MaxFileSize)
	}
	v, err := Parse(p, data)
	if err != nil {
		return err
	}
	v.Name = name
	if err := c.check(v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// Check recomputes every intermediate of v from its inputs, runs the
// receiver on its body and compares the outcome with its expect value.
func Check(v *Vector) error { return newChecker().check(v) }

// Outcome runs only the receiver side of v: it decodes the body and opens
// the knock with the receiver's configuration, and returns "success" or the
// failure class. The generator uses it for vectors whose class is computed.
func Outcome(v *Vector) (string, error) {
	c := newChecker()
	in, err := c.inputs(v)
	if err != nil {
		return "", err
	}
	class, _, _, err := c.receive(v, in)
	return class, err
}

type checker struct {
	passKeys map[string]crypto.Key // Argon2id is slow: derive each passphrase key once
}

func newChecker() *checker { return &checker{passKeys: make(map[string]crypto.Key)} }

func (c *checker) passphraseKey(pass, realm string, index uint16) (crypto.Key, error) {
	id := fmt.Sprintf("%d\x00%s\x00%s", index, realm, pass)
	if k, ok := c.passKeys[id]; ok {
		return k, nil
	}
	k, err := crypto.PassphraseKey([]byte(pass), realm, index)
	if err != nil {
		return k, err
	}
	c.passKeys[id] = k
	return k, nil
}

// inputs are a vector's decoded sender inputs.
type inputs struct {
	key       crypto.Key
	index     uint16
	realm     string
	realmKey  *crypto.RealmKey
	mode      crypto.Mode
	bound     netip.Addr    // mode bound: the address under the tag
	knock     *crypto.Knock // nil when the plaintext is hand-made
	plaintext []byte
	span      encoding.Span
}

// plainFields are the headers that make up the plaintext; a vector has all
// of them or none, in which case its plaintext header is the input.
var plainFields = []string{"action", "protocol", "port", "duration", "timestamp", "nonce"}

func (c *checker) inputs(v *Vector) (*inputs, error) {
	h := v.Header
	// Vectors built in code have not been through Parse.
	for _, key := range Keys {
		if value, ok := h[key]; ok {
			if err := checkValue(key, kinds[key], value); err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
		}
	}
	for key := range h {
		if _, ok := kinds[key]; !ok {
			return nil, fmt.Errorf("unknown header key %q", clip(key))
		}
	}
	in := new(inputs)
	var err error
	for _, k := range []string{"expect", "realm", "user-index", "mode", "receiver-time"} {
		if _, ok := h[k]; !ok {
			return nil, fmt.Errorf("missing header %s", k)
		}
	}
	in.realm = h["realm"]
	in.index = uint16(mustUint(h["user-index"]))
	in.mode, _ = parseMode(h["mode"])
	if s, ok := h["realm-key"]; ok {
		rk, _ := crypto.ParseRealmKey(s)
		in.realmKey = &rk
	}
	switch ks, ps := h["key"], h["passphrase"]; {
	case ks != "" && ps != "":
		return nil, errors.New("both key and passphrase")
	case ks != "":
		in.key, _ = crypto.ParseKey(ks)
	case ps != "":
		if in.key, err = c.passphraseKey(ps, in.realm, in.index); err != nil {
			return nil, fmt.Errorf("passphrase: %v", err)
		}
	default:
		return nil, errors.New("missing header key or passphrase")
	}

	in.span = encoding.DefaultSpan
	if s, ok := h["span-base"]; ok {
		if in.span, err = encoding.NewSpan(int(mustUint(s))); err != nil {
			return nil, fmt.Errorf("span-base: %v", err)
		}
	}

	n := 0
	for _, k := range plainFields {
		if _, ok := h[k]; ok {
			n++
		}
	}
	_, hasAddr := h["address"]
	if in.mode == crypto.ModeBound {
		// The bound address is not in the plaintext: a bound vector
		// always has it, with or without the other fields.
		if !hasAddr {
			return nil, errors.New("mode bound needs an address header")
		}
		in.bound, _ = netip.ParseAddr(h["address"])
	}
	switch n {
	case 0:
		if hasAddr && in.mode != crypto.ModeBound {
			return nil, errors.New("address without the other plaintext fields")
		}
		s, ok := h["plaintext"]
		if !ok {
			return nil, errors.New("missing header plaintext")
		}
		in.plaintext, _ = parseHex(s)
		if want := in.mode.Len() - crypto.LenSource + crypto.FixedPlainLen; len(in.plaintext) != want {
			return nil, fmt.Errorf("plaintext length %d, mode %s needs %d", len(in.plaintext), in.mode, want)
		}
	case len(plainFields):
		k := &crypto.Knock{Mode: in.mode}
		k.Action, _ = parseAction(h["action"])
		k.Proto, _ = ports.ParseProto(h["protocol"])
		k.Port = uint16(mustUint(h["port"]))
		k.Duration = uint16(mustUint(h["duration"]))
		k.Time = uint32(mustUint(h["timestamp"]))
		nonce, _ := parseHex(h["nonce"])
		copy(k.Nonce[:], nonce)
		if hasAddr != (in.mode != crypto.ModeSource) {
			return nil, fmt.Errorf("mode %s needs an address header if and only if it is not source", in.mode)
		}
		if hasAddr {
			k.Addr, _ = netip.ParseAddr(h["address"])
			if in.mode != crypto.ModeBound && k.Addr.Is4() != (in.mode == crypto.ModeIPv4) {
				return nil, fmt.Errorf("address family does not match mode %s", in.mode)
			}
		}
		// A sender never seals out-of-range fields (SPEC.md §5.3, §12):
		// such a vector is invalid; out-of-range cases are hand-made
		// plaintexts.
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("the fields are out of range (%v): a vector gives such a knock as a hand-made plaintext", err)
		}
		in.knock = k
		in.plaintext = crypto.AppendPlaintext(nil, k)
	default:
		return nil, fmt.Errorf("needs all of %v or none", plainFields)
	}
	return in, nil
}

func mustUint(s string) uint64 {
	n, _ := parseUint(s, 64)
	return n
}

func (c *checker) check(v *Vector) error {
	in, err := c.inputs(v)
	if err != nil {
		return err
	}
	h := v.Header

	// Sender side: every intermediate, by the crypto package and by the
	// reference computation, must match the vector.
	mac, enc := in.key.Subkeys()
	outer := crypto.OuterKey(in.realmKey)
	rmac, renc := refSubkeys(in.key[:])
	var rk []byte
	if in.realmKey != nil {
		rk = in.realmKey[:]
	}
	router := refOuterKey(rk)
	if !bytes.Equal(mac[:], rmac) || !bytes.Equal(enc[:], renc) || !bytes.Equal(outer[:], router) {
		return errors.New("crypto: derived keys differ from the reference derivation (SPEC.md §4)")
	}
	for _, x := range []struct {
		key  string
		want []byte
	}{{"mac-key", mac[:]}, {"enc-key", enc[:]}, {"outer-key", outer[:]}} {
		if err := compareSecret(h, x.key, x.want); err != nil {
			return err
		}
	}
	if err := compareHex(h, "plaintext", in.plaintext); err != nil {
		return err
	}
	realm, err := crypto.NewRealm(in.realm, in.realmKey)
	if err != nil {
		return fmt.Errorf("realm: %v", err)
	}
	header := crypto.Header(in.mode)
	var knock []byte
	var refBound []byte
	if in.mode == crypto.ModeBound {
		knock = crypto.SealPlaintextBound(nil, realm, in.index, crypto.NewUser(&in.key), in.plaintext, in.bound)
		a := in.bound.Unmap().As16()
		refBound = a[:]
	} else {
		knock = crypto.SealPlaintext(nil, realm, in.index, crypto.NewUser(&in.key), header, in.plaintext)
	}
	ref := refSeal(mac[:], enc[:], outer[:], in.realm, header, in.index, in.plaintext, refBound)
	if !bytes.Equal(knock, ref) {
		return fmt.Errorf("crypto: sealed knock %x differs from the reference %x (SPEC.md §6)", knock, ref)
	}
	if in.knock != nil {
		sealed, err := crypto.Seal(nil, realm, in.index, crypto.NewUser(&in.key), in.knock)
		if err != nil || !bytes.Equal(sealed, knock) {
			return fmt.Errorf("crypto: Seal gives %x, SealPlaintext %x", sealed, knock)
		}
	}
	n := len(knock)
	for _, x := range []struct {
		key  string
		want []byte
	}{
		{"tag", knock[n-crypto.TagSize:]},
		{"user-field", knock[crypto.HeaderSize : crypto.HeaderSize+crypto.UserFieldSize]},
		{"ciphertext", knock[crypto.HeaderSize+crypto.UserFieldSize : n-crypto.TagSize]},
		{"knock", knock},
	} {
		if err := compareHex(h, x.key, x.want); err != nil {
			return err
		}
	}
	ports := in.span.AppendPorts(nil, knock)
	if s, ok := h["ports"]; !ok {
		return errors.New("missing header ports")
	} else if got, _ := parsePorts(s); !slices.Equal(got, ports) {
		return fmt.Errorf("ports: vector has %s, inputs give %s", s, FormatPorts(ports))
	}

	// Receiver side.
	class, opened, body, err := c.receive(v, in)
	if err != nil {
		return err
	}
	if class != h["expect"] {
		return fmt.Errorf("expect %s, receiver says %s", h["expect"], class)
	}
	if class != Success {
		return nil
	}
	if !bytes.Equal(body, knock) {
		return fmt.Errorf("the body decodes to %x, not to the knock", body)
	}
	// A daemon assembles packets as they come instead of decoding a whole
	// sequence; it must reach the same knock.
	var a encoding.Assembler
	complete := false
	for _, p := range v.Body {
		if complete = a.AddPort(in.span, p); complete {
			break
		}
	}
	if !complete || a.Conflicted() || !bytes.Equal(a.Knock(nil), knock) {
		return fmt.Errorf("the assembler does not reach the knock (complete %v, conflicted %v)", complete, a.Conflicted())
	}
	if opened.User != in.index {
		return fmt.Errorf("opened user index %d, want %d", opened.User, in.index)
	}
	wantID := append([]byte{byte(in.index >> 8), byte(in.index)}, knock[n-crypto.TagSize:]...)
	if !bytes.Equal(opened.ID[:], wantID) {
		return fmt.Errorf("replay ID %x, want %x", opened.ID, wantID)
	}
	got := &opened.Knock
	if got.Mode != in.mode {
		return fmt.Errorf("opened mode %s, want %s", got.Mode, in.mode)
	}
	want := in.knock
	if want != nil && in.mode == crypto.ModeBound {
		// The receiver reports the address it observed, unmapped.
		w := *want
		w.Addr = w.Addr.Unmap()
		want = &w
	}
	if want != nil && *got != *want {
		return fmt.Errorf("opened fields %+v differ from the inputs %+v", *got, *in.knock)
	}
	if p := crypto.AppendPlaintext(nil, got); !bytes.Equal(p, in.plaintext) {
		return fmt.Errorf("opened fields encode to %x, not to the plaintext", p)
	}
	return nil
}

// receive decodes the body and opens it with the receiver's configuration:
// the sender's, overridden by the receiver-* headers.
func (c *checker) receive(v *Vector, in *inputs) (class string, opened crypto.Opened, knock []byte, err error) {
	h := v.Header
	realmName := in.realm
	if s, ok := h["receiver-realm"]; ok {
		realmName = s
	}
	index := in.index
	if s, ok := h["receiver-user-index"]; ok {
		index = uint16(mustUint(s))
	}
	rk := in.realmKey
	if s, ok := h["receiver-realm-key"]; ok {
		rk = nil
		if s != NoRealmKey {
			k, _ := crypto.ParseRealmKey(s)
			rk = &k
		}
	}
	key := in.key
	switch ks, ps := h["receiver-key"], h["receiver-passphrase"]; {
	case ks != "" && ps != "":
		return "", opened, nil, errors.New("both receiver-key and receiver-passphrase")
	case ks != "":
		key, _ = crypto.ParseKey(ks)
	case ps != "":
		if key, err = c.passphraseKey(ps, realmName, index); err != nil {
			return "", opened, nil, fmt.Errorf("receiver-passphrase: %v", err)
		}
	}
	window := 0 // the default
	if s, ok := h["receiver-window"]; ok {
		window = int(mustUint(s))
		if window < crypto.MinWindow || window > crypto.MaxWindow {
			return "", opened, nil, fmt.Errorf("receiver-window outside %d..%d", crypto.MinWindow, crypto.MaxWindow)
		}
	}
	now, _ := parseTime(h["receiver-time"])
	realm, err := crypto.NewRealm(realmName, rk)
	if err != nil {
		return "", opened, nil, fmt.Errorf("receiver-realm: %v", err)
	}
	o := crypto.NewOpener(realm, map[uint16]*crypto.User{index: crypto.NewUser(&key)}, window)
	// The packets' source: receiver-source, or else the bound address
	// (mode bound) or none.
	src := in.bound
	if s, ok := h["receiver-source"]; ok {
		src, _ = netip.ParseAddr(s)
	}

	knock, err = in.span.Decode(nil, v.Body)
	if err == nil {
		opened, err = o.OpenFrom(knock, now, src)
	}
	class = Success
	if err != nil {
		class = ""
		for name, sentinel := range Classes {
			if err == sentinel {
				class = name
			}
		}
		if class == "" {
			return "", opened, knock, fmt.Errorf("receiver returned an error of no known class: %v", err)
		}
	}

	// The same receiver written from the specification's pseudo-code must
	// reach the same class.
	ref := &refReceiver{
		base:   int(in.span.Base),
		realm:  realmName,
		index:  index,
		now:    now,
		window: crypto.DefaultWindow,
		src:    src,
	}
	if window != 0 {
		ref.window = int64(window)
	}
	var rkBytes []byte
	if rk != nil {
		rkBytes = rk[:]
	}
	ref.outerKey = refOuterKey(rkBytes)
	ref.macKey, ref.encKey = refSubkeys(key[:])
	if want := ref.receive(v.Body); want != class {
		return "", opened, knock, fmt.Errorf("crypto/encoding say %s, the reference receiver (SPEC.md §8, §10.1) says %s", class, want)
	}
	return class, opened, knock, nil
}

func compareHex(h map[string]string, key string, want []byte) error {
	s, ok := h[key]
	if !ok {
		return fmt.Errorf("missing header %s", key)
	}
	if got, _ := parseHex(s); !bytes.Equal(got, want) {
		return fmt.Errorf("%s: vector has %s, inputs give %x", key, s, want)
	}
	return nil
}

// compareSecret is compareHex for derived keys: a mismatch does not print
// them.
func compareSecret(h map[string]string, key string, want []byte) error {
	s, ok := h[key]
	if !ok {
		return fmt.Errorf("missing header %s", key)
	}
	if s != hex.EncodeToString(want) {
		return fmt.Errorf("%s: does not match the key derived from the inputs", key)
	}
	return nil
}
