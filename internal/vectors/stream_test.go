package vectors_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock"
	"github.com/cipherknock/cipherknock/internal/vectors"
)

func streamFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(cipherknock.Streams, "testdata/streams", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(cipherknock.Streams, p)
		files[filepath.Base(p)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestStreams checks every stream vector (SPEC.md §12.1) and that the
// cases the specification names are all there.
func TestStreams(t *testing.T) {
	sub, _ := fs.Sub(cipherknock.Streams, "testdata/streams")
	r, err := vectors.CheckStreamFS(sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results {
		if res.Err != nil {
			t.Errorf("%s: %v", res.Name, res.Err)
		}
	}
	files := streamFiles(t)
	for _, name := range []string{"inject_before", "inject_after", "resent_headers_bounded", "junk_prefill_header_first",
		"junk_prefill_shuffled", "header_shorter_mode_before", "header_longer_mode_before", "duplicates", "timeout",
		"small_flood", "own_failed_knock", "replay_bytes_before_knock", "longer_complete_at_once"} {
		if files[name] == nil {
			t.Errorf("no stream vector %s", name)
		}
	}
}

// TestStreamsDetectChanges: every stream vector fails its check once one
// of its outcomes is changed, dropped or added.
func TestStreamsDetectChanges(t *testing.T) {
	for name, data := range streamFiles(t) {
		s, err := vectors.ParseStream(name, data)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, "> open ") {
				continue
			}
			f := strings.Fields(l)
			other := "success"
			if f[3] == "success" {
				other = "bad_tag"
			}
			changed := strings.Join(append(f[:3:3], other), " ")
			for _, m := range [][]string{
				append(append(append([]string{}, lines[:i]...), changed), lines[i+1:]...),
				append(append([]string{}, lines[:i]...), lines[i+1:]...),
			} {
				s2, err := vectors.ParseStream(name, []byte(strings.Join(m, "\n")))
				if err == nil && vectors.CheckStream(s2) == nil {
					t.Errorf("%s: line %d changed or dropped still checks", name, i+1)
				}
			}
		}
		// An open the receiver does not make.
		s.Packets[0].Opens = append(s.Packets[0].Opens, vectors.StreamOpen{Knock: []byte{0x10}, Class: vectors.Success})
		if vectors.CheckStream(s) == nil {
			t.Errorf("%s: an extra open still checks", name)
		}
	}
}

func TestParseStreamErrors(t *testing.T) {
	good := "key: ck-key-ibaueq2eivdeoscjjjfuytkoj5ifcustkrkvmv2ylfnfwxc5lzptd266ni\nuser-index: 3\nrealm: r\nreceiver-time: 1\n\n"
	for _, bad := range []string{
		"",
		good[:len(good)-1],
		"colour: red\n" + good,
		"realm: a\n" + good,
		good + "0 198.51.100.7\n",
		good + "5 198.51.100.7 20480\n3 198.51.100.7 20480\n",
		good + "0 198.051.100.7 20480\n",
		good + "> open 10 success\n",
		good + "0 198.51.100.7 20480\n> open 1G success\n",
		good + "0 198.51.100.7 20480\n> open 10 fine\n",
		good + "0 198.51.100.7 65536\n",
	} {
		if _, err := vectors.ParseStream("x", []byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := vectors.ParseStream("x", []byte(good+"0 198.51.100.7 20480\n")); err != nil {
		t.Error(err)
	}
}

// TestStreamGenReproducible: go generate writes the stream vectors that
// are checked in.
func TestStreamGenReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./streamgen", "-out", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("streamgen: %v\n%s", err, out)
	}
	files := streamFiles(t)
	got, _ := os.ReadDir(dir)
	if len(got) != len(files) {
		t.Errorf("generator writes %d vectors, %d checked in", len(got), len(files))
	}
	for _, e := range got {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if !bytes.Equal(b, files[e.Name()]) {
			t.Errorf("%s differs from the generator's output: run go generate", e.Name())
		}
	}
}

// TestStreamKeysMatchSpec reads the header-key table of SPEC.md §12.1 and
// requires exactly StreamKeys, in the same order.
func TestStreamKeysMatchSpec(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join("..", "..", "SPEC.md"))
	if err != nil {
		t.Fatalf("SPEC.md not found: %v", err)
	}
	_, sec, ok := strings.Cut(string(spec), "\n### 12.1. Stream vectors")
	if !ok {
		t.Fatal("SPEC.md has no section 12.1. Stream vectors")
	}
	sec, _, _ = strings.Cut(sec, "\n## 13.")
	var keys []string
	for _, line := range strings.Split(sec, "\n") {
		if f := strings.Split(line, "`"); strings.HasPrefix(line, "| `") && len(f) > 2 {
			keys = append(keys, f[1])
		}
	}
	if !slices.Equal(keys, vectors.StreamKeys) {
		t.Errorf("SPEC.md §12.1 lists\n%q\nthe package has\n%q", keys, vectors.StreamKeys)
	}
}
