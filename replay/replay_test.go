package replay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
	// Started a while ago: the restart rule does not refuse id(2).
	c, lost, err := Open(path, 10, now-Retention)
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
	// Dropped, but still a replay: the horizon covers it.
	c3, _, _ := Open(path, 10, now+10)
	if c3.Len() != 1 || !c3.Seen(id(1), now) || !c3.Seen(id(2), now-Retention+5) {
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
	addIDs(t, c, 3, now)
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

// TestUserReserve: users who knock in a loop fill the shared half and
// their own reserves, never another user's reserve (two users used to be
// able to fill the whole cache between them).
func TestUserReserve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _ := open(t, path, 64, now)
	c.SetUsers(4) // reserves of 64/8 = 8 each
	if c.Reserve() != 8 {
		t.Fatalf("reserve %d, want 8", c.Reserve())
	}
	user := func(u uint16, n int) crypto.ReplayID {
		return crypto.ReplayID{byte(u >> 8), byte(u), byte(n >> 8), byte(n), 1, 2, 3, 4, 5, 6}
	}
	// Users 1 and 2 knock as fast as they can.
	got := map[uint16]int{}
	for n := range 1000 {
		for _, u := range []uint16{1, 2} {
			if c.Add(user(u, n), now, now) == nil {
				got[u]++
			}
		}
	}
	if got[1]+got[2] != 32+8+8 {
		t.Fatalf("users 1 and 2 got %d and %d entries, want 48 in all", got[1], got[2])
	}
	// Users 3 and 4 still get their whole reserve, not one entry more.
	for _, u := range []uint16{3, 4} {
		for n := range 8 {
			if err := c.Add(user(u, n), now, now); err != nil {
				t.Fatalf("user %d knock %d: %v", u, n, err)
			}
		}
		if err := c.Add(user(u, 8), now, now); !errors.Is(err, ErrFull) {
			t.Fatalf("user %d beyond its reserve with the shared part full: %v", u, err)
		}
	}
	// Counted again after a restart; freed by expiry.
	c2, _ := open(t, path, 64, now)
	c2.SetUsers(4)
	if err := c2.Add(user(3, 99), now, now); !errors.Is(err, ErrFull) {
		t.Fatalf("after reopen: %v", err)
	}
	if err := c2.Add(user(3, 99), now+Retention+1, now+Retention+1); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestSingleUserWholeCache: a realm of one user has the whole cache.
func TestSingleUserWholeCache(t *testing.T) {
	const now = 1_700_000_000
	c, _ := open(t, filepath.Join(t.TempDir(), "replay"), 16, now)
	c.SetUsers(1)
	for i := range byte(16) {
		if err := c.Add(id(i), now, now); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := c.Add(id(99), now, now); !errors.Is(err, ErrFull) {
		t.Fatal(err)
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
	dir := filepath.Join(t.TempDir(), "sub")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "replay")
	c, _, err := Open(path, 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.f = nil // the next Add must write a new log
	os.RemoveAll(dir)
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
	addIDs(t, c, 5, now)
	before, _ := os.Stat(path)
	if err := c.Add(id(9), now, now); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || after.Size() != before.Size() {
		t.Fatalf("Add rewrote the file or changed its size by %d bytes", after.Size()-before.Size())
	}
	// The record overwrote the zeros after the fifth, which still follow it.
	b, _ := os.ReadFile(path)
	end := headerSize + 6*recordSize
	r := crypto.ReplayID(b[end-recordSize:])
	if r != id(9) || !allZero(b[end:]) || int64(len(b)) != int64(headerSize+zeroChunk) {
		t.Fatalf("record %x at the log's end, %d bytes", r, len(b))
	}
	// Opening a clean log does not rewrite it either, and the log it
	// opened is written on in place, at its end.
	c.Close()
	c, _ = open(t, path, 100, now)
	if st, _ := os.Stat(path); !os.SameFile(st, after) {
		t.Fatal("Open rewrote a clean log")
	}
	if err := c.Add(id(10), now, now); err != nil {
		t.Fatal(err)
	}
	reopened, _ := os.Stat(path)
	if !os.SameFile(reopened, after) || reopened.Size() != after.Size() {
		t.Fatalf("Add on the reopened log rewrote it or changed its size by %d bytes", reopened.Size()-after.Size())
	}
	b, _ = os.ReadFile(path)
	if r := crypto.ReplayID(b[end:]); r != id(10) || !allZero(b[end+recordSize:]) {
		t.Fatalf("record %x at the reopened log's end", r)
	}
}

func TestTornTail(t *testing.T) {
	const now = 1_700_000_000
	// The log holds four records, which end at end; a crash tore the
	// last one. Files written before the zeros followed the records end
	// at end; the others go on with zeros.
	const end = headerSize + 4*recordSize
	for _, tc := range []struct {
		name string
		tear func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:end-recordSize/2] }},
		{"one byte", func(b []byte) []byte { return b[:end-recordSize+1] }},
		{"zeroed", func(b []byte) []byte { clear(b[end-recordSize : end]); return b }},
		{"garbled", func(b []byte) []byte { b[end-1] ^= 0x80; return b }},
		{"half written", func(b []byte) []byte { clear(b[end-recordSize/2 : end]); return b }},
		{"first byte written", func(b []byte) []byte { clear(b[end-recordSize+1 : end]); return b }},
		{"two bytes", func(b []byte) []byte { return b[:end-recordSize+2] }},
		{"two bytes written", func(b []byte) []byte { clear(b[end-recordSize+2 : end]); return b }},
		{"garbled, no zeros", func(b []byte) []byte { b[end-1] ^= 0x80; return b[:end] }},
		{"half written, no zeros", func(b []byte) []byte { clear(b[end-recordSize/2 : end]); return b[:end] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replay")
			c, _ := open(t, path, 10, now)
			addIDs(t, c, 4, now)
			c.Close()
			b, _ := os.ReadFile(path)
			if !allZero(b[end:]) || len(b) <= end {
				t.Fatalf("the log's zeros: %d bytes", len(b))
			}
			torn := tc.tear(b)
			// A torn record is not written over as it is: the log is
			// compacted. A record of zeros (what reached the disk of
			// it was zeros) is the log's end, clean.
			d := &Cache{cap: 10, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
			if clean, err := d.decode(torn, now); err != nil || clean != allZero(torn[end-recordSize:]) || d.records != 3 {
				t.Fatalf("decode: %v, clean %v, %d records", err, clean, d.records)
			}
			os.WriteFile(path, torn, 0o600)
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
				t.Fatalf("after writing on: lost %v, %d entries", lost, c.Len())
			}
			if _, err := os.Stat(path + ".corrupt"); err == nil {
				t.Fatal("a torn record was treated as damage")
			}
		})
	}
}

// TestZeroTail: the zeros after the log's records run out and are
// renewed, records never land past them, and a file that goes on after
// them with anything but zeros, or whose torn record is followed by data,
// is damage, not a torn record.
func TestZeroTail(t *testing.T) {
	const now = 1_700_000_000
	if crc32.Checksum(make([]byte, recordSize-4), castagnoli) == 0 {
		t.Fatal("a record of zeros would be valid")
	}
	path := filepath.Join(t.TempDir(), "replay")
	c, _ := open(t, path, 1<<20, now)
	// Three chunks' worth of records, one at a time: the file grows, by
	// a record and zeroChunk, only when the zeros run out.
	per := zeroChunk / recordSize
	grew := 0
	size := func() int64 { st, _ := os.Stat(path); return st.Size() }
	last := size()
	n := 3*per + 5
	for i := range n {
		if err := c.Add(crypto.ReplayID{0, 1, byte(i), byte(i >> 8), byte(i >> 16)}, now, now); err != nil {
			t.Fatal(err)
		}
		if s := size(); s != last {
			if s <= last || s > last+int64(zeroChunk+recordSize) {
				t.Fatalf("record %d: the file grew from %d to %d bytes", i, last, s)
			}
			grew++
			last = s
		}
	}
	if grew != 3 {
		t.Fatalf("the file grew %d times for %d records, want 3", grew, n)
	}
	c.Close()
	b, _ := os.ReadFile(path)
	end := headerSize + n*recordSize
	if !allZero(b[end:]) || allZero(b[end-recordSize:end]) {
		t.Fatal("the log does not end where its last record does")
	}
	c, lost := open(t, path, 1<<20, now)
	if lost || c.Len() != n {
		t.Fatalf("reopen: lost %v, %d entries, want %d", lost, c.Len(), n)
	}
	c.Close()

	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"data after the end", func(b []byte) []byte { b[end+5*recordSize+3] = 1; return b }},
		{"data in the last byte", func(b []byte) []byte { b[len(b)-1] = 1; return b }},
		{"data after the zeros", func(b []byte) []byte { return append(b, 1) }},
		{"a record after the zeros", func(b []byte) []byte { return append(b, b[end-recordSize:end]...) }},
		{"a record in the zeros", func(b []byte) []byte {
			copy(b[end+100*recordSize:], b[end-recordSize:end])
			return b
		}},
		{"torn record followed by data", func(b []byte) []byte {
			clear(b[end-recordSize/2 : end])
			b[end+recordSize] = 1
			return b
		}},
		{"torn record followed by a record", func(b []byte) []byte {
			copy(b[end:], b[end-recordSize:end])
			clear(b[end-recordSize/2 : end])
			return b
		}},
		{"a record of zeros inside the log", func(b []byte) []byte {
			clear(b[end-2*recordSize : end-recordSize])
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.edit(bytes.Clone(b))
			p := filepath.Join(t.TempDir(), "replay")
			os.WriteFile(p, d, 0o600)
			if c, lost := open(t, p, 1<<20, now); !lost || c.Len() != 0 {
				t.Fatalf("lost %v, %d entries: damage taken for a torn record", lost, c.Len())
			}
		})
	}
}

// TestOldLog: a log written before its records were followed by zeros
// (it ends at its last record) opens clean and is written on, without a
// compaction.
func TestOldLog(t *testing.T) {
	const now = 1_700_000_000
	path := filepath.Join(t.TempDir(), "replay")
	c, _ := open(t, path, 10, now)
	for i := range byte(3) {
		c.Add(id(i), now, now)
	}
	c.Close()
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:headerSize+3*recordSize], 0o600)
	before, _ := os.Stat(path)
	c, lost := open(t, path, 10, now)
	if lost || c.Len() != 3 {
		t.Fatalf("lost %v, %d entries", lost, c.Len())
	}
	if err := c.Add(id(3), now, now); err != nil {
		t.Fatal(err)
	}
	c.Close()
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || after.Size() != int64(headerSize+4*recordSize+zeroChunk) {
		t.Fatalf("old log rewritten, or %d bytes", after.Size())
	}
	if c, lost := open(t, path, 10, now); lost || c.Len() != 4 {
		t.Fatalf("reopen: lost %v, %d entries", lost, c.Len())
	}
}

// TestTailFilledExactly: records that fill a log's zeros to the byte are
// written in place; the next one grows the log by itself and zeroChunk
// zeros, and the records after it are written over those. Reopened, the
// log holds them all.
func TestTailFilledExactly(t *testing.T) {
	const now = 1_700_000_000
	const free = 3 // records the zeros have room for
	path := filepath.Join(t.TempDir(), "replay")
	c, _ := open(t, path, 100, now)
	addIDs(t, c, 2, now)
	c.Close()
	b, _ := os.ReadFile(path)
	end := headerSize + 2*recordSize
	if err := os.WriteFile(path, b[:end+free*recordSize], 0o600); err != nil {
		t.Fatal(err)
	}
	first, _ := os.Stat(path)
	c, lost := open(t, path, 100, now)
	if lost || c.Len() != 2 {
		t.Fatalf("lost %v, %d entries", lost, c.Len())
	}
	const n = 2 + free + 3
	for i := 2; i < n; i++ {
		if err := c.Add(id(byte(i)), now, now); err != nil {
			t.Fatal(err)
		}
		want := int64(end + free*recordSize)
		if i >= 2+free {
			want = int64(end + (free+1)*recordSize + zeroChunk)
		}
		if st, _ := os.Stat(path); st.Size() != want {
			t.Fatalf("after record %d: %d bytes, want %d", i, st.Size(), want)
		}
	}
	c.Close()
	b, _ = os.ReadFile(path)
	for i := range n {
		if r := crypto.ReplayID(b[headerSize+i*recordSize:]); r != id(byte(i)) {
			t.Fatalf("record %d is %x", i, r)
		}
	}
	if !allZero(b[headerSize+n*recordSize:]) {
		t.Fatal("data after the last record")
	}
	if st, _ := os.Stat(path); !os.SameFile(first, st) {
		t.Fatal("the log was rewritten")
	}
	c, lost = open(t, path, 100, now)
	if lost || c.Len() != n {
		t.Fatalf("reopen: lost %v, %d entries, want %d", lost, c.Len(), n)
	}
	for i := range byte(n) {
		if !c.Seen(id(i), now) {
			t.Fatalf("record %d lost", i)
		}
	}
}

// TestReopenAcrossChunks: a log written on over several chunks of zeros,
// and reopened along the way (in a chunk, with less than a record of
// zeros left, right after it grew), is neither rewritten nor grown but
// as Record grows it, and holds every record.
func TestReopenAcrossChunks(t *testing.T) {
	const now = 1_700_000_000
	path := filepath.Join(t.TempDir(), "replay")
	rid := func(i int) crypto.ReplayID { return crypto.ReplayID{0, 1, byte(i), byte(i >> 8), byte(i >> 16), 0xaa} }
	noSync := func(int) error { return nil } // what is read back is the page cache's
	per := zeroChunk / recordSize            // records a compaction's zeros have room for
	c, _ := open(t, path, 1<<20, now)
	c.SetSyncFunc(noSync)
	first, _ := os.Stat(path)
	// The file's size as Record grows it.
	end, size := int64(headerSize), int64(headerSize+zeroChunk)
	n := 0
	for _, stop := range []int{100, per, per + 1, 2*per + 1, 2*per + 7, 3*per + 50} {
		for ; n < stop; n++ {
			if _, err := c.Record(rid(n), now, now); err != nil {
				t.Fatal(err)
			}
			if end+int64(recordSize) > size {
				size = end + int64(recordSize) + zeroChunk
			}
			end += int64(recordSize)
		}
		if err := c.SyncAll(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		st, _ := os.Stat(path)
		if !os.SameFile(first, st) || st.Size() != size {
			t.Fatalf("after %d records: %d bytes, want %d, or rewritten", n, st.Size(), size)
		}
		var lost bool
		c, lost = open(t, path, 1<<20, now)
		if lost || c.Len() != n {
			t.Fatalf("reopened after %d records: lost %v, %d entries", n, lost, c.Len())
		}
		c.SetSyncFunc(noSync)
	}
	for i := range n {
		if !c.Seen(rid(i), now) {
			t.Fatalf("record %d lost", i)
		}
	}
	b, _ := os.ReadFile(path)
	if int64(len(b)) != size || !allZero(b[end:]) || crypto.ReplayID(b[end-int64(recordSize):]) != rid(n-1) {
		t.Fatal("the log does not end with its last record and zeros")
	}
}

// TestCrashBeforeSync: a crash loses what Record wrote and no Sync made
// durable, whole or in part, in the ways a disk may: records not written
// back, or one of them torn, the file's growth not committed, committed
// without its data, or with part of it. The synced records are there
// after each, and the log is written on.
func TestCrashBeforeSync(t *testing.T) {
	const now = 1_700_000_000
	const end = headerSize + 3*recordSize // where the synced records end
	// setup returns the disk as three synced records leave it, their
	// zeros cut to tail bytes (-1: as compaction left them), and the file
	// as the page cache has it after unsynced more Records.
	setup := func(t *testing.T, tail, unsynced int) (synced, written []byte) {
		path := filepath.Join(t.TempDir(), "replay")
		c, _ := open(t, path, 100, now)
		addIDs(t, c, 3, now)
		c.Close()
		synced, _ = os.ReadFile(path)
		if tail >= 0 {
			synced = synced[:end+tail]
			os.WriteFile(path, synced, 0o600)
		}
		c, _ = open(t, path, 100, now)
		c.SetSyncFunc(func(int) error { t.Error("synced"); return nil })
		for i := range byte(unsynced) {
			if _, err := c.Record(id(3+i), now, now); err != nil {
				t.Fatal(err)
			}
		}
		written, _ = os.ReadFile(path)
		return synced, written
	}
	for _, tc := range []struct {
		name           string
		tail, unsynced int
		crash          func(s, w []byte) []byte
		want           int // entries after the crash
	}{
		{"nothing written back", -1, 2, func(s, w []byte) []byte { return s }, 3},
		{"first written back", -1, 2, func(s, w []byte) []byte { copy(s[end:], w[end:end+recordSize]); return s }, 4},
		{"first torn", -1, 2, func(s, w []byte) []byte { copy(s[end:], w[end:end+recordSize/2]); return s }, 3},
		{"first torn at its end", -1, 2, func(s, w []byte) []byte { copy(s[end+recordSize/2:], w[end+recordSize/2:end+recordSize]); return s }, 3},
		{"second torn", -1, 2, func(s, w []byte) []byte { copy(s[end:], w[end:end+recordSize+5]); return s }, 4},
		{"both written back", -1, 2, func(s, w []byte) []byte { return w }, 5},
		// Less than a record of zeros left: the first Record grows the log.
		{"growth not committed", 10, 1, func(s, w []byte) []byte { return s }, 3},
		{"grown, nothing written back", 10, 1, func(s, w []byte) []byte { return append(s, make([]byte, len(w)-len(s))...) }, 3},
		{"grown by part of the record", 10, 1, func(s, w []byte) []byte { return w[:end+7] }, 3},
		{"grown by the record alone", 10, 1, func(s, w []byte) []byte { return w[:end+recordSize] }, 4},
		{"grown by part of the zeros", 10, 1, func(s, w []byte) []byte { return w[:end+recordSize+5001] }, 4},
		{"grown, the record torn", 10, 1, func(s, w []byte) []byte { clear(w[end+recordSize-5 : end+recordSize]); return w }, 3},
		{"grown, the next record torn", 10, 2, func(s, w []byte) []byte { clear(w[end+recordSize : end+recordSize+9]); return w }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, w := setup(t, tc.tail, tc.unsynced)
			path := filepath.Join(t.TempDir(), "replay")
			os.WriteFile(path, tc.crash(s, w), 0o600)
			c, lost := open(t, path, 100, now)
			if lost || c.Len() != tc.want {
				t.Fatalf("lost %v, %d entries, want %d", lost, c.Len(), tc.want)
			}
			for i := range byte(tc.want) {
				if !c.Seen(id(i), now) {
					t.Fatalf("record %d lost", i)
				}
			}
			if err := c.Add(id(9), now, now); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if c, lost := open(t, path, 100, now); lost || c.Len() != tc.want+1 || !c.Seen(id(9), now) {
				t.Fatalf("written on, reopened: lost %v, %d entries", lost, c.Len())
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
	b, _ := os.ReadFile(path)
	if n := (len(bytes.TrimRight(b[headerSize:], "\x00")) + recordSize - 1) / recordSize; n != live {
		t.Fatalf("log of %d records, want %d live records", n, live)
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
// stays within the capacity, counts every user's entries, ends where its
// records do (with zeros alone after them when it is clean, so that a
// record written there is read back), and survives a compaction, zero
// tail and all, unchanged.
func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "replay")
	c, _, _ := Open(path, 10, 1000)
	c.Add(id(1), 1000, 1000)
	c.Add(id(2), 1001, 1000)
	c.Add(crypto.ReplayID{0, 2, 3}, 990, 1000)
	c.Close()
	b, _ := os.ReadFile(path)
	e := headerSize + 3*recordSize // the log's end; zeros follow
	f.Add(b)
	f.Add(b[:e-5])                                                   // torn last record, no zeros
	f.Add(append(b[:e-recordSize:e-recordSize], b[e:]...))           // torn at its first byte
	f.Add(append(append(b[:e-9:e-9], make([]byte, 9)...), b[e:]...)) // half written, then zeros
	g := bytes.Clone(b)
	g[e+recordSize] = 7 // data after the end
	f.Add(g)
	mid := bytes.Clone(b[:e])
	mid[headerSize+recordSize+3] ^= 1 // damaged record in the middle
	f.Add(mid)
	f.Add(b[:headerSize+3*recordSize]) // written before the zeros
	f.Add(b[:e+10])                    // fewer zeros left than a record
	f.Add(b[:len(b)-5])                // zeros that end within a record
	f.Add(append(bytes.Clone(b), 1))   // data after the zeros
	torn := bytes.Clone(b)
	torn[e+100*recordSize+4] = 9 // a lone byte far into the zeros
	f.Add(torn)
	f.Add(b[:headerSize])
	f.Add([]byte(magic))
	f.Add([]byte("ckreplay\x00\x00\x00\x00\x00\x00\x00\x00")) // an older format
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Cache{cap: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
		clean, err := c.decode(data, 1000)
		if err != nil {
			return
		}
		n := 0
		for _, k := range c.users {
			n += k
		}
		if len(c.m) > 4 || n != len(c.m) || c.records > len(data)/recordSize {
			t.Fatalf("%d entries, %d counted, %d records", len(c.m), n, c.records)
		}
		if c.end != int64(headerSize+c.records*recordSize) || c.end > int64(len(data)) {
			t.Fatalf("the log ends at %d, with %d records, in %d bytes", c.end, c.records, len(data))
		}
		if clean && !allZero(data[c.end:]) {
			t.Fatal("a clean log with data after its end")
		}
		if clean {
			// Written on as Record does, at the log's end, over its
			// zeros or with zeroChunk more: read back, the log holds
			// one more record.
			w := bytes.Clone(data)
			r := append(make([]byte, 0, recordSize), 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8)
			r = binary.BigEndian.AppendUint32(r, 1000)
			r = binary.BigEndian.AppendUint32(r, crc32.Checksum(r, castagnoli))
			if c.end+int64(recordSize) > int64(len(w)) {
				w = append(append(w[:c.end], r...), make([]byte, zeroChunk)...)
			} else {
				copy(w[c.end:], r)
			}
			c3 := &Cache{cap: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
			if _, err := c3.decode(w, 1000); err != nil || c3.records != c.records+1 {
				t.Fatalf("written on: %v, %d records after %d", err, c3.records, c.records)
			}
		}
		// Compaction: the live entries and the horizon, then zeroChunk
		// zeros, which decode back to the same cache, clean.
		enc := c.encode(1000)
		if len(enc) != headerSize+len(c.m)*recordSize+zeroChunk || !allZero(enc[len(enc)-zeroChunk:]) {
			t.Fatalf("compacted to %d bytes for %d entries", len(enc), len(c.m))
		}
		c2 := &Cache{cap: 4, m: map[crypto.ReplayID]uint32{}, users: map[uint16]int{}}
		if clean, err := c2.decode(enc, 1000); err != nil || !clean || !maps.Equal(c.m, c2.m) || c.horizon != c2.horizon || c2.end != int64(len(enc)-zeroChunk) {
			t.Fatalf("compacted: %v %v %v %v, horizon %d %d, end %d", err, clean, c.m, c2.m, c.horizon, c2.horizon, c2.end)
		}
	})
}

// BenchmarkAdd measures one accepted knock's cost, with an empty cache
// and with one holding 65,536 live entries. It reports how much the file
// grew per Add: nothing while the log's zeros have room (b.N up to 3,640),
// so that no sync but one per zeroChunk commits a size change.
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
			before, _ := os.Stat(path)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := crypto.ReplayID{0, 1, byte(i), byte(i >> 8), byte(i >> 16)}
				if err := c.Add(r, 1000, 1000); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			after, _ := os.Stat(path)
			b.ReportMetric(float64(after.Size()-before.Size())/float64(b.N), "grown-B/op")
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

// TestClockStepForwardAndBack: one knock is never accepted twice, whether
// the clock steps forward while the receiver runs or while it is down,
// and then back.
func TestClockStepForwardAndBack(t *testing.T) {
	const now = 1_700_000_000
	const ahead = now + 3600 // a forward step of an hour
	t.Run("running", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "replay")
		c, _ := open(t, path, 10, now)
		if err := c.Add(id(1), now, now); err != nil {
			t.Fatal(err)
		}
		// Another knock while the clock is ahead expires id(1) ...
		c.Add(id(2), ahead, ahead)
		// ... and after the step back, id(1) is fresh again: it must
		// still be a replay, in this process and after a restart.
		if err := c.Add(id(1), now, now+1); !errors.Is(err, ErrReplay) {
			t.Fatalf("after the step back: %v, want replay", err)
		}
		c.Close()
		c2, _ := open(t, path, 10, now+2)
		if err := c2.Add(id(1), now, now+2); !errors.Is(err, ErrReplay) {
			t.Fatalf("after a restart: %v, want replay", err)
		}
	})
	t.Run("restart ahead", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "replay")
		c, _ := open(t, path, 10, now)
		if err := c.Add(id(1), now, now); err != nil {
			t.Fatal(err)
		}
		c.Close()
		// Restarted while the clock is ahead: the log is compacted
		// without id(1).
		c2, _ := open(t, path, 10, ahead)
		c2.Close()
		c3, _ := open(t, path, 10, now+1)
		if err := c3.Add(id(1), now, now+1); !errors.Is(err, ErrReplay) {
			t.Fatalf("after the step back: %v, want replay", err)
		}
		if h := c3.Horizon(); h < now {
			t.Fatalf("horizon %d went back below %d", h, now)
		}
	})
}

// TestMissingFileRestartRule: without a cache file the receiver cannot
// know what it accepted before, so it refuses every knock sealed before
// it started (SPEC.md §7.2), and writes the file at once, so that the
// next start knows.
func TestMissingFileRestartRule(t *testing.T) {
	const now = 1_700_000_000
	path := filepath.Join(t.TempDir(), "replay")
	c, lost, fresh, err := OpenState(path, 10, now)
	if err != nil || lost || !fresh {
		t.Fatal(err, lost, fresh)
	}
	t.Cleanup(func() { c.Close() })
	for _, ts := range []uint32{now - 1, now - 60, now - Retention} {
		if err := c.Add(id(byte(ts)), ts, now); !errors.Is(err, ErrReplay) {
			t.Errorf("knock sealed at start%+d: %v, want replay", int64(ts)-now, err)
		}
	}
	if err := c.Add(id(1), now, now); err != nil {
		t.Errorf("knock sealed at start: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, _, fresh, err := OpenState(path, 10, now+5)
	if err != nil || fresh {
		t.Fatal(err, fresh)
	}
	t.Cleanup(func() { c2.Close() })
	if err := c2.Add(id(2), now+3, now+5); err != nil {
		t.Errorf("with the file kept, an earlier knock: %v", err)
	}
}

// TestRecordThenSync: Record writes without syncing; Sync syncs once for
// every record before it, not again for records already synced, and a
// failed sync makes the next Record write the log afresh.
func TestRecordThenSync(t *testing.T) {
	const now = 1_700_000_000
	c, _ := open(t, filepath.Join(t.TempDir(), "replay"), 100, now)
	syncs := 0
	fail := false
	c.syncFd = func(fd int) error {
		syncs++
		if fail {
			return errors.New("injected I/O error")
		}
		return nil
	}
	var seqs []uint64
	for i := range byte(3) {
		seq, err := c.Record(id(i), now, now)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if syncs != 0 {
		t.Fatalf("Record synced %d times", syncs)
	}
	if err := c.Sync(seqs[0]); err != nil || syncs != 1 {
		t.Fatalf("Sync: %v, %d syncs", err, syncs)
	}
	if err := c.Sync(seqs[2]); err != nil || syncs != 1 {
		t.Fatalf("a second Sync of records already synced: %v, %d syncs", err, syncs)
	}
	fail = true
	seq, _ := c.Record(id(10), now, now)
	if err := c.Sync(seq); err == nil {
		t.Fatal("a failed sync was not reported")
	}
	if err := c.Sync(seq); err == nil {
		t.Fatal("after a failed sync, a second Sync of the same record succeeded")
	}
	fail = false
	seq2, err := c.Record(id(11), now, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(seq2); err != nil {
		t.Fatalf("after the log was written afresh: %v", err)
	}
	// The rewritten log holds the knock whose sync failed.
	c.Close()
	c2, _ := open(t, c.path, 100, now)
	if !c2.Seen(id(10), now) || !c2.Seen(id(11), now) {
		t.Fatal("records lost")
	}
}

// addIDs adds the knocks id(0) to id(n-1), all at now.
func addIDs(t *testing.T, c *Cache, n byte, now int64) {
	t.Helper()
	for i := range n {
		if err := c.Add(id(i), uint32(now), now); err != nil {
			t.Fatal(err)
		}
	}
}
