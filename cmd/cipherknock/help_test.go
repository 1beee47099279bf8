package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// commands returns the path of every visible command, flags included.
func commands(t *testing.T) (paths [][]string, flags map[string]bool) {
	t.Helper()
	parser, err := kong.New(&cli{}, kong.Name("cipherknock"), kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	flags = map[string]bool{}
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		for _, f := range n.Flags {
			if !f.Hidden {
				flags[f.Name] = true
			}
		}
		if n.Type == kong.CommandNode && len(n.Children) == 0 {
			paths = append(paths, path)
		}
		for _, c := range n.Children {
			if c.Type == kong.CommandNode && !c.Hidden {
				walk(c, append(append([]string(nil), path...), c.Name))
			}
		}
	}
	walk(parser.Model.Node, nil)
	return paths, flags
}

// TestHelpExamplesAndExitStatus checks that every command's --help shows
// examples and the exit status.
func TestHelpExamplesAndExitStatus(t *testing.T) {
	paths, _ := commands(t)
	paths = append(paths, nil, []string{"profile"}) // and the top and group levels
	for _, p := range paths {
		var out, errOut bytes.Buffer
		code := run(append(p, "--help"), strings.NewReader(""), &out, &errOut, func(string) string { return "" })
		name := strings.Join(append([]string{"cipherknock"}, p...), " ")
		if code != 0 {
			t.Errorf("%s --help: exit %d: %s", name, code, errOut.String())
		}
		for _, want := range []string{"Examples:", "Exit status:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s --help shows no %q", name, want)
			}
		}
	}
}

// TestManPageFlags checks that cipherknock(1) names every command and flag,
// and no flag that does not exist.
func TestManPageFlags(t *testing.T) {
	b, err := os.ReadFile("../../dist/man/cipherknock.1")
	if err != nil {
		t.Fatal(err)
	}
	man := strings.ReplaceAll(string(b), `\-`, "-")
	paths, flags := commands(t)
	for _, p := range paths {
		if !strings.Contains(man, strings.Join(p, " ")) {
			t.Errorf("cipherknock(1) does not describe %q", strings.Join(p, " "))
		}
	}
	for f := range flags {
		if !strings.Contains(man, "--"+f) {
			t.Errorf("cipherknock(1) does not describe --%s", f)
		}
	}
	for _, m := range regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(man, -1) {
		if !flags[m[1]] {
			t.Errorf("cipherknock(1) names --%s, which no command has", m[1])
		}
	}
}
