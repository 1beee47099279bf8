package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSafe runs the StrictModes checks against files of this
// process's user (the e2e tests cover other owners, as root).
func TestCheckSafe(t *testing.T) {
	uid := os.Geteuid()
	base := t.TempDir()
	os.Chmod(base, 0o700)
	dir := filepath.Join(base, "etc")
	os.Mkdir(dir, 0o700)
	f := filepath.Join(dir, "c.conf")
	os.WriteFile(f, []byte("x"), 0o600)
	if err := checkSafe(f, uid); err != nil {
		t.Fatalf("safe file refused: %v", err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
		want string
	}{
		{f, 0o620, "file " + f + " is writable by group or others (mode 0620)"},
		{f, 0o602, "file " + f + " is writable by group or others (mode 0602)"},
		{dir, 0o770, "directory " + dir + " is writable by group or others (mode 0770)"},
		{dir, 0o777, "directory " + dir + " is writable by group or others (mode 0777)"},
	} {
		os.Chmod(c.path, c.mode)
		err := checkSafe(f, uid)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mode %04o on %s: %v", c.mode, c.path, err)
		}
		os.Chmod(c.path, map[bool]os.FileMode{true: 0o700, false: 0o600}[c.path == dir])
	}
	if err := checkSafe(f, uid+1); uid != 0 && (err == nil || !strings.Contains(err.Error(), "is owned by uid")) {
		t.Errorf("another user's file: %v", err)
	}
}
