// Command cipherknockd is the cipherknock receiver: it sniffs knocks below
// the firewall, validates them, and opens the firewall for the address,
// port and time each one asks for (SPEC.md §8, §10, §11).
//
//	cipherknockd run [-c FILE | --demo]   run the daemon
//	cipherknockd check-config [-c FILE]   print every error as FILE:LINE: message, exit 2
//	cipherknockd status [--json]          open grants with their time left
//	cipherknockd reload                   re-read the configuration (or send SIGHUP); says what changed
//	cipherknockd revoke ADDRESS [PROTO/PORT] | --user NAME   close grants at once
//	cipherknockd stop                     stop the daemon; the drops stay, grants expire in the kernel
//	cipherknockd remove                   stop it and remove every firewall object; says which ports open
//	cipherknockd doctor [-c FILE] [--json] capabilities, interfaces, firewall backend, clock
//	cipherknockd version                  print the version (also --version)
//
// Every command reads /etc/cipherknock/cipherknockd.conf unless given
// -c FILE; --demo selects the configuration built in for scripts/demo.sh.
// SIGHUP reloads the configuration and keeps the grants; stop, SIGTERM,
// SIGINT and SIGKILL all leave the firewall closed: the drops stay in the
// kernel, and the grants expire there on time. Only "remove" takes the
// firewall objects away, and it prints which ports that makes reachable.
// Exit status: 0 on success, 1 on a runtime
// error, 2 on a configuration or usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/dist"
	"github.com/cipherknock/cipherknock/internal/version"
)

const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

type cli struct {
	ShowVersion versionFlag `name:"version" help:"Print the version and exit."`

	Run         runCmd         `cmd:"" help:"Run the daemon. SIGHUP reloads; SIGTERM, SIGINT and SIGKILL leave the firewall closed: the drops stay in the kernel and grants expire there."`
	CheckConfig checkConfigCmd `cmd:"" name:"check-config" help:"Check a configuration file; print every error as FILE:LINE: message."`
	Status      statusCmd      `cmd:"" help:"Show the open grants and their time left."`
	Reload      reloadCmd      `cmd:"" help:"Make the running daemon re-read its configuration and check its firewall objects; prints what changed (users, revoked grants, settings that need a restart)."`
	Revoke      revokeCmd      `cmd:"" help:"Close open grants at once: of one address (and PROTO/PORT), or of one user."`
	Stop        stopCmd        `cmd:"" help:"Stop the daemon. The firewall stays closed: its drops stay in the kernel and the open grants expire there on time (as after SIGTERM or SIGKILL)."`
	Remove      removeCmd      `cmd:"" help:"Stop the daemon if it runs and remove every firewall object it made (before an uninstall); prints which ports become reachable."`
	Doctor      doctorCmd      `cmd:"" help:"Report what the daemon would find here: capabilities, interfaces, firewall support, clock."`
	NewConfig   newConfigCmd   `cmd:"" name:"new-config" help:"Write the example configuration, with this host's name as its realm, to a new file."`
	Version     versionCmd     `cmd:"" help:"Print the version."`
	DemoService demoServiceCmd `cmd:"" name:"demo-service" hidden:"" help:"Serve a greeting on a TCP address (the demo's protected service)."`
	DemoKey     demoKeyCmd     `cmd:"" name:"demo-key" hidden:"" help:"Write a fresh user key to a new file of mode 0600 (for the demo)."`
}

type demoKeyCmd struct {
	File string `arg:"" help:"File to create."`
}

// Run writes a new key without ever printing it.
func (d *demoKeyCmd) Run(e *env) error {
	k, err := crypto.GenerateKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, k.Encode()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// DefaultConfig is the configuration file read without -c (a variable only
// so that tests can point it elsewhere).
var DefaultConfig = defaultConfig

const defaultConfig = "/etc/cipherknock/cipherknockd.conf"

type configFlag struct {
	Config string `short:"c" placeholder:"FILE" help:"Configuration file (default: ${default_config})."`
	Demo   bool   `help:"Use the demo configuration built into the binary (realm demo, user demo with key file demo.key, state in ./state), as scripts/demo.sh does."`
}

// file names the configuration file in use.
func (f configFlag) file() string {
	if f.Config == "" {
		return DefaultConfig
	}
	return f.Config
}

// load reads the configuration file, or the built-in demo one.
func (f configFlag) load() (*config.Config, error) {
	if f.Demo {
		if f.Config != "" {
			return nil, configError{errors.New("--demo and -c exclude each other")}
		}
		wd, _ := os.Getwd()
		return config.Parse(dist.DemoConfigName, dist.DemoConfig, wd, 0o600, config.OS)
	}
	return config.Load(f.file())
}

// loadServing reads the configuration for commands that serve with it (run,
// check-config), which also refuse the example's realm name.
func (f configFlag) loadServing() (*config.Config, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	if cfg.Realm == dist.ExampleRealm {
		return nil, configError{fmt.Errorf("%s: realm %s is the example configuration's: name this server's realm (its host name, say) and give the same name to cipherknock keygen --realm", cfg.File, dist.ExampleRealm)}
	}
	return cfg, nil
}

type socketFlags struct {
	configFlag
	Socket string `placeholder:"PATH" help:"Control socket (default: the configuration's control-socket)."`
}

func (f socketFlags) path() (string, error) {
	if f.Socket != "" {
		return f.Socket, nil
	}
	cfg, err := f.load()
	if err != nil && f.Config == "" && !f.Demo {
		// A daemon may be running with the default socket while the
		// default file is unreadable or being edited.
		if _, serr := os.Stat(config.DefaultControlSocket); serr == nil {
			return config.DefaultControlSocket, nil
		}
	}
	if err != nil {
		return "", err
	}
	return cfg.ControlSocket, nil
}

// configError marks errors that exit with status 2.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// silentConfigError exits with status 2 having printed nothing more: the
// output (check-config --json) said it all.
type silentConfigError struct{}

func (silentConfigError) Error() string { return "configuration errors" }

// writeJSON prints v as one line of JSON: every --json output of both
// commands is one object per line.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("cipherknockd"),
		kong.Description(rootHelp),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.UsageOnError(),
		kong.Vars{"default_config": defaultConfig},
	)
	if err != nil {
		panic(err)
	}
	code := exitOK
	func() {
		defer func() {
			if r := recover(); r != nil {
				if c, ok := r.(exitCode); ok {
					code = int(c)
					return
				}
				panic(r)
			}
		}()
		kctx, err := parser.Parse(args)
		if err != nil {
			fmt.Fprintf(stderr, "cipherknockd: error: %v\n", err)
			code = exitConfig
			return
		}
		err = kctx.Run(&env{stdout: stdout, stderr: stderr})
		var es config.Errors
		switch {
		case err == nil:
		case errors.As(err, new(silentConfigError)):
			code = exitConfig
		case errors.As(err, &es):
			for _, e := range es {
				fmt.Fprintln(stderr, e)
			}
			code = exitConfig
		default:
			fmt.Fprintf(stderr, "cipherknockd: error: %v\n", err)
			code = exitError
		}
	}()
	return code
}

type exitCode int

type env struct {
	stdout, stderr io.Writer
}

type runCmd struct {
	configFlag
	CPUProfile    string `name:"cpu-profile" hidden:"" placeholder:"FILE" help:"Write a CPU profile (pprof) to FILE until the daemon stops, to find hot spots under load."`
	MetricsListen string `name:"metrics-listen" placeholder:"ADDRESS" help:"Also serve the counters in the Prometheus text format at http://ADDRESS/metrics (such as 127.0.0.1:9477); no port is opened without it."`
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	o := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// checked loads the configuration and checks it against this host
// (hostFindings): errors fail the load, warnings go to warn.
func (f configFlag) checked(warn func(string)) (*config.Config, error) {
	cfg, err := f.loadServing()
	if err != nil {
		return nil, err
	}
	var es config.Errors
	for _, x := range hostFindings(cfg, kernelBackend(cfg)) {
		if x.Error {
			es = append(es, &config.Error{File: cfg.File, Line: x.Line, Msg: x.Msg})
		} else if warn != nil {
			warn(x.String(cfg.File))
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	return cfg, nil
}

func (r *runCmd) Run(e *env) error {
	var warnings []string
	cfg, err := r.checked(func(s string) { warnings = append(warnings, s) })
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg)
	for _, w := range warnings {
		log.Warn(w)
	}
	if r.CPUProfile != "" {
		f, err := os.Create(r.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	// The lock is taken once the backend is known and before anything
	// touches the firewall (daemon.Run's Setup), and held until exit.
	var lock *daemon.Lock
	defer func() { lock.Release() }()
	backend := func(c *config.Config) (fwBackend, error) {
		fw, err := newBackend(c, log)
		if err != nil || lock != nil {
			return fw, err
		}
		if lock, err = daemon.LockFirewall(lockName(fw.Name(), c.FirewallName), c.File); err != nil {
			if cl, ok := fw.(io.Closer); ok {
				cl.Close()
			}
			return nil, err
		}
		return fw, nil
	}
	d, err := daemon.New(daemon.Options{
		Config:  cfg,
		Reload:  func() (*config.Config, error) { return r.checked(func(s string) { log.Warn(s) }) },
		Capture: capture(log),
		Backend: backend,
		Log:     log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if r.MetricsListen != "" {
		if err := serveMetrics(ctx, r.MetricsListen, d, log); err != nil {
			return configError{err}
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := d.Reload(); err != nil {
				log.Error("reload failed; keeping the configuration in force", "err", err)
			}
		}
	}()
	return d.Run(ctx)
}

type checkConfigCmd struct {
	configFlag
	JSON bool `name:"json" help:"Print the result as one JSON object: what the file holds, or every error."`
}

// checkResult is check-config --json's object.
type checkResult struct {
	File     string       `json:"file"`
	OK       bool         `json:"ok"`
	Realm    string       `json:"realm,omitempty"`
	Users    []string     `json:"users"`
	Span     *spanJSON    `json:"span,omitempty"`
	Firewall string       `json:"firewall,omitempty"`
	Triggers int          `json:"triggers"`
	Errors   []checkError `json:"errors"`
	Warnings []string     `json:"warnings"` // what the host checks found, that does not fail the check
}

type spanJSON struct {
	Base int `json:"base"`
	Last int `json:"last"`
}

type checkError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (c *checkConfigCmd) Run(e *env) error {
	var warnings []string
	cfg, err := c.checked(func(s string) { warnings = append(warnings, s) })
	if c.JSON {
		res := checkResult{File: c.file(), Users: []string{}, Errors: []checkError{}, Warnings: append([]string{}, warnings...)}
		if c.Demo {
			res.File = dist.DemoConfigName
		}
		var es config.Errors
		switch {
		case errors.As(err, &es):
			for _, e := range es {
				res.Errors = append(res.Errors, checkError{e.File, e.Line, e.Msg})
			}
		case err != nil:
			res.Errors = append(res.Errors, checkError{res.File, 0, err.Error()})
		default:
			res.OK, res.File, res.Realm, res.Firewall, res.Triggers = true, cfg.File, cfg.Realm, cfg.Firewall, len(cfg.Triggers)
			res.Span = &spanJSON{int(cfg.Span.Base), int(cfg.Span.Last())}
			for _, u := range cfg.Users {
				res.Users = append(res.Users, u.Name)
			}
		}
		if werr := writeJSON(e.stdout, res); werr != nil {
			return werr
		}
		if err != nil {
			return silentConfigError{}
		}
		return nil
	}
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %s, %d users, span %d-%d, firewall %s%s\n",
		cfg.File, cfg.Realm, len(cfg.Users), cfg.Span.Base, cfg.Span.Last(), cfg.Firewall, triggerSummary(cfg))
	return nil
}

type statusCmd struct {
	socketFlags
	JSON   bool   `name:"json" help:"Print the status as one JSON object (the same as --format json)."`
	Format string `enum:"text,json,prometheus" default:"text" help:"Output format: text, json, or prometheus (the text exposition format, for node_exporter's textfile collector)."`
}

func (s *statusCmd) Run(e *env) error {
	if s.JSON && s.Format == "prometheus" {
		return configError{errors.New("--json and --format prometheus exclude each other")}
	}
	if s.JSON {
		s.Format = "json"
	}
	path, err := s.path()
	if err != nil {
		return err
	}
	r, err := daemon.Request(path, "status")
	if err != nil {
		return notRunning(path, err)
	}
	st := r.Status
	if st.Grants == nil {
		st.Grants = []daemon.GrantStatus{}
	}
	if st.Rejected == nil {
		st.Rejected = map[string]uint64{}
	}
	switch s.Format {
	case "json":
		return writeJSON(e.stdout, st)
	case "prometheus":
		return st.WritePrometheus(e.stdout)
	}
	return st.WriteText(e.stdout)
}

func notRunning(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cipherknockd is not running (no control socket at %s)", path)
	}
	return err
}

type reloadCmd struct {
	socketFlags
}

func (r *reloadCmd) Run(e *env) error {
	path, err := r.path()
	if err != nil {
		return err
	}
	rep, err := daemon.Request(path, "reload")
	if err != nil {
		return notRunning(path, err)
	}
	fmt.Fprintln(e.stdout, rep.Message)
	return nil
}

type revokeCmd struct {
	socketFlags
	User string   `placeholder:"NAME" help:"Close every grant this user's knocks opened."`
	Args []string `arg:"" optional:"" name:"ADDRESS [PROTO/PORT]" help:"Address whose grants to close, and optionally only this protocol/port."`
}

func (r *revokeCmd) Run(e *env) error {
	args := r.Args
	switch {
	case r.User != "" && len(args) == 0:
		args = []string{"--user", r.User}
	case r.User == "" && (len(args) == 1 || len(args) == 2):
	default:
		return configError{errors.New("revoke: give ADDRESS [PROTO/PORT], or --user NAME")}
	}
	if _, err := daemon.ParseRevoke(args); err != nil {
		return configError{err}
	}
	path, err := r.path()
	if err != nil {
		return err
	}
	rep, err := daemon.Request(path, "revoke "+strings.Join(args, " "))
	if err != nil {
		return notRunning(path, err)
	}
	fmt.Fprintln(e.stdout, rep.Message)
	return nil
}

type stopCmd struct {
	socketFlags
}

// Run asks the running daemon to exit, leaving the firewall closed.
func (s *stopCmd) Run(e *env) error {
	path, err := s.path()
	if err != nil {
		return err
	}
	rep, err := daemon.Request(path, "stop")
	if err != nil {
		return notRunning(path, err)
	}
	fmt.Fprintln(e.stdout, "cipherknockd stopped; "+rep.Message)
	return nil
}

type removeCmd struct {
	socketFlags
}

// Run asks the running daemon to tear down and exit; with no daemon
// running, it tears the firewall objects down itself, under the
// firewall lock so that it never races a daemon starting.
func (s *removeCmd) Run(e *env) error {
	path, err := s.path()
	if err != nil {
		return err
	}
	rep, err := daemon.Request(path, "remove")
	if err == nil {
		fmt.Fprintln(e.stdout, "cipherknockd stopped; "+rep.Message)
		return nil
	}
	var ne net.Error
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.As(err, &ne) {
		return err
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg)
	// With "auto", a daemon may have run with either kernel backend:
	// remove both.
	names := []string{cfg.Firewall}
	if cfg.Firewall == "auto" {
		names = []string{"nftables", "iptables"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		c := *cfg
		c.Firewall = name
		fw, err := newBackend(&c, log)
		if err != nil {
			if len(names) > 1 {
				continue // that backend cannot exist on this host
			}
			return err
		}
		lock, err := daemon.LockFirewall(lockName(fw.Name(), c.FirewallName), c.File)
		if err == nil {
			err = fw.Teardown(ctx)
			lock.Release()
		}
		if cl, ok := fw.(io.Closer); ok {
			cl.Close()
		}
		if err != nil {
			return fmt.Errorf("remove: %s: %w", name, err)
		}
	}
	if err := daemon.TeardownNAT(ctx, cfg); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	fmt.Fprintf(e.stdout, "cipherknockd was not running (%s); %s\n", filepath.Clean(path), daemon.RemoveSummary(cfg))
	return nil
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintln(e.stdout, version.Line("cipherknockd"))
	return nil
}

type demoServiceCmd struct {
	Listen string `default:":8080" help:"Address to listen on."`
}

// Run serves a one-line greeting to every TCP connection, and then echoes
// what the client sends, so that a test can check an established
// connection keeps working.
func (d *demoServiceCmd) Run(e *env) error {
	ln, err := net.Listen("tcp", d.Listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "demo service listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "hello %s, the door is open\n", c.RemoteAddr())
			io.Copy(c, c)
		}()
	}
}

// versionFlag is --version: it prints the version line and exits 0,
// reading the build information only when asked.
type versionFlag bool

// BeforeReset is kong's hook, run when the flag is given.
func (versionFlag) BeforeReset(app *kong.Kong) error {
	fmt.Fprintln(app.Stdout, version.Line("cipherknockd"))
	app.Exit(0)
	return nil
}
