package main

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/cipherknock/cipherknock"
	"github.com/cipherknock/cipherknock/internal/vectors"
)

type vectorsCmd struct {
	Dir string `arg:"" optional:"" help:"Directory of vector files (default: the copy built into this binary)."`
}

// Run checks the spec's test vectors (SPEC.md §12) and prints a one-line
// summary; each failure is listed on standard error.
func (c *vectorsCmd) Run(a *app) error {
	var fsys fs.FS
	src := "built-in"
	if c.Dir != "" {
		if fi, err := os.Stat(c.Dir); err != nil || !fi.IsDir() {
			return usagef("vectors: %s is not a directory", c.Dir)
		}
		fsys, src = os.DirFS(c.Dir), c.Dir
	} else {
		sub, err := fs.Sub(cipherknock.Vectors, "testdata/vectors")
		if err != nil {
			return err
		}
		fsys = sub
	}
	rep, err := vectors.CheckFS(fsys)
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
  cipherknock vectors                  # the vectors built into this binary
  cipherknock vectors testdata/vectors # a checkout's

Exit status: 0 when every vector passes, 1 when one fails, 2 when the
directory cannot be read.`
}
