package replay

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRefusesSymlink: a symbolic link in the cache file's place is
// refused, and the file it points to is left alone.
func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("precious"), 0o600)
	p := filepath.Join(dir, "replay.cache")
	os.Symlink(target, p)
	if _, _, err := Open(p, 16, 1); err == nil {
		t.Fatal("Open followed a symbolic link")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Fatalf("target changed: %q", b)
	}
}
