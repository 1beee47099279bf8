package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEFuzzTargets checks that every fuzz target README.md names, and
// whose executions it reports, exists in the module's tests: a target lost
// in a refactoring must not go on being cited.
func TestREADMEFuzzTargets(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(?:[a-z]+\\.)?(Fuzz[A-Za-z0-9]+)`").FindAllStringSubmatch(string(b), -1) {
		named[m[1]] = true
	}
	if len(named) < 10 {
		t.Fatalf("README names only %d fuzz targets: is its Fuzzing section still there?", len(named))
	}
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9]+)\(f \*testing\.F\)`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range named {
		if !defined[name] {
			t.Errorf("README.md names %s, which no test file defines", name)
		}
	}
}
