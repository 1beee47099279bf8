package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckSafe checks path as sshd's StrictModes checks a user's files: the
// file, after symbolic links are resolved, and every directory above it
// up to the root must be owned by root or by this process's user, and
// none may be writable by group or others. A directory with the sticky
// bit that root owns (/tmp) is accepted: others may add names to it but
// cannot replace or rename the entries below it, which are checked in
// turn. The error says which file or directory, and what to do.
func CheckSafe(path string) error {
	return checkSafe(path, os.Geteuid())
}

func checkSafe(path string, uid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	for p, first := real, true; ; first = false {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		what := "directory"
		if first {
			what = "file"
		}
		if int(sys.Uid) != 0 && int(sys.Uid) != uid {
			return fmt.Errorf("unsafe: %s %s is owned by uid %d, not by root or uid %d: chown it", what, p, sys.Uid, uid)
		}
		m := st.Mode()
		if m.Perm()&0o022 != 0 && !(st.IsDir() && m&fs.ModeSticky != 0 && sys.Uid == 0) {
			return fmt.Errorf("unsafe: %s %s is writable by group or others (mode %04o): chmod go-w %s", what, p, m.Perm(), p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}
