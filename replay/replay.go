// Package replay is the receiver's replay cache (SPEC.md §7.2): the replay
// IDs of accepted knocks, kept until no clock could call the knock fresh
// again, and persisted on disk so that neither a restart nor a crash lets a
// recorded knock in twice.
//
// The file is a log. Add appends one record (the replay ID, the knock's
// time and a checksum) with a single write and syncs the file's data before
// it returns: a knock whose grant was issued is on disk, whatever happens
// next. When the log holds more than about twice the live entries, the live
// entries are written to a new file that is synced and renamed over the log
// (compaction). A crash in the middle of an append leaves a torn last record,
// which Open drops: its Add never returned, so its knock was never granted.
// Any other damage is treated as the loss of the whole cache.
//
// The cache holds at most a fixed number of entries; when it is full it
// refuses new knocks (fails closed) rather than forgetting old ones.
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
// time (u32be) and the CRC-32C of both.
const (
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
	perUser   int                        // most entries one user may hold
	horizon   int64                      // knocks with time <= horizon count as replays
	expiredAt int64                      // when expired entries were last dropped
	f         *os.File                   // the log, open for appending; nil: compact on the next Add
	records   int                        // records in the log
	rec       [recordSize]byte
}

func userOf(id *crypto.ReplayID) uint16 { return uint16(id[0])<<8 | uint16(id[1]) }

// SetUserLimit bounds the entries one user may hold, so that a single
// user knocking in a loop cannot fill the cache and lock everyone else
// out; 0 or more than the capacity means the capacity.
func (c *Cache) SetUserLimit(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n <= 0 || n > c.cap {
		n = c.cap
	}
	c.perUser = n
}

// Open loads the cache stored at path, dropping expired entries, or starts
// an empty one if the file does not exist. A file that is damaged cannot say
// which knocks were accepted, so Open moves it aside to path+".corrupt" and
// refuses every knock that could have been in it (those with a time up to
// now+Retention); it reports that through lost.
func Open(path string, capacity int, now int64) (c *Cache, lost bool, err error) {
	if capacity <= 0 {
		return nil, false, errors.New("replay: capacity must be positive")
	}
	c = &Cache{path: path, cap: capacity, perUser: capacity, m: make(map[crypto.ReplayID]uint32), users: make(map[uint16]int), expiredAt: now}
	data, err := readNoFollow(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("replay cache: %w", err)
	}
	clean, err := c.decode(data, now)
	if err != nil {
		clear(c.m)
		clear(c.users)
		c.horizon = now + Retention
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			return nil, false, fmt.Errorf("replay cache %s: %v, and cannot move it aside: %w", path, err, rerr)
		}
		// Record the horizon, so that a restart does not forget it. If
		// that fails, the first Add tries again.
		c.compact(now)
		return c, true, nil
	}
	if !clean || c.records > 2*len(c.m)+minCompact {
		c.compact(now)
	} else if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0); err == nil {
		c.f = f
	}
	return c, false, nil
}

// decode loads a cache file into c. It reports whether the file can be
// appended to as it is: not when it ends in a torn record, or when the
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
	clean = len(recs)%recordSize == 0
	for i := 0; i < n; i++ {
		r := recs[i*recordSize : (i+1)*recordSize]
		if crc32.Checksum(r[:recordSize-4], castagnoli) != binary.BigEndian.Uint32(r[recordSize-4:]) {
			if i == n-1 && clean {
				// The last record, torn by a crash before its
				// Add returned.
				n, clean = i, false
				break
			}
			return false, fmt.Errorf("record %d: checksum mismatch", i)
		}
	}
	c.records = n
	for i := 0; i < n; i++ {
		r := recs[i*recordSize:]
		t := binary.BigEndian.Uint32(r[len(crypto.ReplayID{}):])
		if int64(t)+Retention < now {
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
			c.users[userOf(&id)]++
		}
		c.m[id] = t
	}
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

// Add records an accepted knock and writes it to disk. It returns ErrReplay
// if the knock is already known, ErrFull if the cache holds cap live
// entries, or the error of writing the file. On any error the knock must
// not be granted; after a write error it stays recorded in memory, so it is
// refused again even if the disk recovers.
func (c *Cache) Add(id crypto.ReplayID, knockTime uint32, now int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen(id, knockTime) {
		return ErrReplay
	}
	if now > c.expiredAt {
		// At most once a second, so that a busy cache does not scan
		// all its entries on every knock.
		c.expire(now)
	}
	u := userOf(&id)
	if len(c.m) >= c.cap || c.users[u] >= c.perUser {
		c.expire(now)
		if len(c.m) >= c.cap || c.users[u] >= c.perUser {
			return ErrFull
		}
	}
	c.m[id] = knockTime
	c.users[u]++
	if c.f == nil {
		return c.compact(now)
	}
	if err := c.append(id, knockTime); err != nil {
		// The log may now end in part of a record: write a new one
		// on the next Add.
		c.f.Close()
		c.f = nil
		return err
	}
	if c.records > 2*len(c.m)+minCompact {
		// The knock is on disk already; if compaction fails, it is
		// tried again on the next Add.
		c.compact(now)
	}
	return nil
}

// append writes one record to the log with a single write and syncs it.
func (c *Cache) append(id crypto.ReplayID, knockTime uint32) error {
	r := c.rec[:0]
	r = append(r, id[:]...)
	r = binary.BigEndian.AppendUint32(r, knockTime)
	r = binary.BigEndian.AppendUint32(r, crc32.Checksum(r, castagnoli))
	if _, err := c.f.Write(r); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.records++
	if err := unix.Fdatasync(int(c.f.Fd())); err != nil {
		return fmt.Errorf("replay cache: sync %s: %w", c.path, err)
	}
	return nil
}

func (c *Cache) expire(now int64) {
	c.expiredAt = now
	for id, t := range c.m {
		if int64(t)+Retention < now {
			delete(c.m, id)
			if u := userOf(&id); c.users[u] <= 1 {
				delete(c.users, u)
			} else {
				c.users[u]--
			}
		}
	}
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
	b := make([]byte, 0, headerSize+len(c.m)*recordSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(min(max(c.horizon, 0), math.MaxUint32)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	for id, t := range c.m {
		n := len(b)
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, t)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[n:], castagnoli))
	}
	return b
}

// compact writes the live entries to a temporary file, syncs it, renames
// it over the log, syncs the directory and opens the new log for appending.
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
	f, err = os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.f, c.records = f, len(c.m)
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
