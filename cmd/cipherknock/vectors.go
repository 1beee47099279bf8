package main

import (
	"fmt"
	"os"

	"github.com/cipherknock/cipherknock/internal/vectors"
)

// defaultVectors is where a source tree keeps the vectors, relative to
// its root.
const defaultVectors = "testdata/vectors"

type vectorsCmd struct {
	Dir string `arg:"" optional:"" help:"Directory of vector files (default: testdata/vectors, in a source tree's root)."`
}

// Run checks the spec's test vectors (SPEC.md §12) and prints a one-line
// summary; each failure is listed on standard error. The vectors are not
// built into the binary: their 150 KB would take the client past its size
// budget, and a reviewer checks a source tree's copy anyway.
func (c *vectorsCmd) Run(a *app) error {
	dir := c.Dir
	if dir == "" {
		dir = defaultVectors
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return usagef("vectors: no %s here: run it in a source tree's root, or name the directory", defaultVectors)
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("vectors: %s is not a directory", dir)
	}
	src := dir
	rep, err := vectors.CheckFS(os.DirFS(dir))
	if err != nil {
		return usagef("vectors %s: %v", src, err)
	}
	failures := []string{}
	for _, r := range rep.Results {
		if r.Err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", r.Name, r.Err))
		}
	}
	if a.json {
		a.emit(map[string]any{"source": src, "vectors": len(rep.Results), "passed": len(rep.Results) - len(failures), "failed": len(failures), "failures": failures})
	} else {
		for _, f := range failures {
			fmt.Fprintf(a.stderr, "cipherknock: FAIL %s\n", f)
		}
		a.say("%s (%s)", rep.Summary(), src)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d vectors failed", len(failures), len(rep.Results))
	}
	return nil
}

// Help shows examples and the exit status under vectors --help.
func (c *vectorsCmd) Help() string {
	return `Examples:
  cipherknock vectors                  # in a source tree's root: its testdata/vectors
  cipherknock vectors ~/src/cipherknock/testdata/vectors

Exit status: 0 when every vector passes, 1 when one fails, 2 when the
directory cannot be read.`
}
