package web

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/internal/vectors"
)

// TestStreamsAgree: ck.js's receiver (run by Node) and internal/vectors'
// reference receiver make the same opens, with the same readings and
// outcomes after the same packets, for every stream vector of
// testdata/streams (SPEC.md §12.1) and thousands of mutations of their
// bodies: packets swapped, dropped, repeated, moved to another source or
// to another port, the stream replayed, and arrival times shifted by gaps
// of a few milliseconds, of exactly R and a millisecond either side of it
// (both receivers count R in whole milliseconds, §10.2), of seconds, and
// of over a minute, so that the assemblers' retries, spent modes and
// timeouts are exercised far beyond the generator's cases.
func TestStreamsAgree(t *testing.T) {
	paths, err := filepath.Glob("../testdata/streams/*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no stream vectors: %v", err)
	}
	type file struct {
		Name string `json:"name"`
		Text string `json:"text"`
	}
	var seeds []file
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, file{filepath.Base(p), string(b)})
	}
	type packet struct {
		ms   int64
		src  string
		port int
	}
	rng := rand.New(rand.NewPCG(5, 6))
	sources := []string{"198.51.100.7", "198.51.100.8", "2001:db8::7", "203.0.113.1"}
	gaps := []int64{0, 1, 3, 199, 200, 201, 400, 1000, 3000, 9000, 11000, 70000}
	inputs := append([]file(nil), seeds...)
	for n := 0; n < 3000; n++ {
		seed := seeds[rng.IntN(len(seeds))]
		head, body, _ := strings.Cut(seed.Text, "\n\n")
		var ps []packet
		for _, l := range strings.Split(body, "\n") {
			f := strings.Fields(l)
			if len(f) != 3 {
				continue // an open line: the receivers say what they open
			}
			ms, _ := strconv.ParseInt(f[0], 10, 64)
			port, _ := strconv.Atoi(f[2])
			ps = append(ps, packet{ms, f[1], port})
		}
		for k := 1 + rng.IntN(4); k > 0 && len(ps) > 0; k-- {
			i := rng.IntN(len(ps))
			switch rng.IntN(7) {
			case 0: // two packets swap places, keeping the times
				if i+1 < len(ps) {
					ps[i].src, ps[i+1].src = ps[i+1].src, ps[i].src
					ps[i].port, ps[i+1].port = ps[i+1].port, ps[i].port
				}
			case 1: // one bit of the byte, or any port of the span
				if rng.IntN(3) > 0 {
					ps[i].port ^= 1 << rng.IntN(8)
				} else {
					ps[i].port = 20480 + rng.IntN(10240)
				}
			case 2:
				ps = append(ps[:i], ps[i+1:]...)
			case 3:
				ps = append(ps[:i+1], ps[i:]...)
			case 4:
				d := gaps[rng.IntN(len(gaps))]
				for j := i; j < len(ps); j++ {
					ps[j].ms += d
				}
			case 5:
				ps[i].src = sources[rng.IntN(len(sources))]
			default: // the tail sent again a second later
				end := ps[len(ps)-1].ms + 1000
				for _, p := range append([]packet(nil), ps[i:]...) {
					ps = append(ps, packet{end + p.ms - ps[i].ms, p.src, p.port})
				}
			}
		}
		var b strings.Builder
		b.WriteString(head + "\n\n")
		for j, p := range ps {
			if j > 0 && p.ms < ps[j-1].ms {
				ps[j].ms = ps[j-1].ms
			}
			if p.port < 0 || p.port > 65535 {
				ps[j].port = 20480
			}
			fmt.Fprintf(&b, "%d %s %d\n", ps[j].ms, ps[j].src, ps[j].port)
		}
		inputs = append(inputs, file{fmt.Sprintf("mutated_%d", n), b.String()})
	}
	sc := runNode(t, "node/streamdiff.js", inputs, 1<<24)
	n, opens, successes := 0, 0, 0
	for i := 0; sc.Scan(); i++ {
		var r struct {
			Opens []string
			Error string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		n++
		want := goStreamOpens(inputs[i].Name, inputs[i].Text)
		got := r.Error
		if got == "" {
			got = strings.Join(r.Opens, " ")
		}
		if got != want {
			t.Errorf("%s (input %d):\nck.js:            %s\ninternal/vectors: %s\n%s", inputs[i].Name, i, got, want, inputs[i].Text)
			continue
		}
		opens += len(r.Opens)
		successes += strings.Count(got, ":success")
	}
	if n != len(inputs) {
		t.Fatalf("ck.js answered %d of %d streams", n, len(inputs))
	}
	if successes == 0 || opens == successes {
		t.Fatalf("%d opens, %d successes: the mutations test nothing", opens, successes)
	}
	t.Logf("%d streams, %d opens (%d successes), the same in both", n, opens, successes)
}

// goStreamOpens is streamdiff.js's answer, from internal/vectors.
func goStreamOpens(name, text string) string {
	s, err := vectors.ParseStream(name, []byte(text))
	if err != nil {
		return "parse"
	}
	got, err := vectors.RunStream(s)
	if err != nil {
		return "run"
	}
	var l []string
	for i, p := range got {
		for _, o := range p.Opens {
			l = append(l, fmt.Sprintf("%d:%x:%s", i, o.Knock, strings.ReplaceAll(o.Class, " ", "_")))
		}
	}
	return strings.Join(l, " ")
}
