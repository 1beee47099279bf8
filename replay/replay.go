// Package replay is the receiver's replay cache (SPEC.md §7.2): the replay
// IDs of accepted knocks, kept until no clock could call the knock fresh
// again, and persisted on disk so that neither a restart nor a crash lets a
// recorded knock in twice.
//
// The file is a log. Record writes one record (the replay ID, the knock's
// time and a checksum) with a single write and returns its sequence
// number; Sync makes every record up to a sequence number durable
// (fdatasync), so the receiver records on its packet path and syncs on the
// goroutine that grants, before the grant: a knock whose grant was issued
// is on disk, whatever happens next. Add is Record and Sync together. When
// the log holds more than about twice the live entries, the live entries
// are written to a new file that is synced and renamed over the log
// (compaction).
//
// The log's records are followed by zeros (its tail), written and synced
// with the log's header (compaction) or with the record before them, and
// each record is written over the zeros at the log's end: the file keeps
// its size and its blocks, so the sync every grant waits for flushes that
// data alone, with no change of the file's size to commit through the
// file system's journal, and is as short as the disk allows. A record that
// finds fewer zeros left than it needs is written with zeroChunk more, so
// the file grows once per chunk, and that record's sync pays for it. The
// log ends at its first record of zeros (no record is all zeros: its
// checksum would not match); past it the file holds nothing but zeros.
//
// A crash in the middle of a write leaves a torn last record: one whose
// checksum does not match, or that the file's end cuts short, with nothing
// but zeros after it. Open drops it: its Add never returned, so its knock
// was never granted. Any other damage (a bad record with data after it,
// data after the log's end) is treated as the loss of the whole cache.
//
// The cache holds at most a fixed number of entries; when it is full it
// refuses new knocks (fails closed) rather than forgetting old ones. Each
// of the n users of SetUsers has capacity/(2n) entries reserved for it, so
// that no user, nor any group of users, can fill the cache and lock
// another out; the other half is shared, first come first served.
//
// The horizon (knocks with a time up to it count as replays) never goes
// back: it rises to now-Retention-1 whenever entries expire, and is
// written with every compaction, so a clock stepped forward (or a restart
// while it was ahead) and then back cannot make a forgotten knock fresh
// again. A cache file that does not exist is a receiver that has lost its
// cache: Open then refuses every knock sealed before it started (SPEC.md
// §7.2).
package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/cipherknock/cipherknock/crypto"
	"golang.org/x/sys/unix"
)

// Retention is how long an entry is kept after its knock's time: the widest
// window a receiver may configure (SPEC.md §7.1), so that raising the window
// on reload or restart never revives a knock the cache has forgotten.
const Retention = crypto.MaxWindow // seconds

// Errors returned by Add.
var (
	ErrReplay = errors.New("replay")
	ErrFull   = errors.New("replay cache full")
)

// File layout: a header of magic, horizon (u32be: knocks with a time up to
// it are refused) and the CRC-32C of both; then records of replay ID, knock
// time (u32be) and the CRC-32C of both; then zeros, of any length (a log
// written before the tail has none).
//
// zeroChunk is how many zeros a log is given at a time, by compaction and
// by a record that finds too few left. It trades the one sync per chunk
// that also flushes the zeros and commits the file's growth, slower the
// more zeros it writes, against how often that sync comes: 64 KiB is 16
// pages to flush once every 3,641 records, and no log holds more than that
// beyond its records.
const (
	zeroChunk  = 64 << 10
	magic      = "ckreplog"
	headerSize = len(magic) + 4 + 4             // 16 bytes
	recordSize = len(crypto.ReplayID{}) + 4 + 4 // 18 bytes
	minCompact = 256                            // records a log may hold beyond twice the live entries
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cache is a replay cache backed by a file. Its methods may be called from
// several goroutines.
type Cache struct {
	mu        sync.Mutex
	path      string
	cap       int
	m         map[crypto.ReplayID]uint32 // replay ID -> knock time
	users     map[uint16]int             // entries per user index
	reserve   int                        // entries reserved for each user
	shared    int                        // entries held beyond the users' reserves
	horizon   int64                      // knocks with time <= horizon count as replays
	expiredAt int64                      // when expired entries were last dropped
	f         *os.File                   // the log, open for writing; nil: compact on the next Record
	records   int                        // records in the log
	end, size int64                      // where the log's records end, and the file's size
	written   uint64                     // records written since Open (sequence numbers)
	synced    uint64                     // records known to be on disk
	rec       [recordSize]byte
	grow      []byte // a record and zeroChunk zeros, when the zeros run out

	// syncFd is fdatasync; tests replace it to see when syncs happen.
	syncFd func(fd int) error
}

func userOf(id *crypto.ReplayID) uint16 { return uint16(id[0])<<8 | uint16(id[1]) }

// SetUsers reserves capacity/(2n) entries for each of n users (none when
// n <= 1): whatever the others do, a user can always have that many
// knocks accepted within the retention time. The rest of the cache is
// shared.
func (c *Cache) SetUsers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := 0
	if n > 1 {
		r = c.cap / (2 * n)
	}
	c.reserve = r
	c.shared = 0
	for _, k := range c.users {
		c.shared += max(k-r, 0)
	}
}

// Reserve returns the entries reserved for each user.
func (c *Cache) Reserve() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reserve
}

// room reports whether user u may have one more entry: from its reserve,
// or from the shared part while that is not full.
func (c *Cache) room(u uint16) bool {
	if len(c.m) >= c.cap {
		return false
	}
	return c.users[u] < c.reserve || c.shared < c.cap-c.reserveTotal()
}

// reserveTotal bounds the entries reserved for users, used or not: n
// reserves of cap/(2n) are at most half the cache.
func (c *Cache) reserveTotal() int {
	if c.reserve == 0 {
		return 0
	}
	return c.cap / 2
}

func (c *Cache) count(u uint16, delta int) {
	before := c.users[u]
	after := before + delta
	if after <= 0 {
		delete(c.users, u)
	} else {
		c.users[u] = after
	}
	c.shared += max(after-c.reserve, 0) - max(before-c.reserve, 0)
}

// Open loads the cache stored at path, dropping expired entries. A file
// that does not exist means that the receiver has no record of the knocks
// it accepted before (a first start, or a lost state directory): Open then
// starts an empty cache that refuses every knock sealed before now, the
// restart rule of SPEC.md §7.2, writes it at once, and reports that
// through fresh. A file that is damaged cannot say which knocks were
// accepted either, so Open moves it aside to path+".corrupt" and refuses
// every knock that could have been in it (those with a time up to
// now+Retention); it reports that through lost.
func Open(path string, capacity int, now int64) (c *Cache, lost bool, err error) {
	c, lost, _, err = OpenState(path, capacity, now)
	return c, lost, err
}

// OpenState is Open that also reports whether the file did not exist.
func OpenState(path string, capacity int, now int64) (c *Cache, lost, fresh bool, err error) {
	if capacity <= 0 {
		return nil, false, false, errors.New("replay: capacity must be positive")
	}
	c = &Cache{path: path, cap: capacity, m: make(map[crypto.ReplayID]uint32), users: make(map[uint16]int), expiredAt: now, syncFd: unix.Fdatasync}
	data, err := readNoFollow(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.horizon = now - 1
		if err := c.compact(now); err != nil {
			return nil, false, false, err
		}
		return c, false, true, nil
	case err != nil:
		return nil, false, false, fmt.Errorf("replay cache: %w", err)
	}
	clean, err := c.decode(data, now)
	if err != nil {
		clear(c.m)
		clear(c.users)
		c.shared = 0
		c.horizon = now + Retention
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			return nil, false, false, fmt.Errorf("replay cache %s: %v, and cannot move it aside: %w", path, err, rerr)
		}
		// Record the horizon, so that a restart does not forget it. If
		// that fails, the first Record tries again.
		c.compact(now)
		return c, true, false, nil
	}
	if !clean || c.records > 2*len(c.m)+minCompact {
		c.compact(now)
	} else if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0); err == nil {
		c.f, c.size = f, int64(len(data))
	}
	return c, false, false, nil
}

// decode loads a cache file into c. It reports whether the log can be
// written on as it is: not when it ends in a torn record, or when the
// horizon was raised to make room.
func (c *Cache) decode(data []byte, now int64) (clean bool, err error) {
	if len(data) < headerSize || string(data[:len(magic)]) != magic {
		return false, errors.New("not a replay cache file")
	}
	if crc32.Checksum(data[:headerSize-4], castagnoli) != binary.BigEndian.Uint32(data[headerSize-4:]) {
		return false, errors.New("header checksum mismatch")
	}
	c.horizon = int64(binary.BigEndian.Uint32(data[len(magic):]))
	horizon := c.horizon
	recs := data[headerSize:]
	n := len(recs) / recordSize
	clean = allZero(recs[n*recordSize:]) // a partial record, torn, or zeros
	for i := 0; i < n; i++ {
		r, rest := recs[i*recordSize:(i+1)*recordSize], recs[(i+1)*recordSize:]
		if allZero(r) {
			// The log's end: zeros alone may follow.
			if !allZero(rest) {
				return false, fmt.Errorf("record %d: data after the log's end", i)
			}
			n, clean = i, true
			break
		}
		if crc32.Checksum(r[:recordSize-4], castagnoli) != binary.BigEndian.Uint32(r[recordSize-4:]) {
			if allZero(rest) {
				// The last record, torn by a crash before its
				// Add returned.
				n, clean = i, false
				break
			}
			return false, fmt.Errorf("record %d: checksum mismatch", i)
		}
	}
	c.end = int64(headerSize + n*recordSize)
	c.records = n
	for i := 0; i < n; i++ {
		r := recs[i*recordSize:]
		t := binary.BigEndian.Uint32(r[len(crypto.ReplayID{}):])
		if int64(t)+Retention < now {
			// Expired; the horizon below covers it.
			continue
		}
		if len(c.m) >= c.cap {
			// A smaller capacity than the file was written with: keep
			// the newest knocks' place by refusing older times.
			c.horizon = max(c.horizon, int64(t))
			continue
		}
		id := crypto.ReplayID(r[:len(crypto.ReplayID{})])
		if _, dup := c.m[id]; !dup {
			c.count(userOf(&id), 1)
		}
		c.m[id] = t
	}
	c.raiseHorizon(now)
	return clean && c.horizon == horizon, nil
}

// Seen reports whether a knock with this ID and time was accepted before.
func (c *Cache) Seen(id crypto.ReplayID, knockTime uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen(id, knockTime)
}

func (c *Cache) seen(id crypto.ReplayID, knockTime uint32) bool {
	if int64(knockTime) <= c.horizon {
		return true
	}
	_, ok := c.m[id]
	return ok
}

// Add is Record followed by Sync: the knock is on disk when it returns nil.
func (c *Cache) Add(id crypto.ReplayID, knockTime uint32, now int64) error {
	seq, err := c.Record(id, knockTime, now)
	if err != nil {
		return err
	}
	return c.Sync(seq)
}

// Record records an authenticated fresh knock and writes it to the log
// without waiting for the disk; the knock must not be acted on (granted)
// before Sync(seq) has returned nil. It returns ErrReplay if the knock is
// already known, ErrFull if neither the user's reserve nor the shared part
// of the cache has room, or the error of writing the file. After a write
// error the knock stays recorded in memory, so it is refused again even if
// the disk recovers.
func (c *Cache) Record(id crypto.ReplayID, knockTime uint32, now int64) (seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen(id, knockTime) {
		return 0, ErrReplay
	}
	if now > c.expiredAt {
		// At most once a second, so that a busy cache does not scan
		// all its entries on every knock.
		c.expire(now)
	}
	u := userOf(&id)
	if !c.room(u) {
		c.expire(now)
		if !c.room(u) {
			return 0, ErrFull
		}
	}
	c.m[id] = knockTime
	c.count(u, 1)
	c.written++
	seq = c.written
	if c.f == nil {
		return seq, c.compact(now)
	}
	if err := c.append(id, knockTime); err != nil {
		// The log may now end in part of a record: write a new one
		// on the next Record.
		c.f.Close()
		c.f = nil
		return seq, err
	}
	if c.records > 2*len(c.m)+minCompact {
		// The knock is in the log already; if compaction fails, it is
		// tried again on the next Record.
		c.compact(now)
	}
	return seq, nil
}

// Sync returns once every record up to seq is on disk. It syncs the log's
// data (fdatasync) without holding the cache's lock, so Seen and Record go
// on meanwhile; one sync covers every record written before it started.
// After an error the records it covered may be lost: the log is written
// afresh (and synced) on the next Record, and the caller must not act on
// the knocks concerned.
func (c *Cache) Sync(seq uint64) error {
	c.mu.Lock()
	if seq <= c.synced {
		c.mu.Unlock()
		return nil
	}
	if c.f == nil {
		c.mu.Unlock()
		return fmt.Errorf("replay cache: %s not written", c.path)
	}
	f, upto := c.f, c.written
	// A duplicate of the descriptor, so that a compaction may close the
	// log while this sync runs.
	fd, err := unix.Dup(int(f.Fd()))
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("replay cache: sync %s: %w", c.path, err)
	}
	c.mu.Lock()
	syncFd := c.syncFd
	c.mu.Unlock()
	err = syncFd(fd)
	unix.Close(fd)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// Linux may forget a failed write-back after reporting it once:
		// never trust this log again.
		if c.f == f {
			c.f.Close()
			c.f = nil
		}
		return fmt.Errorf("replay cache: sync %s: %w", c.path, err)
	}
	c.synced = max(c.synced, upto)
	return nil
}

// SetSyncFunc replaces fdatasync(2), which Sync calls with a duplicate of
// the log's descriptor; tests use it to see when the disk is synced and to
// make it fail.
func (c *Cache) SetSyncFunc(f func(fd int) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncFd = f
}

// SyncAll is Sync of every record written so far; it does nothing when
// they are all on disk already.
func (c *Cache) SyncAll() error {
	c.mu.Lock()
	seq := c.written
	c.mu.Unlock()
	return c.Sync(seq)
}

// append writes one record at the log's end with a single write: over
// the zeros there, or, when they have run out, with zeroChunk more.
func (c *Cache) append(id crypto.ReplayID, knockTime uint32) error {
	r := c.rec[:0]
	r = append(r, id[:]...)
	r = binary.BigEndian.AppendUint32(r, knockTime)
	r = binary.BigEndian.AppendUint32(r, crc32.Checksum(r, castagnoli))
	if c.end+int64(recordSize) > c.size {
		if c.grow == nil {
			c.grow = make([]byte, recordSize+zeroChunk)
		}
		copy(c.grow, r)
		r = c.grow
	}
	if _, err := c.f.WriteAt(r, c.end); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.end += int64(recordSize)
	c.size = max(c.size, c.end+int64(len(r)-recordSize))
	c.records++
	return nil
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// raiseHorizon makes every knock that expiry may forget at now a replay
// for good: the horizon never goes back, whatever the clock does later.
func (c *Cache) raiseHorizon(now int64) {
	c.horizon = max(c.horizon, now-Retention-1)
}

func (c *Cache) expire(now int64) {
	c.expiredAt = now
	c.raiseHorizon(now)
	for id, t := range c.m {
		if int64(t)+Retention < now {
			delete(c.m, id)
			c.count(userOf(&id), -1)
		}
	}
}

// Horizon returns the horizon: knocks with a time up to it are refused.
func (c *Cache) Horizon() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.horizon
}

// Len returns the number of entries held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Cap returns the capacity.
func (c *Cache) Cap() int { return c.cap }

// Close closes the log. The cache must not be used afterwards.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}

// encode returns the file holding the live entries as of now. The buffer
// is not kept: compaction is rare, and a full cache's file is large.
func (c *Cache) encode(now int64) []byte {
	c.expire(now)
	b := make([]byte, 0, headerSize+len(c.m)*recordSize+zeroChunk)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(min(max(c.horizon, 0), math.MaxUint32)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	for id, t := range c.m {
		n := len(b)
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, t)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[n:], castagnoli))
	}
	return append(b, make([]byte, zeroChunk)...)
}

// compact writes the live entries to a temporary file, syncs it, renames
// it over the log, syncs the directory and opens the new log for writing.
// On error c.f is nil, so the next Add compacts again.
func (c *Cache) compact(now int64) error {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	b := c.encode(now)
	dir := filepath.Dir(c.path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replay cache: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fmt.Errorf("replay cache: sync %s: %w", dir, err)
	}
	f, err = os.OpenFile(c.path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.f, c.records = f, len(c.m)
	c.end, c.size = int64(len(b)-zeroChunk), int64(len(b))
	// The new log was synced before its rename: everything is on disk.
	c.synced = c.written
	return nil
}

// readNoFollow reads a state file, refusing a symbolic link in its place
// (O_NOFOLLOW): nobody can point the daemon at another file through it.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
