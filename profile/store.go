package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Ext is the file name extension of profile files.
const Ext = ".profile"

// Store is a directory of profile files, one per profile.
type Store struct {
	Dir string
}

// DefaultDir returns the directory of the user's profiles: "cipherknock"
// inside the OS configuration directory ($XDG_CONFIG_HOME or ~/.config on
// Linux and the BSDs, ~/Library/Application Support on macOS, %AppData% on
// Windows).
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the configuration directory: %v", err)
	}
	return filepath.Join(d, "cipherknock"), nil
}

// ErrPermissions is wrapped by the error that refuses a profile file that
// others may read or write.
var ErrPermissions = errors.New("permissions too open")

// ErrExists is returned by Save when the profile exists and may not be
// replaced.
var ErrExists = errors.New("profile already exists")

func (s *Store) path(name string) string { return filepath.Join(s.Dir, name+Ext) }

// Load reads the profile called name. It refuses a file that others may
// read (on systems with Unix permissions), so a key never sits in a readable
// file unnoticed.
func (s *Store) Load(name string) (*Profile, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	path := s.path(name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (see: cipherknock profile list)", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if err := checkMode(path, fi.Mode()); err != nil {
		return nil, err
	}
	data := make([]byte, maxFileSize+1)
	n, err := readFull(f, data)
	if err != nil {
		return nil, err
	}
	p, err := Parse(path, data[:n])
	clear(data)
	if err != nil {
		return nil, err
	}
	p.Name = name
	return p, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n, err := io.ReadFull(f, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return n, err
}

func checkMode(path string, m fs.FileMode) error {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		return nil // no Unix permission bits; %AppData% is per user
	}
	if m.Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %w (mode %04o): others may read the key; fix with: chmod 600 %s", path, ErrPermissions, m.Perm(), path)
	}
	return nil
}

// Save writes p under p.Name with mode 0600. The file is written to a
// temporary file in the same directory, synced and renamed over the old one,
// so a profile is never left half-written. Without overwrite it refuses to
// replace an existing profile.
func (s *Store) Save(p *Profile, overwrite bool) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Name == "" {
		return errors.New("profile has no name")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	path := s.path(p.Name)
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%w: %s (remove it first, or choose another --name)", ErrExists, p.Name)
		}
	}
	return writeAtomic(path, p.Format())
}

// syncFile is replaced by tests to simulate a failure while writing.
var syncFile = (*os.File).Sync

func writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		clear(data)
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = syncFile(f); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// List returns the names of the stored profiles, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), Ext)
		if ok && e.Type().IsRegular() && CheckName(n) == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Exists reports whether a profile called name is stored.
func (s *Store) Exists(name string) bool {
	if CheckName(name) != nil {
		return false
	}
	_, err := os.Lstat(s.path(name))
	return err == nil
}

// Remove deletes the profile called name.
func (s *Store) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w %q (see: cipherknock profile list)", ErrNotFound, name)
	}
	return err
}
