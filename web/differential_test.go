package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/cipherknock/cipherknock/profile"
)

// TestProfileURIsAgree: the knock page's parser (ck.js, run by Node)
// accepts exactly the profile URIs package profile accepts, and writes
// them back identically, for hand-made URIs and thousands of mutations.
func TestProfileURIsAgree(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs Node.js (apt-get install nodejs)")
	}
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
	js, err := json.Marshal(valid)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "uris.json")
	if err := os.WriteFile(in, js, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "node/uridiff.js", in).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
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
