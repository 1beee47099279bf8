package main

import (
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/profile"
)

// BenchmarkKnockProcess measures a whole source-mode knock as a user runs
// it: the real binary starts, loads a profile, seals the knock, sends its 24
// UDP datagrams to 127.0.0.1 without pacing, and exits. The time to exit
// bounds the time from process start to the last packet sent; the budget is
// 20 ms. Besides ns/op it reports the median and 95th percentile in ms.
func BenchmarkKnockProcess(b *testing.B) {
	bin := buildBinary(b)
	cfg := b.TempDir()
	k, err := crypto.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	p := profile.New("127.0.0.1", "bench", 0, k)
	p.Name = "lo"
	st := &profile.Store{Dir: cfg + "/cipherknock"}
	if err := st.Save(p, false); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "XDG_CONFIG_HOME="+cfg, "CIPHERKNOCK_KEY=")
	var times []time.Duration
	for b.Loop() {
		cmd := exec.Command(bin, "-q", "knock", "lo", "--no-confirm")
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(times[len(times)/2]), "ms-median")
	b.ReportMetric(ms(times[len(times)*95/100]), "ms-p95")
}

// BenchmarkRunKnock is BenchmarkKnockProcess without the process: the
// command line parsed, the profile loaded, the knock sealed and sent, in
// this process. What is left of the process's time is the Go runtime's
// start and package initialisation (GODEBUG=inittrace=1 lists them).
func BenchmarkRunKnock(b *testing.B) {
	cfg := b.TempDir()
	k, err := crypto.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	p := profile.New("127.0.0.1", "bench", 0, k)
	p.Name = "lo"
	st := &profile.Store{Dir: cfg + "/cipherknock"}
	if err := st.Save(p, false); err != nil {
		b.Fatal(err)
	}
	b.Setenv("XDG_CONFIG_HOME", cfg)
	getenv := func(string) string { return "" }
	for b.Loop() {
		if code := run([]string{"-q", "knock", "lo", "--no-confirm"}, nil, io.Discard, io.Discard, getenv); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

// BenchmarkParser is the command line's share: building kong's model of
// every command and parsing a knock; knockOnly is the model a knock takes
// when parseFast declines; fast is parseFast, which a plain knock takes.
func BenchmarkParser(b *testing.B) {
	b.Run("all", func(b *testing.B) { benchParser(b, func() any { return &cli{} }) })
	b.Run("knockOnly", func(b *testing.B) { benchParser(b, func() any { return &knockOnly{} }) })
	b.Run("fast", func(b *testing.B) {
		args := []string{"-q", "knock", "lo", "--no-confirm"}
		for b.Loop() {
			if _, _, _, ok := parseFast(args); !ok {
				b.Fatal("parseFast declined")
			}
		}
	})
}

func benchParser(b *testing.B, root func() any) {
	for b.Loop() {
		parser, err := kong.New(root(), kong.Name("cipherknock"), kong.Exit(func(int) {}))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parser.Parse([]string{"-q", "knock", "lo", "--no-confirm"}); err != nil {
			b.Fatal(err)
		}
	}
}
