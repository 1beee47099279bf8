// Command cipherknock is the cipherknock client: it knocks on a server with
// an encrypted port knock, confirms that the door opened, relays ssh
// connections through it, and manages the profiles that hold the keys.
//
// The knocking itself lives in package client and the profiles in package
// profile; this command parses arguments and prints results.
//
// Exit status: 0 when the knock was confirmed (or confirmation was not
// asked for) or the command succeeded; 1 when the port did not answer, or
// the network failed (name resolution, sending); 2 for a usage or
// configuration error (unknown profile, malformed URI, bad key, permissions
// too open, bad flag). Errors are one line "cipherknock: error: ...",
// sometimes followed by "cipherknock: hint: ..." lines.
//
// With --json, commands print one JSON object per line on standard output:
// knock prints an {"event": ...} object per step and ends with an
// {"event":"result", ...} object, also when it fails.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/cipherknock/cipherknock/internal/version"
)

// Exit codes.
const (
	exitOK          = 0
	exitUnconfirmed = 1 // the port did not answer, or the network failed
	exitUsage       = 2 // bad arguments or configuration
)

// globals are the flags of every command.
type globals struct {
	ShowVersion versionFlag `name:"version" help:"Print the version and exit."`
	Quiet       bool        `short:"q" help:"Print nothing but errors."`
	JSON        bool        `name:"json" help:"Print one JSON object per line on standard output, for scripts."`
}

type cli struct {
	globals

	Knock   knockCmd   `cmd:"" help:"Knock on a server, then wait until its port answers."`
	Connect connectCmd `cmd:"" help:"Knock, wait for the port, relay standard input and output to it (ssh ProxyCommand), then close the grant."`
	Close   closeCmd   `cmd:"" help:"Send a close knock: the server revokes the grant for this address and port."`
	Keygen  keygenCmd  `cmd:"" help:"Make a new key and profile; print its URI, QR code and the server's user entry."`
	Profile profileCmd `cmd:"" help:"Manage profiles."`
	Vectors vectorsCmd `cmd:"" help:"Check the protocol's test vectors (SPEC.md §12) and print a summary."`
	Lab     labCmd     `cmd:"" help:"Serve the browser knock page and the knock lab on 127.0.0.1, to try them locally."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

// app is what every command's Run receives.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	quiet, json    bool
	tty            bool            // stderr is a terminal: show live progress
	resultSent     bool            // knock printed its --json result object
	given          map[string]bool // flags the command line set
}

// usageError marks an error caused by the user's input or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// hintError carries hint lines printed after the error line.
type hintError struct {
	err   error
	hints []string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

type exitPanic int

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) (code int) {
	return runWith(args, stdin, stdout, stderr, getenv, true)
}

// runFull parses args with the whole command line's model.
func runFull(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return runWith(args, stdin, stdout, stderr, getenv, false)
}

// knockOnly and connectOnly are the command line with one command alone,
// the commands on the path to a usable port.
type knockOnly struct {
	globals
	Knock knockCmd `cmd:"" help:"Knock on a server, then wait until its port answers."`
}

type connectOnly struct {
	globals
	Connect connectCmd `cmd:"" help:"Knock, wait for the port, relay standard input and output to it (ssh ProxyCommand), then close the grant."`
}

// firstCommand returns the command args run (the first argument after the
// global flags), or "" when they ask for help or the version, which
// describe every command.
func firstCommand(args []string) string {
	cmd := ""
	for _, a := range args {
		switch {
		case a == "-h" || a == "--help" || a == "--version":
			return ""
		case cmd == "" && strings.HasPrefix(a, "-"):
		case cmd == "":
			cmd = a
		}
	}
	return cmd
}

func runWith(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, fast bool) (code int) {
	if err := refuseSecrets(args); err != nil {
		fmt.Fprintf(stderr, "cipherknock: error: %v\n", err)
		return exitUsage
	}
	if fast {
		if cmd, g, given, ok := parseFast(args); ok {
			return runCommand(cmd.Run, &g, given, stdin, stdout, stderr, getenv)
		}
	}
	// knock and connect, the commands on the path to a usable port, are
	// parsed with a model of that command alone when parseFast declines:
	// building kong's model of every command costs several times more
	// (BenchmarkParser). Anything the small model cannot parse goes to the
	// whole one, for the same messages.
	var root any
	var g *globals
	switch cmd := firstCommand(args); {
	case fast && cmd == "knock":
		var k knockOnly
		root, g = &k, &k.globals
	case fast && cmd == "connect":
		var k connectOnly
		root, g = &k, &k.globals
	default:
		fast = false
		var c cli
		root, g = &c, &c.globals
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitPanic)
			if !ok {
				panic(r)
			}
			code = int(e)
		}
	}()
	parser, err := kong.New(root,
		kong.Name("cipherknock"),
		kong.Description(rootHelp),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitPanic(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		panic(err)
	}
	ctx, err := parser.Parse(args)
	if err != nil && fast {
		return runFull(args, stdin, stdout, stderr, getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cipherknock: error: %v\n", err)
		fmt.Fprintf(stderr, "cipherknock: hint: see cipherknock --help\n")
		return exitUsage
	}
	run := func(a *app) error { return ctx.Run(a) }
	return runCommand(run, g, givenFlags(ctx), stdin, stdout, stderr, getenv)
}

// givenFlags returns the long names of the flags the command line set.
func givenFlags(ctx *kong.Context) map[string]bool {
	given := map[string]bool{}
	for _, p := range ctx.Path {
		if p.Flag != nil && !p.Resolved {
			given[p.Flag.Name] = true
		}
	}
	return given
}

// runCommand runs a parsed command and prints its error, returning the
// exit status.
func runCommand(run func(*app) error, g *globals, given map[string]bool, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, quiet: g.Quiet, json: g.JSON, given: given}
	if f, ok := stderr.(*os.File); ok && !g.Quiet && !g.JSON {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && getenv("TERM") != "dumb" {
			a.tty = true
		}
	}
	err := run(a)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "cipherknock: error: %v\n", err)
	var he hintError
	if errors.As(err, &he) {
		for _, h := range he.hints {
			fmt.Fprintf(stderr, "cipherknock: hint: %s\n", h)
		}
	}
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitUnconfirmed
}

const rootHelp = `Encrypted port knocking client.

Examples:
  cipherknock profile import alice.uri     # a profile from keygen --uri-file
  cipherknock knock gate                   # knock, then confirm the port answers
  cipherknock close gate                   # revoke the grant
  # ~/.ssh/config:  ProxyCommand cipherknock connect gate %h %p

Exit status: 0 when the knock was confirmed or the command succeeded, 1 when
the port did not answer or the network failed, 2 on a usage or
configuration error.`

// refuseSecrets rejects keys and key-carrying URIs on the command line, where
// other users can read them (ps, /proc) and shells record them.
func refuseSecrets(args []string) error {
	for _, a := range args {
		l := strings.ToLower(a)
		switch { // a URI holds a key: its own message first
		case strings.Contains(l, "cipherknock://"):
			return errors.New("a profile URI carries a key and is not accepted as a command-line argument (other users can see it): put it in a file of mode 0600 (profile import FILE), give it on standard input (profile import -), or in CIPHERKNOCK_URI")
		case strings.Contains(l, "ck-key-") || strings.Contains(l, "ck-realm-"):
			return errors.New("keys are not accepted as command-line arguments (other users can see them): use a key file, standard input (-) or the environment (CIPHERKNOCK_KEY, CIPHERKNOCK_REALM_KEY)")
		}
	}
	return nil
}

type versionCmd struct{}

func (versionCmd) Run(a *app) error {
	v := version.String()
	if a.json {
		return a.emit(map[string]any{"version": v, "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
	}
	fmt.Fprintln(a.stdout, version.Line("cipherknock"))
	return nil
}

// Help shows examples and the exit status under version --help.
func (versionCmd) Help() string {
	return `Examples:
  cipherknock version
  cipherknock --version
  cipherknock --json version

Exit status: 0.`
}

// versionFlag is --version: it prints the version line and exits 0,
// reading the build information only when asked.
type versionFlag bool

// BeforeReset is kong's hook, run when the flag is given.
func (versionFlag) BeforeReset(app *kong.Kong) error {
	fmt.Fprintln(app.Stdout, version.Line("cipherknock"))
	app.Exit(0)
	return nil
}
