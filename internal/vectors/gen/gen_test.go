package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGenerateMatchesTestdata regenerates every vector into a temporary
// directory and compares it byte for byte with the committed copy: the
// generator is deterministic and testdata/vectors is up to date.
func TestGenerateMatchesTestdata(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "renamed_vector")
	other := filepath.Join(dir, "README.md")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := generate(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stale vector file survived regeneration: %v", err)
	}
	if err := os.Remove(other); err != nil {
		t.Errorf("a file that is not a vector was removed: %v", err)
	}

	committed := filepath.Join("..", "..", "..", "testdata", "vectors")
	got, want := names(t, dir), names(t, committed)
	if !slices.Equal(got, want) {
		t.Fatalf("generated %d files %v\ncommitted %d files %v\n(run go generate)", len(got), got, len(want), want)
	}
	for _, name := range got {
		a, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: regenerated file differs from testdata (run go generate):\n%s", name, a)
		}
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

func TestShuffleIsAPermutation(t *testing.T) {
	in := []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	out := shuffle(in, 42)
	if slices.Equal(in, out) {
		t.Error("shuffle left the order unchanged")
	}
	sorted := slices.Clone(out)
	slices.Sort(sorted)
	if !slices.Equal(sorted, in) {
		t.Errorf("shuffle(%v) = %v is not a permutation", in, out)
	}
	if again := shuffle(in, 42); !slices.Equal(out, again) {
		t.Errorf("shuffle is not deterministic: %v then %v", out, again)
	}
}
