package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockDir holds the firewall locks: one file per network namespace and
// object name, so that two daemons never work on the same kernel objects.
var LockDir = "/run/cipherknockd"

// Lock is a held firewall lock.
type Lock struct{ f *os.File }

// LockFirewall takes the lock of the firewall objects named name in this
// process's network namespace, before anything touches them, and writes
// this daemon's pid and configuration file into it. When another daemon
// holds it, the error names that daemon.
func LockFirewall(name, config string) (*Lock, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return nil, fmt.Errorf("firewall lock: network namespace: %w", err)
	}
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("firewall lock: %w", err)
	}
	path := filepath.Join(LockDir, fmt.Sprintf("firewall-%d-%s.lock", st.Ino, name))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("firewall lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(b))
			if who == "" {
				who = "another process"
			}
			return nil, fmt.Errorf("another cipherknockd (%s) owns the firewall objects %q in this network namespace (lock %s): stop it, or give this configuration another firewall-name", who, name, path)
		}
		return nil, fmt.Errorf("firewall lock %s: %w", path, err)
	}
	if abs, err := filepath.Abs(config); err == nil {
		config = abs
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d, config %s\n", os.Getpid(), config)
	return &Lock{f}, nil
}

// Release gives the lock up.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
