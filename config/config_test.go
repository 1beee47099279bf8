package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
)

const testKey = "ck-key-cjmujslzgx3q523iialun75uxzbewsmcggclz7s7oh2azjzw4mqe2cdi74"

var testRealmKey = func() crypto.RealmKey {
	k, err := crypto.GenerateRealmKey()
	if err != nil {
		panic(err)
	}
	return k
}()

// memFS serves key files by base name: open.key is readable by all,
// garbage.key holds no key, realm.key holds testRealmKey, other *.key
// files hold testKey, and anything else does not exist.
type memFS struct{}

func (memFS) ReadSecret(path string) ([]byte, fs.FileMode, error) {
	switch base := filepath.Base(path); {
	case base == "open.key":
		return []byte(testKey + "\n"), 0o644, nil
	case base == "realm.key":
		return []byte(testRealmKey.Encode() + "\n"), 0o600, nil
	case base == "garbage.key":
		return []byte("hello\n"), 0o600, nil
	case base == "missing.key" || !strings.HasSuffix(base, ".key"):
		return nil, 0, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	default:
		return []byte(testKey + "\n"), 0o600, nil
	}
}

func TestGood(t *testing.T) {
	data, err := os.ReadFile("testdata/good/full.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("full.conf", data, "/etc/ck", 0o644, memFS{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Realm != "example.org" || c.Firewall != "iptables" || c.Window != 60 ||
		c.AssemblyTimeout != 10*time.Second || c.ReplayCacheSize != 4096 || c.LogFormat != "json" ||
		c.RejectLogInterval != time.Minute || len(c.Interfaces) != 2 || c.Interfaces[1] != "eth1" {
		t.Errorf("daemon section: %+v", c)
	}
	if len(c.Users) != 2 {
		t.Fatalf("users: %d", len(c.Users))
	}
	a, b := c.Users[0], c.Users[1]
	want, _ := crypto.ParseKey(testKey)
	if a.Name != "alice" || a.Index != 0 || a.Key != want || len(a.Ports) != 3 || a.MaxDuration != 3600 || a.AllowAddress != nil {
		t.Errorf("alice: %+v", a)
	}
	if a.Ports[1] != (ports.Range{Proto: ports.TCP, From: 8000, To: 8100}) || a.Ports[2].Proto != ports.UDP {
		t.Errorf("alice ports: %+v", a.Ports)
	}
	if b.Index != 7 || b.MaxDuration != 3600 || len(b.AllowAddress) != 2 || b.AllowAddress[1] != netip.MustParsePrefix("2001:db8::/32") || len(b.Sources) != 3 ||
		b.Sources[2] != netip.MustParsePrefix("198.51.100.7/32") {
		t.Errorf("bob: %+v", b)
	}
	prot := c.Protect()
	if len(prot) != 4 || prot[0].From != 22 || prot[1].From != 443 || prot[3].Proto != ports.UDP {
		t.Errorf("Protect: %+v", prot)
	}
}

// TestBad parses every file in testdata/bad, each of which names the errors
// it must produce in "# want: LINE: message" comments, and nothing else.
func TestBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.conf")
	if len(files) < 30 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".conf"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			perm := fs.FileMode(0o600)
			if strings.Contains(name, "readable") {
				perm = 0o644
			}
			var wants []string
			for _, l := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(l, "# want: "); ok {
					wants = append(wants, name+":"+w)
				}
			}
			_, err = Parse(name, data, "", perm, memFS{})
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("want Errors, got %v", err)
			}
			if len(es) != len(wants) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(wants), err)
			}
			for i, w := range wants {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, es[i], w)
				}
			}
			if strings.Contains(err.Error(), testKey[8:20]) {
				t.Errorf("error reveals key material: %v", err)
			}
		})
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "ck.conf")
	os.WriteFile(conf, []byte("[daemon]\nrealm = r\n[user a]\nindex = 1\nkey-file = a.key\nports = tcp/22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.key"), []byte(testKey+"\n"), 0o640)
	if _, err := Load(conf); err == nil || !strings.Contains(err.Error(), "ck.conf:5: key-file \"a.key\": group or others may access it (mode 0640)") {
		t.Fatalf("open key file: %v", err)
	}
	os.Chmod(filepath.Join(dir, "a.key"), 0o600)
	c, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if c.Users[0].Index != 1 {
		t.Fatal(c.Users[0])
	}
	if _, err := Load(filepath.Join(dir, "nope.conf")); err == nil || !strings.Contains(err.Error(), "nope.conf:0: cannot read") {
		t.Fatal(err)
	}
}

func TestProtectMerges(t *testing.T) {
	c := &Config{Users: []*policy.User{
		{Ports: []ports.Range{{Proto: ports.TCP, From: 10, To: 20}, {Proto: ports.UDP, From: 5, To: 5}}},
		{Ports: []ports.Range{{Proto: ports.TCP, From: 21, To: 30}, {Proto: ports.TCP, From: 15, To: 16}, {Proto: ports.TCP, From: 40, To: 40}}},
	}}
	got := c.Protect()
	want := []ports.Range{{Proto: ports.TCP, From: 10, To: 30}, {Proto: ports.TCP, From: 40, To: 40}, {Proto: ports.UDP, From: 5, To: 5}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%+v", got)
		}
	}
}

// FuzzParse feeds arbitrary files to the parser: it must never panic, must
// return either a config or errors that each carry a line inside the file,
// and must never echo a key.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.conf")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte("[daemon]\nrealm=x\n[user a]\nindex=1\nkey=" + testKey + "\nports=tcp/1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.conf", data, "", 0o600, memFS{})
		if err == nil {
			if c == nil || len(c.Users)+len(c.Triggers) == 0 || c.Realm == "" {
				t.Fatalf("no error but config %+v", c)
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error of type %T", err)
		}
		n := lex.Lines(data)
		for _, e := range es {
			if e.Line < 1 || e.Line > n {
				t.Fatalf("line %d outside 1..%d: %v", e.Line, n, e)
			}
		}
		// The value of a key line must not reach any message, unless the
		// same text also appears on another line.
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			k, v, ok := strings.Cut(l, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(lex.StripComment(v))
			if !ok || (k != "key" && k != "realm-key") || len(v) < 20 || !strings.HasPrefix(v, "ck-") {
				continue
			}
			others := strings.Join(lines[:i], "\n") + strings.Join(lines[i+1:], "\n") + k
			if secret := v[9:20]; strings.Contains(err.Error(), secret) && !strings.Contains(others, secret) {
				t.Fatalf("error echoes a key: %v", err)
			}
		}
	})
}
