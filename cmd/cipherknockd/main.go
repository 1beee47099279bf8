// Command cipherknockd is the cipherknock receiver: it sniffs knocks below
// the firewall, validates them, and opens the firewall for the address,
// port and time each one asks for (SPEC.md §8, §10, §11).
//
//	cipherknockd run [-c FILE]           run (the built-in demo config without -c)
//	cipherknockd check-config [-c FILE]  print every error as FILE:LINE: message, exit 2
//	cipherknockd status [--json]         open grants with their time left
//	cipherknockd reload                  re-read the configuration (or send SIGHUP)
//	cipherknockd stop                    stop the daemon and remove every firewall object
//	cipherknockd doctor [-c FILE] [--json] capabilities, interfaces, firewall backend, clock
//
// SIGHUP reloads the configuration and keeps the grants; SIGTERM and
// SIGINT stop the daemon and leave the firewall closed, with the grants
// expiring in the kernel. Exit status: 0 on success, 1 on a runtime
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
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/dist"
	"github.com/cipherknock/cipherknock/policy"
)

const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

type cli struct {
	Run         runCmd         `cmd:"" help:"Run the daemon."`
	CheckConfig checkConfigCmd `cmd:"" name:"check-config" help:"Check a configuration file; print every error as FILE:LINE: message."`
	Status      statusCmd      `cmd:"" help:"Show the open grants and their time left."`
	Reload      reloadCmd      `cmd:"" help:"Make the running daemon re-read its configuration."`
	Stop        stopCmd        `cmd:"" help:"Stop the daemon and remove its firewall hook, chain and sets."`
	Doctor      doctorCmd      `cmd:"" help:"Report what the daemon would find here: capabilities, interfaces, firewall support, clock."`
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

type configFlag struct {
	Config string `short:"c" placeholder:"FILE" help:"Configuration file (default: the built-in demo configuration)."`
}

// load reads the configuration file, or the built-in one.
func (f configFlag) load() (*policy.Config, error) {
	if f.Config == "" {
		wd, _ := os.Getwd()
		return policy.Parse(dist.DemoConfigName, dist.DemoConfig, wd, 0o600, policy.OS)
	}
	return policy.Load(f.Config)
}

type socketFlags struct {
	configFlag
	Socket string `placeholder:"PATH" help:"Control socket (default: the configuration's control-socket)."`
}

func (f socketFlags) path() (string, error) {
	if f.Socket != "" {
		return f.Socket, nil
	}
	if f.Config == "" {
		if _, err := os.Stat(policy.DefaultControlSocket); err == nil {
			return policy.DefaultControlSocket, nil
		}
	}
	cfg, err := f.load()
	if err != nil {
		return "", err
	}
	return cfg.ControlSocket, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("cipherknockd"),
		kong.Description("The cipherknock daemon: sniffs encrypted port knocks and opens the firewall for them."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.UsageOnError(),
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
		var es policy.Errors
		switch {
		case err == nil:
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
	CPUProfile string `name:"cpu-profile" hidden:"" placeholder:"FILE" help:"Write a CPU profile (pprof) to FILE until the daemon stops, to find hot spots under load."`
}

func newLogger(w io.Writer, cfg *policy.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	o := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func (r *runCmd) Run(e *env) error {
	cfg, err := r.load()
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg)
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
	d, err := daemon.New(daemon.Options{
		Config:  cfg,
		Reload:  r.load,
		Capture: capture(log),
		Backend: func(c *policy.Config) (fwBackend, error) { return newBackend(c, log) },
		Log:     log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
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
}

func (c *checkConfigCmd) Run(e *env) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %s, %d users, span %d-%d, firewall %s%s\n",
		cfg.File, cfg.Realm, len(cfg.Users), cfg.Span.Base, cfg.Span.Last(), cfg.Firewall, triggerSummary(cfg))
	return nil
}

type statusCmd struct {
	socketFlags
	JSON bool `name:"json" help:"Print the status as JSON."`
}

func (s *statusCmd) Run(e *env) error {
	path, err := s.path()
	if err != nil {
		return err
	}
	r, err := daemon.Request(path, "status")
	if err != nil {
		return notRunning(path, err)
	}
	st := r.Status
	if s.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(e.stdout, "realm %s, firewall %s, %d grants\n", st.Realm, st.Backend, len(st.Grants))
	if st.GrantsError != "" {
		fmt.Fprintf(e.stdout, "cannot list grants: %s\n", st.GrantsError)
	}
	if len(st.Grants) > 0 {
		sort.Slice(st.Grants, func(i, j int) bool { return st.Grants[i].Left < st.Grants[j].Left })
		tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tPORT\tLEFT\tBY")
		for _, g := range st.Grants {
			fmt.Fprintf(tw, "%s\t%s/%d\t%s\t%s\n", g.Addr, g.Proto, g.Port, (time.Duration(g.Left) * time.Second).String(), g.Who())
		}
		tw.Flush()
	}
	fmt.Fprintf(e.stdout, "sources tracked %d of %d (%d bytes), evictions %d; replay cache %d of %d; accepted %d, repeated passes %d\n",
		st.Sources, st.SourceCap, st.TableBytes, st.Evictions, st.ReplayLen, st.ReplayCap, st.Accepted, st.Duplicates)
	if c := st.Capture; c != nil {
		fmt.Fprintf(e.stdout, "capture: %d packets matched the kernel filter, %d dropped by the kernel, %d delivered, %d rejected\n",
			c.Matched, c.Dropped, c.Delivered, c.Rejected)
	}
	if len(st.Rejected) > 0 {
		keys := make([]string, 0, len(st.Rejected))
		for k := range st.Rejected {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprint(e.stdout, "rejected:")
		for _, k := range keys {
			fmt.Fprintf(e.stdout, " %s=%d", k, st.Rejected[k])
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
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
	if _, err := daemon.Request(path, "reload"); err != nil {
		return notRunning(path, err)
	}
	fmt.Fprintln(e.stdout, "configuration reloaded")
	return nil
}

type stopCmd struct {
	socketFlags
}

// Run asks the running daemon to tear down and exit; with no daemon
// running, it tears the firewall objects down itself.
func (s *stopCmd) Run(e *env) error {
	path, err := s.path()
	if err != nil {
		return err
	}
	_, err = daemon.Request(path, "stop")
	if err == nil {
		fmt.Fprintln(e.stdout, "cipherknockd stopped; firewall objects removed")
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
		err = fw.Teardown(ctx)
		if cl, ok := fw.(io.Closer); ok {
			cl.Close()
		}
		if err != nil {
			return fmt.Errorf("teardown: %s: %w", name, err)
		}
	}
	if err := daemon.TeardownNAT(ctx, cfg); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	fmt.Fprintf(e.stdout, "cipherknockd was not running (%s); firewall objects removed\n", filepath.Clean(path))
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
