package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/internal/vectors"
	"github.com/cipherknock/cipherknock/profile"
)

// TestProfileURIsAgree: the knock page's parser (ck.js, run by Node)
// accepts exactly the profile URIs package profile accepts, and writes
// them back identically, for hand-made URIs and thousands of mutations.
func TestProfileURIsAgree(t *testing.T) {
	const key = "ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm"
	const rk = "ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4"
	seeds := []string{
		"cipherknock://knock.example.org/?realm=example.org&user=0&key=" + key + "&port=22&proto=tcp&dur=3600&base=20480",
		"cipherknock://[2001:db8::1]/?realm=e_x&user=65535&key=" + key + "&rk=" + rk + "&port=443&proto=udp&dur=65535&base=55296&addr=auto&via=tcp&rep=8&stun=stun.example.org:3478,[2001:db8::2]:3478&name=_home",
		"CipherKnock://192.0.2.1?realm=r&user=7&key=" + key + "&addr=198.51.100.7&name=work.1",
		" cipherknock://a_b.example./?user=1&realm=R&key=" + key + "&dur=1&addr=::ffff:192.0.2.1 \n",
		"cipherknock://[::ffff:192.0.2.1]/?realm=r&user=0&key=" + key + "&addr=2001:db8::7&stun=",
		"cipherknock://h/?realm=r&user=0&key=" + key + "&addr=224.0.0.1",
		"cipherknock://h/?realm=r&user=0&key=" + key + "&addr=ff02::1",
		"cipherknock://h/?realm=r&user=00&key=" + key,
		"cipherknock://h/?realm=r&user=0&key=" + key + "&stun=a:0",
		"cipherknock://h/?realm=r&user=0&key=" + key + "&stun=2001:db8::1:3478",
		"cipherknock://h/?realm=r&user=0&key=" + key + "&name=.x",
		"cipherknock://h/?realm=r&user=0&key=" + key + "&port=%32%32",
		"cipherknock://h/?realm=r+s&user=0&key=" + key,
		"cipherknock://-h/?realm=r&user=0&key=" + key,
		"cipherknock://h-.x/?realm=r&user=0&key=" + key,
		"cipherknock://[fe80::1%25eth0]/?realm=r&user=0&key=" + key,
		"cipherknock://01.2.3.4/?realm=r&user=0&key=" + key,
		"cipherknock://1.2.3/?realm=r&user=0&key=" + key,
	}
	inputs := append([]string(nil), seeds...)
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abz09:/?&=#[]%.-_+ ,\x00\xc3\xa9"
	for i := 0; i < 4000; i++ {
		b := []byte(seeds[rng.IntN(len(seeds))])
		// Mostly outside the key, whose checksum would refuse nearly
		// every change to it.
		kat := bytes.Index(b, []byte(key))
		for k := 1 + rng.IntN(3); k > 0; k-- {
			j := rng.IntN(len(b) + 1)
			for tries := 0; tries < 8 && kat >= 0 && j >= kat && j < kat+len(key) && rng.IntN(10) > 0; tries++ {
				j = rng.IntN(len(b) + 1)
			}
			c := alphabet[rng.IntN(len(alphabet))]
			switch rng.IntN(3) {
			case 0:
				if j < len(b) {
					b = append(b[:j], b[j+1:]...)
				}
			case 1:
				b = append(b[:j], append([]byte{c}, b[j:]...)...)
			default:
				if j < len(b) {
					b[j] = c
				}
			}
		}
		inputs = append(inputs, string(b))
	}
	// JSON carries strings as UTF-16 text: keep the inputs valid UTF-8
	// so that both sides see the same characters.
	valid := inputs[:0]
	for _, s := range inputs {
		if utf8.ValidString(s) {
			valid = append(valid, s)
		}
	}
	sc := runNode(t, "node/uridiff.js", valid, 1<<20)
	var accepted, n int
	for i := 0; sc.Scan(); i++ {
		var r struct {
			OK  bool
			URI string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		n++
		p, err := profile.ParseURI(valid[i])
		switch {
		case (err == nil) != r.OK:
			t.Errorf("input %d (%q): Go accepts: %v (%v), ck.js accepts: %v", i, redact(valid[i]), err == nil, err, r.OK)
		case err == nil && p.URI() != r.URI:
			t.Errorf("input %d: Go writes %q, ck.js %q", i, redact(p.URI()), redact(r.URI))
		case err == nil:
			accepted++
		}
	}
	if n != len(valid) {
		t.Fatalf("ck.js answered %d of %d inputs", n, len(valid))
	}
	t.Logf("%d inputs, %d accepted by both, the rest refused by both", n, accepted)
}

// redact hides the test key's body in failure messages.
func redact(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm"), []byte("…")))
}

// TestVectorsAgree: ck.js and internal/vectors (the Go checker, with its
// reference receiver) agree on which vector files hold, and on the
// receiver's class of each vector that fails only on its expect value,
// for every file of testdata/vectors and thousands of mutations of them:
// header values swapped for those of other vectors or for the edges of
// their range, receiver-source, receiver-time and key-case changes,
// lines dropped or added, ports dropped, repeated or injected.
// Passphrase vectors are left out (Argon2id costs 64 MiB per key); the
// vector tests check them.
func TestVectorsAgree(t *testing.T) {
	paths, err := filepath.Glob("../testdata/vectors/*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	type file struct {
		Name string `json:"name"`
		Text string `json:"text"`
	}
	var seeds []file
	pool := map[string][]string{} // values by header key, from every vector
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("passphrase: ")) {
			continue
		}
		seeds = append(seeds, file{filepath.Base(p), string(b)})
		head, _, _ := strings.Cut(string(b), "\n\n")
		for _, l := range strings.Split(head, "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok {
				pool[k] = append(pool[k], v)
			}
		}
	}
	edges := map[string][]string{
		"receiver-time":   {"-9223372036854775808", "9223372036854775807", "9223372036854775806", "9223372036854775808", "-9223372036854775809", "-1", "0", "-0", "01", "1767225539", "1767225540", "1767225660", "1767225661"},
		"receiver-source": {"198.51.100.23", "::ffff:198.51.100.23", "198.51.100.24", "2001:db8::1", "2001:DB8::1", "0.0.0.0", "224.0.0.1", "::", "ff02::1", "::ffff:0.0.0.0", "198.051.100.23", "fe80::1%eth0"},
		"address":         {"198.51.100.23", "::ffff:198.51.100.23", "0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "2001:db8::1", "2001:0db8::1"},
		"receiver-window": {"4", "5", "60", "600", "601", "0"},
		"expect":          {"success", "port outside span", "conflicting duplicate", "truncated", "unknown version", "malformed knock", "extra packets", "unknown user", "bad tag", "field out of range", "stale", "future", "replay"},
		"mode":            {"source", "bound", "ipv4", "ipv6"},
		"port":            {"0", "1", "65535", "65536"},
		"duration":        {"0", "1", "65535"},
		"action":          {"open", "close"},
		"span-base":       {"1023", "1024", "55296", "55297"},
		"timestamp":       {"0", "4294967295", "4294967296"},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	inputs := append([]file(nil), seeds...)
	for i := 0; i < 3000; i++ {
		f := seeds[rng.IntN(len(seeds))]
		head, body, _ := strings.Cut(f.Text, "\n\n")
		lines := strings.Split(head, "\n")
		ports := strings.Fields(body)
		for k := 1 + rng.IntN(2); k > 0; k-- {
			j := rng.IntN(len(lines))
			key, value, _ := strings.Cut(lines[j], ": ")
			switch r := rng.IntN(10); {
			case r < 4: // a value from the edges of its range
				if e := edges[key]; len(e) > 0 {
					lines[j] = key + ": " + e[rng.IntN(len(e))]
					break
				}
				fallthrough
			case r < 6: // another vector's value for the key
				if p := pool[key]; len(p) > 0 {
					lines[j] = key + ": " + p[rng.IntN(len(p))]
				}
			case r == 6: // key text in another letter case
				if key == "key" || key == "realm-key" || key == "receiver-key" {
					lines[j] = key + ": " + strings.ToUpper(value[:len(value)/2]) + value[len(value)/2:]
				}
			case r == 7: // a line dropped
				lines = append(lines[:j], lines[j+1:]...)
			case r == 8: // a line added (a duplicate key is invalid)
				keys := []string{"receiver-source", "address", "receiver-time", "receiver-window", "receiver-user-index"}
				k := keys[rng.IntN(len(keys))]
				if e := edges[k]; len(e) > 0 {
					lines = append(lines, k+": "+e[rng.IntN(len(e))])
				} else {
					lines = append(lines, k+": 7")
				}
			default: // the body: a port dropped, repeated or injected
				if len(ports) == 0 {
					break
				}
				p := rng.IntN(len(ports))
				switch rng.IntN(3) {
				case 0:
					ports = append(ports[:p], ports[p+1:]...)
				case 1:
					ports = append(ports, ports[p])
				default:
					ports = append(ports[:p], append([]string{strconv.Itoa(20480 + rng.IntN(10240))}, ports[p:]...)...)
				}
			}
		}
		text := strings.Join(lines, "\n") + "\n\n"
		if len(ports) > 0 {
			text += strings.Join(ports, " ") + "\n"
		}
		inputs = append(inputs, file{f.Name, text})
	}
	expectRE := regexp.MustCompile(`^expect ([a-z ]+), receiver says ([a-z ]+)$`)
	sc := runNode(t, "node/vectordiff.js", inputs, 1<<20)
	var n, held, classes int
	for i := 0; sc.Scan(); i++ {
		var r struct {
			OK    bool
			Class string
			Skip  string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		n++
		if r.Skip != "" {
			t.Errorf("input %d (from %s): ck.js skips it: %s", i, inputs[i].Name, r.Skip)
			continue
		}
		var goClass string
		v, err := vectors.Parse(inputs[i].Name, []byte(inputs[i].Text))
		if err == nil {
			err = vectors.Check(v)
			if m := expectRE.FindStringSubmatch(fmt.Sprint(err)); m != nil {
				goClass = m[2]
			}
		}
		switch {
		case (err == nil) != r.OK:
			t.Errorf("input %d (from %s): Go holds: %v (%v), ck.js holds: %v\n%s", i, inputs[i].Name, err == nil, err, r.OK, redact(inputs[i].Text))
		case goClass != r.Class:
			t.Errorf("input %d (from %s): the receiver's class is %q for Go (%v), %q for ck.js\n%s", i, inputs[i].Name, goClass, err, r.Class, redact(inputs[i].Text))
		case err == nil:
			held++
		case goClass != "":
			classes++
		}
	}
	if n != len(inputs) {
		t.Fatalf("ck.js answered %d of %d inputs", n, len(inputs))
	}
	t.Logf("%d vector files: %d hold for both, %d fail only on expect with the same class for both, the rest are refused by both", n, held, classes)
}

// runNode runs the Node script with input, encoded as JSON in a file named
// on its command line, and returns a scanner over its output, one JSON
// line per input (lines of up to max bytes). Without Node it skips, and
// in strict mode fails.
func runNode(t *testing.T, script string, input any, max int) *bufio.Scanner {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		nstest.Skip(t, "needs Node.js (apt-get install nodejs)")
	}
	js, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(in, js, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, script, in).Output()
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, max)
	return sc
}
