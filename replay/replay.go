// Package replay is the receiver's replay cache (SPEC.md §7.2): the replay
// IDs of accepted knocks, kept until no clock could call the knock fresh
// again, and persisted on disk so that neither a restart nor a crash lets a
// recorded knock in twice.
//
// Every change is written to a new file that is synced and then renamed over
// the old one, and the directory is synced, all before Add returns: a knock
// whose grant was issued is on disk, whatever happens next. The cache holds
// at most a fixed number of entries; when it is full it refuses new knocks
// (fails closed) rather than forgetting old ones.
package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cipherknock/cipherknock/crypto"
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

// File layout: magic, entry count (u32be), entries of replay ID and knock
// time (u32be), CRC-32C of everything before it.
const (
	magic     = "ckreplay"
	entrySize = len(crypto.ReplayID{}) + 4 // 14 bytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cache is a replay cache backed by a file. Its methods may be called from
// several goroutines.
type Cache struct {
	mu      sync.Mutex
	path    string
	cap     int
	m       map[crypto.ReplayID]uint32 // replay ID -> knock time
	users   map[uint16]int             // entries per user index
	perUser int                        // most entries one user may hold
	horizon int64                      // knocks with time <= horizon count as replays
	buf     []byte
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
	c = &Cache{path: path, cap: capacity, perUser: capacity, m: make(map[crypto.ReplayID]uint32), users: make(map[uint16]int)}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("replay cache: %w", err)
	}
	if err := c.decode(data, now); err != nil {
		clear(c.m)
		clear(c.users)
		c.horizon = now + Retention
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			return nil, false, fmt.Errorf("replay cache %s: %v, and cannot move it aside: %w", path, err, rerr)
		}
		return c, true, nil
	}
	return c, false, nil
}

func (c *Cache) decode(data []byte, now int64) error {
	if len(data) < len(magic)+8 || string(data[:len(magic)]) != magic {
		return errors.New("not a replay cache file")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return errors.New("checksum mismatch")
	}
	n := int(binary.BigEndian.Uint32(body[len(magic):]))
	ents := body[len(magic)+4:]
	if len(ents) != n*entrySize {
		return errors.New("length mismatch")
	}
	for i := 0; i < n; i++ {
		e := ents[i*entrySize:]
		t := binary.BigEndian.Uint32(e[len(crypto.ReplayID{}):])
		if int64(t)+Retention < now {
			continue
		}
		if len(c.m) >= c.cap {
			// A smaller capacity than the file was written with: keep
			// the newest knocks' place by refusing older times.
			c.horizon = max(c.horizon, int64(t))
			continue
		}
		id := crypto.ReplayID(e[:len(crypto.ReplayID{})])
		if _, dup := c.m[id]; !dup {
			c.users[userOf(&id)]++
		}
		c.m[id] = t
	}
	return nil
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

// Add records an accepted knock and writes the cache to disk. It returns
// ErrReplay if the knock is already known, ErrFull if the cache holds cap
// live entries, or the error of writing the file. On any error the knock
// must not be granted; after a write error it stays recorded in memory, so
// it is refused again even if the disk recovers.
func (c *Cache) Add(id crypto.ReplayID, knockTime uint32, now int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen(id, knockTime) {
		return ErrReplay
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
	return c.save(now)
}

func (c *Cache) expire(now int64) {
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

// save writes the live entries to a temporary file, syncs it, renames it
// over the cache file and syncs the directory.
func (c *Cache) save(now int64) error {
	c.expire(now)
	b := append(c.buf[:0], magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.m)))
	for id, t := range c.m {
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, t)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	c.buf = b
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
	return nil
}
