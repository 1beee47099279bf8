package replay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

func id(n byte) crypto.ReplayID { return crypto.ReplayID{0, 1, n, n, n, n, n, n, n, n} }

func TestPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, lost, err := Open(path, 10, now)
	if err != nil || lost {
		t.Fatal(err, lost)
	}
	if err := c.Add(id(1), now, now); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(id(1), now, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("second add: %v", err)
	}
	if err := c.Add(id(2), now-Retention+5, now); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", st.Mode(), err)
	}
	// A new process sees both; ten seconds later the older one is gone.
	c2, lost, err := Open(path, 10, now)
	if err != nil || lost || !c2.Seen(id(1), now) || !c2.Seen(id(2), now-Retention+5) || c2.Len() != 2 {
		t.Fatalf("reopen: %v %v %d", err, lost, c2.Len())
	}
	c3, _, _ := Open(path, 10, now+10)
	if c3.Len() != 1 || !c3.Seen(id(1), now) || c3.Seen(id(2), now-Retention+5) {
		t.Fatalf("expiry on load: %d", c3.Len())
	}
	if m, _ := filepath.Glob(path + "*"); len(m) != 1 {
		t.Fatalf("temporary files left: %v", m)
	}
}

func TestFullFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _, _ := Open(path, 3, now)
	for i := range byte(3) {
		if err := c.Add(id(i), now, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(id(9), now, now); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if c.Seen(id(9), now) {
		t.Fatal("refused knock recorded")
	}
	// Once the entries have expired there is room again.
	if err := c.Add(id(9), now+Retention+1, now+Retention+1); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if c.Len() != 1 {
		t.Fatalf("len %d", c.Len())
	}
}

func TestUserLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _, _ := Open(path, 8, now)
	c.SetUserLimit(4)
	for i := range byte(4) {
		if err := c.Add(id(i), now, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(id(9), now, now); !errors.Is(err, ErrFull) {
		t.Fatalf("user over its share: %v", err)
	}
	other := crypto.ReplayID{0, 2, 1}
	if err := c.Add(other, now, now); err != nil {
		t.Fatalf("another user: %v", err)
	}
	// The share is counted again after a restart.
	c2, _, _ := Open(path, 8, now)
	c2.SetUserLimit(4)
	if err := c2.Add(id(9), now, now); !errors.Is(err, ErrFull) {
		t.Fatalf("after reopen: %v", err)
	}
	if c2.Add(id(9), now+Retention+1, now+Retention+1) != nil {
		t.Fatal("share not freed by expiry")
	}
}

func TestCorruptRefusesWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _, _ := Open(path, 10, now)
	c.Add(id(1), now, now)
	b, _ := os.ReadFile(path)
	b[len(magic)+6] ^= 1
	os.WriteFile(path, b, 0o600)
	c, lost, err := Open(path, 10, now+1)
	if err != nil || !lost {
		t.Fatalf("corrupt: %v %v", err, lost)
	}
	if !c.Seen(id(7), now+Retention) || c.Seen(id(7), now+1+Retention+1) {
		t.Fatal("horizon")
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrorFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "replay")
	c, _, err := Open(path, 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(id(1), 1000, 1000); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if !c.Seen(id(1), 1000) {
		t.Fatal("knock forgotten after a write error")
	}
}

func FuzzDecode(f *testing.F) {
	path := filepath.Join(f.TempDir(), "replay")
	c, _, _ := Open(path, 10, 1000)
	c.Add(id(1), 1000, 1000)
	c.Add(id(2), 1001, 1000)
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Cache{cap: 4, perUser: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
		if c.decode(data, 1000) == nil {
			n := 0
			for _, k := range c.users {
				n += k
			}
			if len(c.m) > 4 || n != len(c.m) {
				t.Fatalf("%d entries, %d counted", len(c.m), n)
			}
		}
	})
}

func BenchmarkAdd(b *testing.B) {
	path := filepath.Join(b.TempDir(), "replay")
	c, _, _ := Open(path, 1<<20, 1000)
	for i := 0; i < b.N; i++ {
		var r crypto.ReplayID
		r[0], r[1], r[2] = byte(i), byte(i>>8), byte(i>>16)
		if err := c.Add(r, 1000, 1000); err != nil {
			b.Fatal(err)
		}
	}
}
