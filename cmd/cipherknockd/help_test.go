package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// commands returns every visible command and the flags of all of them.
func commands(t *testing.T) (names []string, flags map[string]bool) {
	t.Helper()
	parser, err := kong.New(&cli{}, kong.Name("cipherknockd"), kong.Vars{"version": "test", "default_config": defaultConfig})
	if err != nil {
		t.Fatal(err)
	}
	flags = map[string]bool{}
	for _, f := range parser.Model.Flags {
		flags[f.Name] = true
	}
	for _, c := range parser.Model.Children {
		if c.Hidden {
			continue
		}
		names = append(names, c.Name)
		for _, f := range c.Flags {
			if !f.Hidden {
				flags[f.Name] = true
			}
		}
	}
	return names, flags
}

// TestHelpExamplesAndExitStatus checks that every command's --help shows
// examples and the exit status.
func TestHelpExamplesAndExitStatus(t *testing.T) {
	names, _ := commands(t)
	for _, n := range append(names, "") {
		args := []string{"--help"}
		if n != "" {
			args = []string{n, "--help"}
		}
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("cipherknockd %s --help: exit %d: %s", n, code, errOut.String())
		}
		for _, want := range []string{"Examples:", "Exit status:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("cipherknockd %s --help shows no %q", n, want)
			}
		}
	}
}

// TestManPageFlags checks that cipherknockd(8) names every command and
// flag, and no flag that does not exist.
func TestManPageFlags(t *testing.T) {
	b, err := os.ReadFile("../../dist/man/cipherknockd.8")
	if err != nil {
		t.Fatal(err)
	}
	man := strings.ReplaceAll(string(b), `\-`, "-")
	names, flags := commands(t)
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^\.BR? "?` + regexp.QuoteMeta(n) + `\b`).MatchString(man) {
			t.Errorf("cipherknockd(8) has no entry for %s", n)
		}
	}
	for f := range flags {
		if !strings.Contains(man, "--"+f) {
			t.Errorf("cipherknockd(8) does not describe --%s", f)
		}
	}
	// EXAMPLES may show other programs' flags.
	own := man
	if i := strings.Index(own, ".SH EXAMPLES"); i >= 0 {
		j := strings.Index(own[i+1:], ".SH ")
		own = own[:i] + own[i+1+j:]
	}
	for _, m := range regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(own, -1) {
		if !flags[m[1]] {
			t.Errorf("cipherknockd(8) names --%s, which no command has", m[1])
		}
	}
}
