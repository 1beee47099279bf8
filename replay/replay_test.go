package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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

// open opens a cache that the test closes when it ends.
func open(t *testing.T, path string, capacity int, now int64) (*Cache, bool) {
	t.Helper()
	c, lost, err := Open(path, capacity, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, lost
}

func TestAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _ := open(t, path, 100, now)
	for i := range byte(5) {
		if err := c.Add(id(i), now, now); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(path)
	if err := c.Add(id(9), now, now); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || after.Size() != before.Size()+int64(recordSize) {
		t.Fatalf("Add rewrote the file or wrote %d bytes", after.Size()-before.Size())
	}
	// Opening a clean log does not rewrite it either.
	c.Close()
	open(t, path, 100, now)
	if st, _ := os.Stat(path); !os.SameFile(st, after) {
		t.Fatal("Open rewrote a clean log")
	}
}

func TestTornTail(t *testing.T) {
	const now = 1_700_000_000
	for _, tc := range []struct {
		name string
		tear func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-recordSize/2] }},
		{"one byte", func(b []byte) []byte { return b[:len(b)-recordSize+1] }},
		{"zeroed", func(b []byte) []byte { clear(b[len(b)-recordSize:]); return b }},
		{"garbled", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replay")
			c, _ := open(t, path, 10, now)
			for i := range byte(4) {
				if err := c.Add(id(i), now, now); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			b, _ := os.ReadFile(path)
			os.WriteFile(path, tc.tear(b), 0o600)
			c, lost := open(t, path, 10, now)
			if lost || c.Len() != 3 {
				t.Fatalf("lost %v, %d entries, want the 3 complete records", lost, c.Len())
			}
			for i := range byte(3) {
				if !c.Seen(id(i), now) {
					t.Fatalf("record %d lost", i)
				}
			}
			// The log goes on after the torn record was dropped.
			if err := c.Add(id(3), now, now); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if c, lost := open(t, path, 10, now); lost || c.Len() != 4 {
				t.Fatalf("after appending: lost %v, %d entries", lost, c.Len())
			}
			if _, err := os.Stat(path + ".corrupt"); err == nil {
				t.Fatal("a torn record was treated as damage")
			}
		})
	}
}

func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _ := open(t, path, 10_000, now)
	// Entries that expire, then enough live ones that the log holds
	// more than twice as many records as live entries.
	const old, live = 2 * minCompact, 8
	for i := range old {
		if err := c.Add(crypto.ReplayID{0, 1, byte(i), byte(i >> 8)}, now, now); err != nil {
			t.Fatal(err)
		}
	}
	later := int64(now + Retention + 1)
	for i := range live {
		if err := c.Add(crypto.ReplayID{0, 2, byte(i)}, uint32(later), later); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	if st.Size() != int64(headerSize+live*recordSize) {
		t.Fatalf("log of %d bytes, want %d live records", st.Size(), live)
	}
	if c.Len() != live {
		t.Fatalf("%d entries", c.Len())
	}
	c.Close()
	c, lost := open(t, path, 10_000, later)
	if lost || c.Len() != live {
		t.Fatalf("reopen: lost %v, %d entries", lost, c.Len())
	}
	for i := range live {
		if !c.Seen(crypto.ReplayID{0, 2, byte(i)}, uint32(later)) {
			t.Fatalf("entry %d lost by compaction", i)
		}
	}
	if c.Seen(crypto.ReplayID{0, 1, 0}, uint32(later)) {
		t.Fatal("expired entry kept")
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(m) != 1 {
		t.Fatalf("files left: %v", m)
	}
}

// TestCrashAfterAdd kills a process right after its Add returned: the
// knock is on disk without any Close.
func TestCrashAfterAdd(t *testing.T) {
	const now = 1_700_000_000
	if path := os.Getenv("REPLAY_TEST_CHILD"); path != "" {
		c, _, err := Open(path, 10, now)
		if err == nil {
			err = c.Add(id(1), now, now)
		}
		if err == nil {
			err = c.Add(id(2), now, now)
		}
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("added")
		select {} // until killed
	}
	path := filepath.Join(t.TempDir(), "replay")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAfterAdd$")
	cmd.Env = append(os.Environ(), "REPLAY_TEST_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if line != "added\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	c, lost := open(t, path, 10, now)
	if lost || c.Len() != 2 || !c.Seen(id(1), now) || !c.Seen(id(2), now) {
		t.Fatalf("after the crash: lost %v, %d entries", lost, c.Len())
	}
}

func TestCorruptRecordFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	const now = 1_700_000_000
	c, _ := open(t, path, 10, now)
	for i := range byte(3) {
		c.Add(id(i), now, now)
	}
	c.Close()
	b, _ := os.ReadFile(path)
	b[headerSize+recordSize+2] ^= 1 // the second of three records
	os.WriteFile(path, b, 0o600)
	c, lost := open(t, path, 10, now+1)
	if !lost || c.Len() != 0 {
		t.Fatalf("lost %v, %d entries", lost, c.Len())
	}
	if !c.Seen(id(7), now+1+Retention) || c.Seen(id(7), now+1+Retention+1) {
		t.Fatal("horizon")
	}
	if moved, _ := os.ReadFile(path + ".corrupt"); !bytes.Equal(moved, b) {
		t.Fatal("damaged file not kept aside")
	}
	// The refusal survives a restart.
	c.Close()
	c, lost = open(t, path, 10, now+2)
	if lost || !c.Seen(id(7), now+1+Retention) || c.Seen(id(7), now+1+Retention+1) {
		t.Fatalf("horizon after restart: lost %v", lost)
	}
}

// FuzzDecode feeds arbitrary files to the decoder: whatever it accepts
// stays within the capacity, counts every user's entries, and survives a
// compaction unchanged.
func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "replay")
	c, _, _ := Open(path, 10, 1000)
	c.Add(id(1), 1000, 1000)
	c.Add(id(2), 1001, 1000)
	c.Add(crypto.ReplayID{0, 2, 3}, 990, 1000)
	c.Close()
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add(b[:len(b)-5])                                                                 // torn last record
	f.Add(append(b[:len(b)-recordSize:len(b)-recordSize], make([]byte, recordSize)...)) // zeroed last record
	mid := append([]byte(nil), b...)
	mid[headerSize+recordSize+3] ^= 1 // damaged record in the middle
	f.Add(mid)
	f.Add(b[:headerSize])
	f.Add([]byte(magic))
	f.Add([]byte("ckreplay\x00\x00\x00\x00\x00\x00\x00\x00")) // an older format
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Cache{cap: 4, perUser: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
		if _, err := c.decode(data, 1000); err != nil {
			return
		}
		n := 0
		for _, k := range c.users {
			n += k
		}
		if len(c.m) > 4 || n != len(c.m) || c.records > len(data)/recordSize {
			t.Fatalf("%d entries, %d counted, %d records", len(c.m), n, c.records)
		}
		c2 := &Cache{cap: 4, perUser: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
		if clean, err := c2.decode(c.encode(1000), 1000); err != nil || !clean || !maps.Equal(c.m, c2.m) || c.horizon != c2.horizon {
			t.Fatalf("compacted: %v %v %v %v, horizon %d %d", err, clean, c.m, c2.m, c.horizon, c2.horizon)
		}
	})
}

// BenchmarkAdd measures one accepted knock's cost, with an empty cache
// and with one holding 65,536 live entries.
func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{0, 1 << 16} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "replay")
			c, _, _ := Open(path, 1<<20, 1000)
			for j := range n {
				r := crypto.ReplayID{0, 0, byte(j), byte(j >> 8), byte(j >> 16)}
				c.m[r] = 1000
				c.users[userOf(&r)]++
			}
			if err := c.compact(1000); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := crypto.ReplayID{0, 1, byte(i), byte(i >> 8), byte(i >> 16)}
				if err := c.Add(r, 1000, 1000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompact measures one compaction of 65,536 live entries, which
// happens once every 65,536+minCompact Adds at most.
func BenchmarkCompact(b *testing.B) {
	path := filepath.Join(b.TempDir(), "replay")
	c, _, _ := Open(path, 1<<20, 1000)
	for j := range 1 << 16 {
		r := crypto.ReplayID{0, 0, byte(j), byte(j >> 8), byte(j >> 16)}
		c.m[r] = 1000
		c.users[userOf(&r)]++
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.compact(1000); err != nil {
			b.Fatal(err)
		}
	}
}
