package firewall

import (
	"os"
	"path/filepath"
	"testing"
)

// TestJournalRefusesSymlink: a symbolic link in the journal's place is
// refused, and the file it points to is left alone.
func TestJournalRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("precious"), 0o600)
	p := filepath.Join(dir, "command.journal")
	os.Symlink(target, p)
	if _, err := openJournal(p); err == nil {
		t.Fatal("openJournal followed a symbolic link")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Fatalf("target changed: %q", b)
	}
}
