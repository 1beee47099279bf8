package main

import (
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/cipherknock/cipherknock/internal/vectors"
)

// defaultVectors is where a source tree keeps the vectors, relative to
// its root.
const defaultVectors = "testdata/vectors"

// defaultStreams is where a source tree keeps the stream vectors (SPEC.md
// §12.1), relative to its root.
const defaultStreams = "testdata/streams"

type vectorsCmd struct {
	Dir     string `arg:"" optional:"" help:"Directory of vector files (default: testdata/vectors, in a source tree's root)."`
	Streams string `help:"Directory of stream vector files (SPEC.md §12.1); default: testdata/streams when no directory is given and it is there."`
}

// Run checks the spec's test vectors (SPEC.md §12) and prints a one-line
// summary; each failure is listed on standard error. The vectors are not
// built into the binary: their 150 KB would take the client past its size
// budget, and a reviewer checks a source tree's copy anyway. The same holds
// for the stream vectors.
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
	// Stream vectors: a directory asked for, or the source tree's when the
	// vectors are the source tree's too and it has them.
	var streams fs.FS
	ssrc := ""
	switch {
	case c.Streams != "":
		if fi, err := os.Stat(c.Streams); err != nil || !fi.IsDir() {
			return usagef("vectors: %s is not a directory", c.Streams)
		}
		streams, ssrc = os.DirFS(c.Streams), c.Streams
	case c.Dir == "":
		if fi, err := os.Stat(defaultStreams); err == nil && fi.IsDir() {
			streams, ssrc = os.DirFS(defaultStreams), defaultStreams
		}
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

// Help shows examples and the exit status under vectors --help.
func (c *vectorsCmd) Help() string {
	return `Examples:
  cipherknock vectors                  # in a source tree's root: its testdata/vectors and testdata/streams
  cipherknock vectors ~/src/cipherknock/testdata/vectors
  cipherknock vectors ~/src/cipherknock/testdata/vectors --streams ~/src/cipherknock/testdata/streams

Exit status: 0 when every vector passes, 1 when one fails, 2 when the
directory cannot be read.`
}
