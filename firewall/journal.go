package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// The journal keeps the command backend's open grants on disk, because a
// command's rule cannot expire by itself: after a crash or a restart the
// next instance reads it, closes what has expired and schedules the rest.
//
// It is a text file of records, one a line, appended; an open record is
// fsync'd before its command runs (so a crash can at worst leave a record
// of a door that was never opened, never an open door without a record):
//
//	cipherknock journal 1
//	open 1732361234567 198.18.0.2 tcp 22 alice   # expiry in Unix ms, user ("-" if none)
//	close 198.18.0.2 tcp 22
//
// A last line without its newline is a torn write and is ignored. When
// records of closed grants pile up the file is rewritten atomically (new
// file, fsync, rename, fsync of the directory).
const journalHeader = "cipherknock journal 1"

type grantKey struct {
	addr  netip.Addr
	proto ports.Proto
	port  uint16
}

func keyOf(g Grant) grantKey { return grantKey{g.Addr.Unmap(), g.Proto, g.Port} }

type journalEntry struct {
	Grant  Grant // Timeout unused
	Expiry time.Time
}

type journal struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	open    map[grantKey]journalEntry
	records int
	// Group commit: an fsync covers every record written before it
	// started, so writers that arrive while one runs share the next.
	// The file is written to meanwhile but not swapped (compact waits).
	written, synced uint64
	syncing         bool
	cond            sync.Cond // on mu: a sync finished
}

// openJournal reads the journal at path and opens it for appending; an
// absent or empty one is created. It does not wait for the disk when the
// file exists, so a restart can close overdue grants at once; tidy
// compacts it afterwards.
func openJournal(path string) (*journal, error) {
	j := &journal{path: path, open: make(map[grantKey]journalEntry)}
	j.cond.L = &j.mu
	data, err := readNoFollow(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if len(data) == 0 {
		if err := j.compact(); err != nil {
			return nil, err
		}
		return j, nil
	}
	if j.open, err = parseJournal(data, path); err != nil {
		return nil, err
	}
	// Cut a torn last record, or the next one would be glued to it.
	valid := bytes.LastIndexByte(data, '\n') + 1
	if valid != len(data) {
		if err := os.Truncate(path, int64(valid)); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	j.records = bytes.Count(data[:valid], []byte("\n")) - 1
	if j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

// tidy rewrites the journal with the open grants only.
func (j *journal) tidy() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.compact()
}

// parseJournal returns the grants data leaves open. Errors name the file
// and line.
func parseJournal(data []byte, name string) (map[grantKey]journalEntry, error) {
	open := make(map[grantKey]journalEntry)
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1] // torn last record
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<16)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			if line != journalHeader {
				return nil, fmt.Errorf("%s:1: not a cipherknock journal (want %q)", name, journalHeader)
			}
			continue
		}
		f := strings.Split(line, " ")
		bad := func(msg string) error { return fmt.Errorf("%s:%d: %s", name, n, msg) }
		switch {
		case len(f) == 6 && f[0] == "open":
			ms, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || ms < 0 {
				return nil, bad("bad expiry")
			}
			g, err := parseJournalGrant(f[2:5])
			if err != nil {
				return nil, bad(err.Error())
			}
			if f[5] != "-" {
				if !ValidUser(f[5]) {
					return nil, bad("bad user name")
				}
				g.User = f[5]
			}
			open[keyOf(g)] = journalEntry{g, time.UnixMilli(ms)}
		case len(f) == 4 && f[0] == "close":
			g, err := parseJournalGrant(f[1:4])
			if err != nil {
				return nil, bad(err.Error())
			}
			delete(open, keyOf(g))
		default:
			return nil, bad("unknown record")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return open, nil
}

func parseJournalGrant(f []string) (Grant, error) {
	a, err := netip.ParseAddr(f[0])
	if err != nil || a.Zone() != "" {
		return Grant{}, errors.New("bad address")
	}
	var p ports.Proto
	switch f[1] {
	case "tcp":
		p = ports.TCP
	case "udp":
		p = ports.UDP
	default:
		return Grant{}, errors.New("bad protocol")
	}
	port, err := strconv.ParseUint(f[2], 10, 16)
	if err != nil || port == 0 {
		return Grant{}, errors.New("bad port")
	}
	return Grant{Addr: a.Unmap(), Proto: p, Port: uint16(port)}, nil
}

func appendGrant(b []byte, g Grant) []byte {
	b = g.Addr.Unmap().AppendTo(b)
	b = append(b, ' ')
	b = append(b, g.Proto.String()...)
	b = append(b, ' ')
	return strconv.AppendUint(b, uint64(g.Port), 10)
}

func appendOpen(b []byte, e journalEntry) []byte {
	b = append(b, "open "...)
	// Rounded up: after a restart a grant may close a little late, never early.
	ms := e.Expiry.UnixMilli()
	if e.Expiry.After(time.UnixMilli(ms)) {
		ms++
	}
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, ' ')
	b = appendGrant(b, e.Grant)
	b = append(b, ' ')
	if e.Grant.User == "" {
		b = append(b, '-')
	} else {
		b = append(b, e.Grant.User...)
	}
	return append(b, '\n')
}

// entries returns the open grants.
func (j *journal) entries() []journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	es := make([]journalEntry, 0, len(j.open))
	for _, e := range j.open {
		es = append(es, e)
	}
	return es
}

// opened records that e is (about to be) open until e.Expiry; the record
// is on disk when it returns.
func (j *journal) opened(e journalEntry) error {
	j.mu.Lock()
	j.open[keyOf(e.Grant)] = e
	seq, err := j.write(appendOpen(nil, e))
	j.mu.Unlock()
	if err != nil {
		return err
	}
	return j.sync(seq)
}

// closed records that g is closed. The record is written but not waited
// for: the page cache outlives a killed process, and should the machine
// itself go down first, the next start closes g once more, which errs on
// the side of a closed door. The next fsync carries it.
func (j *journal) closed(g Grant) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.open[keyOf(g)]; !ok {
		return nil
	}
	delete(j.open, keyOf(g))
	if _, err := j.write(append(appendGrant([]byte("close "), g), '\n')); err != nil {
		return err
	}
	if j.records > 2*len(j.open)+1024 {
		return j.compact()
	}
	return nil
}

// write appends rec and returns its sequence number for sync.
func (j *journal) write(rec []byte) (uint64, error) {
	if j.f == nil {
		return 0, errors.New("journal closed")
	}
	if _, err := j.f.Write(rec); err != nil {
		return 0, fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.records++
	j.written++
	return j.written, nil
}

// sync returns once record seq is on disk.
func (j *journal) sync(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.synced < seq {
		if j.syncing {
			j.cond.Wait()
			continue
		}
		if j.f == nil {
			return errors.New("journal closed")
		}
		f, upto := j.f, j.written
		j.syncing = true
		j.mu.Unlock()
		err := f.Sync()
		j.mu.Lock()
		j.syncing = false
		j.cond.Broadcast()
		if err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
		j.synced = max(j.synced, upto)
	}
	return nil
}

// quiesce waits, with mu held, until no sync runs on the current file.
func (j *journal) quiesce() {
	for j.syncing {
		j.cond.Wait()
	}
}

// compact rewrites the journal with the open grants only, atomically.
// It is called with mu held.
func (j *journal) compact() error {
	j.quiesce()
	var buf bytes.Buffer
	buf.WriteString(journalHeader + "\n")
	for _, e := range j.open {
		buf.Write(appendOpen(nil, e))
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), "."+filepath.Base(j.path)+".*")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := buf.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := errors.Join(tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		d.Sync()
		d.Close()
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.records = len(j.open)
	j.synced = j.written // the new file is on disk
	return nil
}

// close syncs and closes the file; the journal stays on disk.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.quiesce()
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.f.Sync(), j.f.Close())
	j.f = nil
	return err
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
