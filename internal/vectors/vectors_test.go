package vectors_test

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cipherknock/cipherknock"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/internal/vectors"
)

// embedded returns every embedded vector file by name.
func embedded(t testing.TB) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := fs.WalkDir(cipherknock.Vectors, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(cipherknock.Vectors, p)
		files[path.Base(p)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestVectors(t *testing.T) {
	r, err := vectors.CheckFS(cipherknock.Vectors)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results {
		t.Run(res.Name, func(t *testing.T) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
		})
	}
	if r.Failed() != 0 {
		t.Errorf("%s", r.Summary())
	}

	// The set must cover every failure class and both outcomes generously.
	classes := make(map[string]int)
	for name, data := range embedded(t) {
		v, err := vectors.Parse(name, data)
		if err != nil {
			t.Fatal(err)
		}
		classes[v.Header["expect"]]++
		if v.Header["comment"] == "" {
			t.Errorf("%s: no comment", name)
		}
	}
	pos, neg := classes[vectors.Success], len(r.Results)-classes[vectors.Success]
	if pos < 35 || neg < 35 {
		t.Errorf("%d positive and %d negative vectors, want at least 35 of each", pos, neg)
	}
	for class := range vectors.Classes {
		if classes[class] == 0 {
			t.Errorf("no vector expects %q", class)
		}
	}
	t.Logf("%s (%d positive, %d negative)", r.Summary(), pos, neg)
}

func TestSummary(t *testing.T) {
	r := vectors.Report{Results: []vectors.Result{{Name: "a"}, {Name: "b", Err: fs.ErrInvalid}, {Name: "c"}}}
	if got, want := r.Summary(), "3 vectors: 2 passed, 1 failed"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for name, data := range embedded(t) {
		v, err := vectors.Parse(name, data)
		if err != nil {
			t.Fatal(err)
		}
		out, err := vectors.Format(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Errorf("%s: Format(Parse(file)) differs from the file:\n%s", name, out)
		}
	}
}

const validHeader = "comment: c\nexpect: success\n"

func TestParseErrors(t *testing.T) {
	const secretKey = "ck-key-7amdghm6uyslfyfrhiqmncz27blzovkpvq6xklizknrhuyq2zig63lxita" // bad checksum
	for _, tc := range []struct {
		name, data, want string
	}{
		{"unknown_key", validHeader + "colour: blue\n\n", `x:3: unknown header key "colour"`},
		{"duplicate_key", validHeader + "comment: again\n\n", `x:3: duplicate header key "comment"`},
		{"missing_blank_line", validHeader, "x:3: missing blank line"},
		{"missing_blank_line_no_newline", "comment: c", "x:1: missing blank line"},
		{"not_key_value", "comment:c\n\n", `x:1: header line is not "key: value"`},
		{"empty_value", "comment: \n\n", "x:1: comment: empty value"},
		{"space_around_value", "comment:  c\n\n", "x:1: comment: empty value or surrounding white space"},
		{"carriage_return", "comment: c\r\n\n", "x:1: comment: "},
		{"control_character", "comment: a\x01b\n\n", "x:1: comment: control character"},
		{"bad_hex", validHeader + "tag: 0g\n\n", "x:3: tag: not lowercase hex"},
		{"odd_hex", validHeader + "tag: 012\n\n", "x:3: tag: not lowercase hex"},
		{"upper_hex", validHeader + "tag: AB\n\n", "x:3: tag: not lowercase hex"},
		{"short_mac_key", validHeader + "mac-key: 00\n\n", "x:3: mac-key: wrong length"},
		{"short_nonce", validHeader + "nonce: 000000\n\n", "x:3: nonce: wrong length"},
		{"bad_expect", "expect: broken\n\n", "x:1: expect: not"},
		{"bad_key", "key: " + secretKey + "\n\n", "x:1: key: key checksum mismatch"},
		{"noncanonical_key_bits", "key: ck-key-7amdghm6uyslfyfrhiqmncz27blzovkpvq6xklizknrhuyq2zig63lxjtb\n\n", "x:1: key: "},
		{"invalid_utf8", "comment: \xff\n\n", "x:1: comment: invalid UTF-8"},
		{"c1_control", "comment: a\u0090b\n\n", "x:1: comment: control character"},
		{"realm_key_as_key", "key: ck-realm-aaaa\n\n", "x:1: key: not a cipherknock key"},
		{"none_sender_realm_key", "realm-key: none\n\n", "x:1: realm-key: not a cipherknock key"},
		{"bad_realm", "realm: a b\n\n", "x:1: realm: realm name may contain only"},
		{"bad_port", "port: 65536\n\n", "x:1: port: not a decimal number"},
		{"leading_zero", "port: 022\n\n", "x:1: port: not a decimal number"},
		{"signed_index", "user-index: +1\n\n", "x:1: user-index: not a decimal number"},
		{"big_timestamp", "timestamp: 4294967296\n\n", "x:1: timestamp: not a decimal number"},
		{"bad_time", "receiver-time: 01\n\n", "x:1: receiver-time: not a decimal Unix time"},
		{"bad_action", "action: grant\n\n", "x:1: action: not open or close"},
		{"bad_mode", "mode: 3\n\n", "x:1: mode: not source"},
		{"bad_protocol", "protocol: sctp\n\n", "x:1: protocol: protocol must be tcp or udp"},
		{"bad_address", "address: 192.0.2.010\n\n", "x:1: address: not an IP address"},
		{"noncanonical_address", "address: 2001:DB8::1\n\n", "x:1: address: not an IP address in canonical form"},
		{"zoned_address", "address: fe80::1%eth0\n\n", "x:1: address: not an IP address"},
		{"bad_ports_header", "ports: 1  2\n\n", "x:1: ports: ports are decimal"},
		{"bad_body_port", validHeader + "\n20480 x\n", "x:4: body: ports are decimal"},
		{"big_body_port", validHeader + "\n1\n2\n65536\n", "x:6: body: ports are decimal"},
		{"body_without_newline", validHeader + "\n1 2", "x:4: body does not end with a newline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vectors.Parse("x", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse accepted %q", tc.data)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to start with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secretKey[10:]) {
				t.Errorf("error %q reveals the key", err)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	v, err := vectors.Parse("x", []byte(validHeader+"\n1 2\t3\n\n 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{1, 2, 3, 4}; !reflect.DeepEqual(v.Body, want) {
		t.Errorf("body %v, want %v", v.Body, want)
	}
	v, err = vectors.Parse("x", []byte(validHeader+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Body) != 0 || v.Header["comment"] != "c" || v.Header["expect"] != "success" {
		t.Errorf("got %+v", v)
	}
}

func TestFormatRejects(t *testing.T) {
	for _, h := range []map[string]string{
		{"colour": "blue"},
		{"comment": "two\nlines"},
		{"comment": ""},
		{"tag": "xyz"},
	} {
		if out, err := vectors.Format(&vectors.Vector{Name: "x", Header: h}); err == nil {
			t.Errorf("Format(%q) = %q, want an error", h, out)
		}
	}
}

// mutate changes a header value into another valid value of the same kind.
func mutate(key, value string) string {
	switch key {
	case "expect":
		if value == vectors.Success {
			return "bad tag"
		}
		return vectors.Success
	case "ports":
		f := strings.Fields(value)
		f[0], f[1] = f[1], f[0]
		return strings.Join(f, " ")
	case "mode":
		if value == "source" {
			return "ipv4"
		}
		return "source"
	case "key", "receiver-key":
		k := crypto.Key{1}
		if value == k.Encode() {
			k[0] = 2
		}
		return k.Encode()
	case "realm-key", "receiver-realm-key":
		k := crypto.RealmKey{1}
		return k.Encode()
	case "receiver-time":
		n, _ := strconv.ParseInt(value, 10, 64)
		return strconv.FormatInt(n-100, 10)
	case "user-index", "port", "duration", "timestamp", "span-base", "receiver-window":
		if strings.HasSuffix(value, "1") {
			return value[:len(value)-1] + "2"
		}
		return value[:len(value)-1] + "1"
	case "realm":
		return value + "x"
	case "protocol":
		if value == "tcp" {
			return "udp"
		}
		return "tcp"
	case "action":
		if value == "open" {
			return "close"
		}
		return "open"
	}
	// hex: change the last digit.
	last := value[len(value)-1]
	if last == '0' {
		last = '1'
	} else {
		last = '0'
	}
	return value[:len(value)-1] + string(last)
}

// TestCheckDetectsCorruption shows the checker is not vacuous: a change to
// any input, intermediate or expectation of a vector makes it fail.
func TestCheckDetectsCorruption(t *testing.T) {
	files := embedded(t)
	for _, name := range []string{
		"ipv6_tcp_basic", "realm_key_ipv4_udp", "bad_tag_wrong_key", "field_port_zero",
		"stale_window_plus_one", "truncated_missing_position",
	} {
		v, err := vectors.Parse(name, files[name])
		if err != nil {
			t.Fatal(err)
		}
		if err := vectors.Check(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for key, value := range v.Header {
			if key == "comment" || key == "receiver-time" && v.Header["expect"] != "stale" {
				continue // these may change without changing the outcome
			}
			if key == "port" && v.Header["expect"] == "field out of range" {
				continue
			}
			c := v.Clone()
			c.Header[key] = mutate(key, value)
			if key == "receiver-key" {
				c.Header[key] = v.Header["key"] // another wrong key would fail alike
			}
			if err := vectors.Check(c); err == nil {
				t.Errorf("%s: changing %s from %s to %s goes unnoticed", name, key, value, c.Header[key])
			}
		}
		for _, drop := range []string{"mac-key", "plaintext", "tag", "knock", "ports", "expect", "receiver-time"} {
			c := v.Clone()
			delete(c.Header, drop)
			if err := vectors.Check(c); err == nil {
				t.Errorf("%s: a vector without %s passes", name, drop)
			}
		}
	}

	// The body: a success must fail with one packet fewer, a failure must
	// change with the sequence as sent.
	v, _ := vectors.Parse("source_tcp_basic", files["source_tcp_basic"])
	v.Body = v.Body[1:]
	if err := vectors.Check(v); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("dropping the header packet: %v", err)
	}
	v, _ = vectors.Parse("bad_tag_ciphertext_bit_flipped", files["bad_tag_ciphertext_bit_flipped"])
	orig := v.Body[3]
	v.Body[3] ^= 1
	if err := vectors.Check(v); err == nil {
		t.Errorf("bad_tag_ciphertext_bit_flipped passes with the bit flipped back (%d -> %d)", orig, v.Body[3])
	}
}

func TestCheckFSReportsEachVector(t *testing.T) {
	files := embedded(t)
	bad := bytes.Replace(files["source_udp_basic"], []byte("expect: success"), []byte("expect: stale"), 1)
	// One hex digit of the tag changed, in memory.
	src := files["source_tcp_basic"]
	i := bytes.Index(src, []byte("\ntag: ")) + len("\ntag: ")
	corrupt := bytes.Clone(src)
	corrupt[i] ^= 0x01 // '8' <-> '9', 'a' <-> '`'...: keep it a hex digit
	if corrupt[i] == '`' {
		corrupt[i] = 'b'
	}
	fsys := fstest.MapFS{
		"v/source_tcp_basic":         {Data: files["source_tcp_basic"]},
		"v/source_udp_basic":         {Data: bad},
		"w/source_tcp_basic":         {Data: files["source_tcp_basic"]},
		"v/Bad-Name":                 {Data: files["source_tcp_basic"]},
		"v/unknown_key":              {Data: append([]byte("colour: blue\n"), files["port_1"]...)},
		"v/huge":                     {Data: make([]byte, vectors.MaxFileSize+1)},
		"v/window_5_past_edge":       {Data: files["window_5_past_edge"]},
		"v/ipv6_duplicated_shuffled": {Data: files["ipv6_duplicated_shuffled"]},
		"v/tag_corrupted":            {Data: corrupt},
	}
	r, err := vectors.CheckFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Summary(), "9 vectors: 3 passed, 6 failed"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	wantErr := map[string]string{
		"Bad-Name":         "v/Bad-Name: vector names",
		"source_udp_basic": "v/source_udp_basic: expect stale, receiver says success",
		"unknown_key":      `v/unknown_key:1: unknown header key "colour"`,
		"huge":             "v/huge: larger than",
		"tag_corrupted":    "v/tag_corrupted: tag: vector has ",
	}
	dup := 0
	for _, res := range r.Results {
		if res.Name == "source_tcp_basic" && res.Err != nil {
			if !strings.Contains(res.Err.Error(), "two vectors have this name") {
				t.Errorf("duplicate name: %v", res.Err)
			}
			dup++
			continue
		}
		want, bad := wantErr[res.Name]
		switch {
		case !bad && res.Err != nil:
			t.Errorf("%s: %v", res.Name, res.Err)
		case bad && (res.Err == nil || !strings.HasPrefix(res.Err.Error(), want)):
			t.Errorf("%s: error %v, want %q", res.Name, res.Err, want)
		}
	}
	if dup != 1 {
		t.Errorf("%d results for the duplicate name, want 1", dup)
	}
}

func TestCheckFSEmpty(t *testing.T) {
	if _, err := vectors.CheckFS(fstest.MapFS{"d/.keep": {Mode: fs.ModeDir}}); err == nil {
		t.Error("CheckFS of an empty tree succeeded")
	}
}

// TestCheckRejectsInconsistentInputs covers vectors whose inputs cannot
// describe a knock.
func TestCheckRejectsInconsistentInputs(t *testing.T) {
	files := embedded(t)
	for _, tc := range []struct {
		base string
		edit func(h map[string]string)
		want string
	}{
		{"source_tcp_basic", func(h map[string]string) { delete(h, "port") }, "needs all of"},
		{"source_tcp_basic", func(h map[string]string) { h["address"] = "192.0.2.1" }, "needs an address header"},
		{"ipv4_tcp_basic", func(h map[string]string) { h["address"] = "2001:db8::1" }, "address family does not match"},
		{"field_port_zero", func(h map[string]string) { h["address"] = "192.0.2.1" }, "address without"},
		{"field_port_zero", func(h map[string]string) { h["plaintext"] += "00" }, "plaintext length"},
		{"field_port_zero", func(h map[string]string) { h["plaintext"] = strings.Repeat("00", 200) }, "plaintext length"},
		{"source_tcp_basic", func(h map[string]string) { h["passphrase"] = "x" }, "both key and passphrase"},
		{"source_tcp_basic", func(h map[string]string) { delete(h, "key") }, "missing header key or passphrase"},
		{"source_tcp_basic", func(h map[string]string) { h["span-base"] = "1023" }, "span-base"},
		{"source_tcp_basic", func(h map[string]string) { h["receiver-window"] = "4" }, "receiver-window outside"},
		{"source_tcp_basic", func(h map[string]string) { h["receiver-window"] = "601" }, "receiver-window outside"},
		{"source_tcp_basic", func(h map[string]string) {
			h["receiver-key"] = h["key"]
			h["receiver-passphrase"] = "x"
		}, "both receiver-key and receiver-passphrase"},
	} {
		v, err := vectors.Parse(tc.base, files[tc.base])
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(v.Header)
		if err := vectors.Check(v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s edited: error %v, want %q", tc.base, err, tc.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	files := embedded(t)
	for name, want := range map[string]string{
		"source_tcp_basic":     vectors.Success,
		"wrong_realm_key":      "unknown user",
		"future_timestamp_max": "future",
	} {
		v, err := vectors.Parse(name, files[name])
		if err != nil {
			t.Fatal(err)
		}
		if got, err := vectors.Outcome(v); err != nil || got != want {
			t.Errorf("Outcome(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// FuzzParse feeds the parser, formatter and checker arbitrary files: they
// must not panic, and whatever parses must format and parse back unchanged.
func FuzzParse(f *testing.F) {
	for _, data := range embedded(f) {
		f.Add(data)
	}
	f.Add([]byte(validHeader + "\n"))
	f.Add([]byte("comment: c\ncomment: d\n\n1\n"))
	f.Add([]byte("ports: 1 2 3\n\n1 2 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := vectors.Parse("f", data)
		if err != nil {
			return
		}
		out, err := vectors.Format(v)
		if err != nil {
			t.Fatalf("parsed vector does not format: %v", err)
		}
		w, err := vectors.Parse("f", out)
		if err != nil {
			t.Fatalf("formatted vector does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(v, w) && !(len(v.Body) == 0 && len(w.Body) == 0) {
			t.Fatalf("round trip changed the vector:\n%+v\n%+v", v, w)
		}
		_, hasPass := v.Header["passphrase"]
		_, hasRecvPass := v.Header["receiver-passphrase"]
		if !hasPass && !hasRecvPass { // Argon2id at 64 MiB is too slow to fuzz
			_ = vectors.Check(v)
		}
	})
}

// TestSpecExamples pins the vectors that reproduce SPEC.md's worked examples
// to the numbers printed there, so that the specification's text, the
// implementation and the vectors cannot drift apart.
func TestSpecExamples(t *testing.T) {
	files := embedded(t)
	for name, want := range map[string]map[string]string{
		"spec_example_b1": {
			"mac-key":    "d4832624f6614e2412fd960c7933f310d2042602a12ad67f818a7052e64d5802",
			"enc-key":    "3acbac2badca8c103e26eaecf3deb2a8e5617464bc80b03e563794792afddee2",
			"outer-key":  "3a99f59afbbe92018cad35fbe32b2b5e98a6ac3d8ef13d518ab8720996204a54",
			"plaintext":  "1000160e106955b90001020304",
			"tag":        "80fc032c8057c8e1",
			"user-field": "61d9",
			"ciphertext": "501f179730dc00517830a06136",
			"knock":      "1061d9501f179730dc00517830a0613680fc032c8057c8e1",
			"ports": "20496 20833 21209 21328 21535 21783 22167 22320 22748 22784 23121 23416 " +
				"23600 23968 24161 24374 24704 25084 25091 25388 25728 25943 26312 26593",
			"key": "ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm",
		},
		"spec_example_b1_stale":  {"expect": "stale", "receiver-time": "1767225661", "tag": "80fc032c8057c8e1"},
		"spec_example_b1_future": {"expect": "future", "receiver-time": "1767225539", "tag": "80fc032c8057c8e1"},
		"spec_example_b2": {
			"realm-key":  "ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4",
			"outer-key":  "300c85fcb3950ec1b43d87d0ccf2d1f0270fc8a7748f5414319c594a0d668bb4",
			"plaintext":  "21ca6c00006955b900deadbeefc0000201",
			"tag":        "266491e48ee403fb",
			"user-field": "c3e5",
			"ciphertext": "ec4a1a6e4725a92f107f40cdf5f6ed34b7",
			"knock":      "11c3e5ec4a1a6e4725a92f107f40cdf5f6ed34b7266491e48ee403fb",
			"ports": "20497 20931 21221 21484 21578 21786 22126 22343 22565 22953 23087 23312 23679 23872 " +
				"24269 24565 24822 25069 25140 25527 25638 25956 26257 26596 26766 27108 27139 27643",
		},
	} {
		v, err := vectors.Parse(name, files[name])
		if err != nil {
			t.Fatal(err)
		}
		for key, value := range want {
			if v.Header[key] != value {
				t.Errorf("%s: %s is %s, SPEC.md says %s", name, key, v.Header[key], value)
			}
		}
	}

	// §3.2: "correct horse battery staple", realm example.org, index 0 gives
	// the key c4e38ad7…; the vector's subkeys must be that key's.
	v, err := vectors.Parse("spec_example_passphrase", files["spec_example_passphrase"])
	if err != nil {
		t.Fatal(err)
	}
	if v.Header["passphrase"] != "correct horse battery staple" || v.Header["realm"] != "example.org" || v.Header["user-index"] != "0" {
		t.Fatalf("spec_example_passphrase does not have the inputs of SPEC.md §3.2: %v", v.Header)
	}
	raw, _ := hex.DecodeString("c4e38ad7cbff1472ea319284cb24954a4a0f37264d111c9ca814fdaa6f76a57f")
	k := crypto.Key(raw)
	mac, enc := k.Subkeys()
	if v.Header["mac-key"] != hex.EncodeToString(mac[:]) || v.Header["enc-key"] != hex.EncodeToString(enc[:]) {
		t.Error("spec_example_passphrase: subkeys are not those of the key SPEC.md §3.2 gives")
	}
	if got := hex.EncodeToString(crypto.PassphraseSalt("example.org", 0)); got != "0fa0922fc45c8fb4cb334dd8bbb198fc" {
		t.Errorf("passphrase salt %s, SPEC.md §3.2 says 0fa0922fc45c8fb4cb334dd8bbb198fc", got)
	}
}

// TestKeysMatchSpec reads the header-key table of SPEC.md §12 and requires
// exactly Keys, in the same order.
func TestKeysMatchSpec(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join("..", "..", "SPEC.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(spec), "\n## 12. Test vectors")
	if !ok {
		t.Fatal("SPEC.md has no section 12. Test vectors")
	}
	sec, _, _ = strings.Cut(sec, "\n## 13.")
	sec, _, _ = strings.Cut(sec, "\n### 12.1.") // stream vectors: TestStreamKeysMatchSpec
	var keys []string
	for _, line := range strings.Split(sec, "\n") {
		if f := strings.Split(line, "`"); strings.HasPrefix(line, "| `") && len(f) > 2 {
			keys = append(keys, f[1])
		}
	}
	if !reflect.DeepEqual(keys, vectors.Keys) {
		t.Errorf("SPEC.md §12 lists\n%q\nthe package has\n%q", keys, vectors.Keys)
	}
}

// TestKeyTextCase: key text ignores letter case in vectors as everywhere
// (SPEC.md §3.1, §12); the reader used to refuse upper and mixed case.
func TestKeyTextCase(t *testing.T) {
	k, _ := crypto.GenerateKey()
	for _, text := range []string{strings.ToUpper(k.Encode()), "CK-key-" + strings.ToUpper(k.Encode()[7:20]) + k.Encode()[20:]} {
		if _, err := vectors.Parse("x", []byte("key: "+text+"\n\n")); err != nil {
			t.Errorf("key text %s...: %v", text[:12], err)
		}
	}
}

// TestFieldsOutOfRangeInvalid: a vector that gives out-of-range values as
// fields is invalid (SPEC.md §5.3, §12), not a field-out-of-range case:
// those are hand-made plaintexts.
func TestFieldsOutOfRangeInvalid(t *testing.T) {
	data, err := os.ReadFile("../../testdata/vectors/source_tcp_basic")
	if err != nil {
		t.Fatal(err)
	}
	v, err := vectors.Parse("source_tcp_basic", data)
	if err != nil {
		t.Fatal(err)
	}
	v.Header["port"] = "0"
	v.Header["expect"] = "field out of range"
	err = vectors.Check(v)
	if err == nil || !strings.Contains(err.Error(), "out of range") || strings.Contains(err.Error(), "expect") {
		t.Fatalf("Check = %v, want the vector refused as invalid", err)
	}
}
