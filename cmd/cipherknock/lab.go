package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cipherknock/cipherknock/web"
)

type labCmd struct {
	Listen   string `default:"127.0.0.1:8765" placeholder:"ADDR:PORT" help:"Loopback address and port to serve on."`
	Dir      string `placeholder:"DIR" help:"Directory of the pages (default: ./web, else share/cipherknock/web beside the binary's directory)."`
	TestData string `name:"testdata" placeholder:"DIR" help:"Serve the test vectors of DIR/vectors and DIR/streams to the lab (default: ./testdata if present)."`
}

// Help shows examples and the exit status under lab --help.
func (c *labCmd) Help() string {
	return `Examples:
  cipherknock lab                        # in a source tree: http://127.0.0.1:8765/
  cipherknock lab --listen '[::1]:9000' --dir /usr/local/share/cipherknock/web

Exit status: 0 when stopped with Ctrl-C, 1 when the server fails, 2 on a
usage error (an address that is not loopback, a directory without the pages).`
}

// Run serves the knock page and the lab on the loopback interface until
// interrupted. The pages are not embedded in the binary: they would break
// its size budget. Only loopback addresses are accepted: to publish the
// knock page, serve it over HTTPS from a web server (README).
func (c *labCmd) Run(a *app) error {
	ap, err := netip.ParseAddrPort(c.Listen)
	if err != nil {
		return usagef("--listen: want ADDR:PORT, for example 127.0.0.1:8765")
	}
	if !ap.Addr().IsLoopback() {
		return usagef("--listen: %s is not a loopback address; the lab serves this machine only (publish the knock page with an HTTPS server instead)", ap.Addr())
	}
	exe, _ := os.Executable()
	dir, err := web.FindDir(c.Dir, exe)
	if err != nil {
		return usage(err)
	}
	td := c.TestData
	if td == "" {
		if fi, err := os.Stat(filepath.Join("testdata", "vectors")); err == nil && fi.IsDir() {
			td = "testdata"
		}
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return err
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String() + "/"
	if a.json {
		a.emit(map[string]any{"event": "listening", "url": url, "dir": dir, "testdata": td})
	} else {
		a.say("knock page: %s   knock lab: %slab.html   (files from %s; Ctrl-C stops)", url, url, dir)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; ln.Close() }()
	srv := &web.Server{Dir: dir, TestData: td}
	if !a.quiet {
		srv.Log = a.stderr
	}
	if err := srv.Serve(ln); !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
