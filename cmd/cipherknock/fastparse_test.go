package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// kongParse parses args the way runWith does when parseFast declines, with
// the model of the one command, and returns the command, the globals and
// the given flags; err when kong refuses args.
func kongParse(args []string) (cmd any, g globals, given map[string]bool, err error) {
	var root any
	var gp *globals
	var k knockOnly
	var c connectOnly
	switch firstCommand(args) {
	case "knock":
		root, gp, cmd = &k, &k.globals, &k.Knock
	case "connect":
		root, gp, cmd = &c, &c.globals, &c.Connect
	default:
		return nil, g, nil, fmt.Errorf("not knock or connect")
	}
	exited := false
	parser, err := kong.New(root, kong.Name("cipherknock"), kong.Exit(func(int) { exited = true; panic(exitPanic(0)) }),
		kong.Writers(new(strings.Builder), new(strings.Builder)))
	if err != nil {
		return nil, g, nil, err
	}
	ctx, err := func() (ctx *kong.Context, err error) {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(exitPanic); !ok {
					panic(r)
				}
				err = fmt.Errorf("kong exited")
			}
		}()
		return parser.Parse(args)
	}()
	if err != nil || exited {
		return nil, g, nil, fmt.Errorf("kong: %v", err)
	}
	return cmd, *gp, givenFlags(ctx), nil
}

// checkAgrees fails when parseFast accepts args and kong does not, or
// parses them differently.
func checkAgrees(t *testing.T, args []string) (accepted bool) {
	t.Helper()
	cmd, g, given, ok := parseFast(args)
	if !ok {
		return false
	}
	kcmd, kg, kgiven, err := kongParse(args)
	if err != nil {
		t.Fatalf("%q: parseFast accepts, kong refuses: %v", args, err)
	}
	if !reflect.DeepEqual(any(cmd), kcmd) {
		t.Fatalf("%q: parseFast gives\n%+v\nkong gives\n%+v", args, cmd, kcmd)
	}
	if g != kg {
		t.Fatalf("%q: globals: parseFast %+v, kong %+v", args, g, kg)
	}
	if !reflect.DeepEqual(given, kgiven) {
		t.Fatalf("%q: given flags: parseFast %v, kong %v", args, given, kgiven)
	}
	return true
}

// fastAccepted are command lines parseFast must take (the common ones,
// and one with every flag); fastDeclined ones it must leave to kong.
var fastAccepted = [][]string{
	{"knock", "gate"},
	{"-q", "knock", "127.0.0.1", "--realm", "bench", "--no-confirm"},
	{"--json", "knock", "gate", "--repeat", "2", "--shuffle"},
	{"knock", "gate", "-p", "8443", "-d", "10m"},
	{"knock", "gate", "--time-offset=-90s", "-q"},
	{"knock", "192.0.2.1", "--realm", "gate", "--user", "3", "--no-confirm", "--key-file", "k", "--realm-key-file=rk"},
	{"knock", "gate", "-a", "auto", "--stun", "127.0.0.1:3478", "--timeout", "1s", "--via", "tcp", "--pacing", "2ms", "-4",
		"--proto", "tcp", "--wait", "500ms", "--retries", "0x3", "--budget", "5s", "--base", "20480", "--json"},
	{"knock", "gate", "-6", "--address=2001:db8::1"},
	{"connect", "gate", "gate.example.net", "22"},
	{"-q", "connect", "gate", "h", "2222", "--keep-open", "--budget=3s", "--wait", "1s", "--retries", "1", "--no-confirm", "-d", "30s"},
}

var fastDeclined = [][]string{
	{"knock"},
	{"knock", "a", "b"},
	{"knock", "gate", "--help"},
	{"knock", "gate", "-h"},
	{"--version", "knock", "gate"},
	{"knock", "gate", "--realm"},
	{"knock", "gate", "--realm", "--no-confirm"},
	{"knock", "gate", "--realm="},
	{"knock", "gate", "--realm", ""},
	{"knock", "gate", "--no-confirm=true"},
	{"knock", "gate", "-4", "-6"},
	{"knock", "gate", "-q4"},
	{"knock", "gate", "-p8443"},
	{"knock", "gate", "--port", "8443", "--port", "22"},
	{"knock", "gate", "--retries", "two"},
	{"knock", "gate", "--wait", "3"},
	{"knock", "gate", "--", "x"},
	{"knock", "-"},
	{"knock", "gate", "--time-offset", "-90s"},
	{"knock", "gate", "--keep-open"},
	{"--realm", "x", "knock", "gate"},
	{"knock", "gate", "--realm", "\xff"},
	{"connect", "gate", "h"},
	{"connect", "gate", "h", "ssh"},
	{"connect", "gate", "h", "22", "-p", "22"},
	{"close", "gate"},
	{"version"},
	{},
}

func TestFastParseAgreesWithKong(t *testing.T) {
	for _, args := range fastAccepted {
		if !checkAgrees(t, args) {
			t.Errorf("%q: parseFast declines a plain command line", args)
		}
	}
	for _, args := range fastDeclined {
		if _, _, _, ok := parseFast(args); ok {
			t.Errorf("%q: parseFast accepts what it must leave to kong", args)
		}
	}
}

// TestFastParseKnowsEveryFlag checks parseFast's tables against kong's
// models of knock and connect: the same flags, short letters and types,
// and kong's defaults (a command line with no flags gives the same
// command). A flag added to a command and not to its table makes every
// knock with it slow, and this test fail.
func TestFastParseKnowsEveryFlag(t *testing.T) {
	for _, tc := range []struct {
		root any
		cmd  fastCommand
		args []string
	}{
		{&knockOnly{}, new(knockCmd), []string{"knock", "gate"}},
		{&connectOnly{}, new(connectCmd), []string{"connect", "gate", "h", "22"}},
	} {
		parser, err := kong.New(tc.root, kong.Name("cipherknock"), kong.Exit(func(int) {}))
		if err != nil {
			t.Fatal(err)
		}
		type flag struct {
			short byte
			typ   string
		}
		want := map[string]flag{}
		node := parser.Model.Children[0] // knock or connect
		for _, group := range node.AllFlags(false) {
			for _, f := range group {
				if f.Name == "help" || f.Name == "version" {
					continue // parseFast leaves them to kong
				}
				want[f.Name] = flag{byte(f.Short), f.Target.Type().String()}
			}
		}
		var g globals
		got := map[string]flag{}
		for _, f := range tc.cmd.fastFlags(g.fastFlags(nil)) {
			if _, dup := got[f.name]; dup {
				t.Errorf("%s: --%s twice in parseFast's table", tc.args[0], f.name)
			}
			got[f.name] = flag{f.short, reflect.TypeOf(f.value).Elem().String()}
		}
		if !reflect.DeepEqual(got, want) {
			var names []string
			for n := range want {
				if got[n] != want[n] {
					names = append(names, fmt.Sprintf("--%s: kong %v, parseFast %v", n, want[n], got[n]))
				}
			}
			for n := range got {
				if _, ok := want[n]; !ok {
					names = append(names, fmt.Sprintf("--%s: not kong's", n))
				}
			}
			slices.Sort(names)
			t.Errorf("%s: parseFast's flags differ from kong's:\n%s", tc.args[0], strings.Join(names, "\n"))
		}
		if !checkAgrees(t, tc.args) {
			t.Errorf("%q declined", tc.args)
		}
	}
}

// FuzzFastParse feeds command lines (arguments separated by NUL) to
// parseFast and, when it accepts one, to kong: both must give the same
// command, globals and given flags.
func FuzzFastParse(f *testing.F) {
	for _, args := range slices.Concat(fastAccepted, fastDeclined) {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Add("knock\x00gate\x00--retries=-1\x00--pacing=0\x00--port=+22")
	f.Add("knock\x00--no-confirm\x00gate\x00--duration\x001h30m")
	f.Add("connect\x00p\x00h\x000x16")
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 512 {
			return
		}
		args := strings.Split(line, "\x00")
		if line == "" {
			args = nil
		}
		if refuseSecrets(args) != nil {
			return // runWith stops these before any parser
		}
		checkAgrees(t, args)
	})
}
