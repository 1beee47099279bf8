package main

import (
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/cipherknock/cipherknock"
	"github.com/cipherknock/cipherknock/internal/vectors"
)

type vectorsCmd struct {
	Dir     string `arg:"" optional:"" help:"Directory of vector files (default: the copy built into this binary)."`
	Streams string `help:"Directory of stream vector files (SPEC.md §12.1); default: the built-in copy when no directory is given."`
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
	// Stream vectors: the built-in ones with the built-in vectors, or a
	// directory asked for.
	var streams fs.FS
	ssrc := ""
	switch {
	case c.Streams != "":
		if fi, err := os.Stat(c.Streams); err != nil || !fi.IsDir() {
			return usagef("vectors: %s is not a directory", c.Streams)
		}
		streams, ssrc = os.DirFS(c.Streams), c.Streams
	case c.Dir == "":
		sub, err := fs.Sub(cipherknock.Streams, "testdata/streams")
		if err != nil {
			return err
		}
		streams, ssrc = sub, "built-in"
	}
	var srep vectors.Report
	if streams != nil {
		if srep, err = vectors.CheckStreamFS(streams); err != nil {
			return usagef("vectors --streams %s: %v", ssrc, err)
		}
	}
	failures := []string{}
	for _, r := range append(slices.Clone(rep.Results), srep.Results...) {
		if r.Err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", r.Name, r.Err))
		}
	}
	total := len(rep.Results) + len(srep.Results)
	if a.json {
		out := map[string]any{"source": src, "vectors": len(rep.Results), "passed": total - len(failures), "failed": len(failures), "failures": failures}
		if streams != nil {
			out["streams"] = len(srep.Results)
		}
		a.emit(out)
	} else {
		for _, f := range failures {
			fmt.Fprintf(a.stderr, "cipherknock: FAIL %s\n", f)
		}
		a.say("%s (%s)", rep.Summary(), src)
		if streams != nil {
			a.say("stream %s (%s)", srep.Summary(), ssrc)
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d vectors failed", len(failures), total)
	}
	return nil
}
