package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

func testKey(b byte) crypto.Key {
	var k crypto.Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func testProfile() *Profile {
	p := New("knock.example.org", "example", 7, testKey(1))
	p.Name = "work"
	return p
}

func TestURIRoundTrip(t *testing.T) {
	rk := crypto.RealmKey(testKey(9))
	full := testProfile()
	full.RealmKey = &rk
	full.Port, full.Proto, full.Duration, full.Base = 443, ports.UDP, 60, 1024
	full.Address, full.Via, full.Repeat = AddressAuto, ViaTCP, 2
	full.STUN = []string{"stun.example.org:3478", "[2001:db8::1]:3478"}
	v6 := New("2001:db8::5", "r", 0, testKey(3))
	v6.Address = "192.0.2.1"
	for _, p := range []*Profile{testProfile(), full, v6} {
		u := p.URI()
		got, err := ParseURI(u)
		if err != nil {
			t.Fatalf("ParseURI(%s): %v", p.Name, err)
		}
		if p.Name == "" && got.Name == p.Host {
			got.Name = ""
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", u, got, p)
		}
		if got.URI() != u {
			t.Errorf("URI not canonical: %s vs %s", got.URI(), u)
		}
	}
}

func TestURIShortForQR(t *testing.T) {
	rk := crypto.RealmKey(testKey(9))
	p := testProfile()
	p.RealmKey = &rk
	if n := len(p.URI()); n > 250 {
		t.Errorf("URI with realm key is %d bytes; keep it under 250 for a small QR code", n)
	}
}

func TestParseURIErrors(t *testing.T) {
	good := testProfile().URI()
	key := testKey(1)
	secret := key.Encode()
	tests := []struct{ uri, want string }{
		{"", "must start with cipherknock://"},
		{"cipherknock://[fe80::1%25eth0]/?realm=a&user=0&key=" + secret, "bad IPv6"},
		{"https://x/?realm=a", "must start with cipherknock://"},
		{"cipherknock://host", "missing parameters"},
		{"cipherknock://host/?realm=a&user=0", `missing parameter "key"`},
		{"cipherknock://ho st/?realm=a&user=0&key=" + secret, "not a valid DNS name"},
		{"cipherknock://host:22/?realm=a&user=0&key=" + secret, "the port is a parameter"},
		{"cipherknock://u@host/?realm=a&user=0&key=" + secret, "bare name"},
		{"cipherknock://[::1/?realm=a&user=0&key=" + secret, "bad IPv6"},
		{"cipherknock://::1/?realm=a&user=0&key=" + secret, "bare name"},
		{"cipherknock://h/?realm=a&user=0&key=" + secret[:len(secret)-1] + "a", "bad key: key checksum mismatch"},
		{"cipherknock://h/?realm=a&user=0&key=" + secret[:20], "bad key: key has the wrong length"},
		{"cipherknock://h/?realm=a&user=0&key=" + strings.Replace(secret, "ck-key-", "ck-realm-", 1), "bad key: not a cipherknock key"},
		{good + "&port=0", `parameter "port" given twice`},
		{strings.Replace(good, "port=22", "port=70000", 1), "port must be 1..65535"},
		{strings.Replace(good, "port=22", "port=022", 1), "port must be 1..65535"},
		{strings.Replace(good, "proto=tcp", "proto=sctp", 1), "protocol must be tcp or udp"},
		{strings.Replace(good, "dur=3600", "dur=0", 1), "duration must be"},
		{strings.Replace(good, "base=20480", "base=60000", 1), "span base must be 1024..55296"},
		{strings.Replace(good, "realm=example", "realm=a/b", 1), "realm name may contain only"},
		{strings.Replace(good, "user=7", "user=-1", 1), "user index must be"},
		{good + "&addr=224.0.0.1", "address cannot be opened"},
		{good + "&addr=nowhere", "address must be"},
		{good + "&via=icmp", "transport must be"},
		{good + "&rep=9", "repeat must be 1..8"},
		{good + "&stun=stun.example.org", "STUN server: want host:port"},
		{good + "&colour=red", `unknown parameter "colour"`},
		{good + "&key", `parameter "key" has no value`},
		{good + "#frag", "unexpected '#'"},
		{good + "&rep=%zz", "bad %-escape"},
		{strings.Replace(good, "name=work", "name=.hidden", 1), "profile name must not start"},
	}
	for _, tt := range tests {
		_, err := ParseURI(tt.uri)
		if err == nil {
			t.Errorf("ParseURI(%q) succeeded, want %q", tt.uri, tt.want)
			continue
		}
		if !errors.Is(err, ErrURI) {
			t.Errorf("ParseURI(%q) = %v, not wrapping ErrURI", tt.uri, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURI(%q) = %q, want it to contain %q", tt.uri, err, tt.want)
		}
		if strings.Contains(err.Error(), secret[10:30]) {
			t.Errorf("error reveals the key: %v", err)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	p := testProfile()
	p.STUN = []string{"127.0.0.1:3478"}
	got, err := Parse("work.profile", p.Format())
	if err != nil {
		t.Fatal(err)
	}
	got.Name = p.Name
	if !reflect.DeepEqual(got, p) {
		t.Errorf("got %+v, want %+v", got, p)
	}
}

func TestParseFileErrors(t *testing.T) {
	secret := testKey(1)
	key := secret.Encode()
	base := "host = h\nrealm = r\nuser = 1\nkey = " + key + "\n"
	tests := []struct{ in, want string }{
		{"host = h\n", `f: missing setting "realm"`},
		{base + "port\n", "f:5: want key = value"},
		{base + "colour = red\n", `f:5: unknown setting "colour"`},
		{base + "host = g\n", "f:5: host already set on line 1"},
		{"host = h\nrealm = r\nuser = 1\nkey = " + key[:30] + "\n", "f:4: key: bad key: key has the wrong length"},
		{base + "port = 0\n", "f:5: port: port must be 1..65535"},
		{"host = fe80::1%eth0\n", "f:1: host: IPv6 zones are not supported"},
		{base + "\r\n# c\nproto = x\n", "f:7: proto: protocol must be"},
		{strings.Repeat("#", maxFileSize+1), "f: file too large"},
	}
	for _, tt := range tests {
		_, err := Parse("f", []byte(tt.in))
		if err == nil || err.Error() != tt.want && !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), key[10:30]) {
			t.Errorf("error reveals the key: %v", err)
		}
	}
}

func TestStore(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "cipherknock")}
	p := testProfile()
	if err := s.Save(p, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.Dir, "work.profile"))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("profile mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := s.Save(p, false); !errors.Is(err, ErrExists) {
		t.Errorf("second Save = %v, want ErrExists", err)
	}
	got, err := s.Load("work")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("Load = %+v, want %+v", got, p)
	}
	names, err := s.List()
	if err != nil || !reflect.DeepEqual(names, []string{"work"}) {
		t.Errorf("List = %v, %v", names, err)
	}
	if _, err := s.Load("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(nope) = %v, want ErrNotFound", err)
	}
	if _, err := s.Load("../etc"); err == nil {
		t.Error("Load(../etc) succeeded")
	}
	if runtime.GOOS != "windows" {
		os.Chmod(filepath.Join(s.Dir, "work.profile"), 0o644)
		_, err = s.Load("work")
		if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Load of a 0644 file = %v, want ErrPermissions", err)
		}
	}
	if err := s.Remove("work"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("work"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v", err)
	}
}

// TestSaveAtomic checks that a failed write leaves the old profile intact
// and no temporary file behind.
func TestSaveAtomic(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	p := testProfile()
	if err := s.Save(p, false); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(filepath.Join(s.Dir, "work.profile"))
	syncFile = func(*os.File) error { return errors.New("disk full") }
	t.Cleanup(func() { syncFile = (*os.File).Sync })
	q := testProfile()
	q.Port = 2222
	if err := s.Save(q, true); err == nil {
		t.Fatal("Save succeeded despite the failing sync")
	}
	now, _ := os.ReadFile(filepath.Join(s.Dir, "work.profile"))
	if string(now) != string(old) {
		t.Error("failed Save changed the profile")
	}
	ents, _ := os.ReadDir(s.Dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries after a failed Save, want 1", len(ents))
	}
}

func FuzzParseURI(f *testing.F) {
	rk := crypto.RealmKey(testKey(9))
	p := testProfile()
	f.Add(p.URI())
	p.RealmKey = &rk
	p.Address, p.Via, p.Repeat, p.STUN = "2001:db8::1", ViaTCP, 3, []string{"[::1]:3478", "s.example:19302"}
	f.Add(p.URI())
	f.Add("cipherknock://[::1]/?realm=a&user=0&key=ck-key-aaaa")
	f.Add("cipherknock://h?realm=a&&user=65535&name=%41")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseURI(s)
		if err != nil {
			return
		}
		q, err := ParseURI(p.URI())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", p.URI(), err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the profile: %+v vs %+v", p, q)
		}
	})
}

func FuzzParse(f *testing.F) {
	p := testProfile()
	f.Add(p.Format())
	p.STUN = []string{"127.0.0.1:3478"}
	p.Address = "auto"
	f.Add(p.Format())
	f.Add([]byte("host=h\nrealm=r\nuser=0\nkey=ck-key-\n"))
	f.Add([]byte("# only a comment\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f", data)
		if err != nil {
			return
		}
		q, err := Parse("f", p.Format())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if _, err := ParseURI(p.URI()); err != nil {
			t.Fatalf("the profile's URI does not parse: %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the profile: %+v vs %+v", p, q)
		}
	})
}
