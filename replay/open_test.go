package replay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Reopened with a smaller capacity than it was written with, the cache
// keeps what fits and still refuses every knock it had accepted: the ones
// that no longer fit are covered by raising the horizon over their times.
func TestReopenSmallerCapacity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	const now = 1_700_000_000
	c, _, err := Open(path, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	// Times after the horizon a new cache starts with (now - 1, SPEC §7.2).
	for i := range byte(5) {
		if err := c.Add(id(i), now+uint32(i), now); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	c2, lost, err := Open(path, 3, now)
	if err != nil || lost {
		t.Fatal(err, lost)
	}
	if c2.Len() != 3 {
		t.Errorf("Len %d, want the capacity 3", c2.Len())
	}
	for i := range byte(5) {
		if !c2.Seen(id(i), now+uint32(i)) {
			t.Errorf("knock %d accepted before is no longer refused", i)
		}
	}
	// Full, it fails closed.
	if err := c2.Add(id(9), now+6, now); !errors.Is(err, ErrFull) {
		t.Errorf("a new knock into the full cache: %v, want ErrFull", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(filepath.Join(dir, "replay"), 0, 1); err == nil {
		t.Error("capacity 0 accepted")
	}
	// A path that cannot be read (a directory) is an error, not an empty
	// cache: the knocks it held would be forgotten.
	if _, _, err := Open(dir, 10, 1); err == nil || !strings.HasPrefix(err.Error(), "replay cache: ") {
		t.Errorf("Open of a directory: %v", err)
	}
	if _, err := os.Stat(dir + ".corrupt"); err == nil {
		t.Error("an unreadable path was moved aside")
	}
}
