package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cipherknock/cipherknock/client/stuntest"
)

func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){"cipherknock": main})
}

// cleanupM removes the binary built by buildBinary after the tests.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	code := c.m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// buildBinary builds the command once per test run, pure Go, and returns
// its path.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "cipherknock-test-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "cipherknock")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		tb.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

// TestScript runs the command on the scripts in testdata/script. Each script
// gets its own configuration directory ($XDG_CONFIG_HOME, $HOME) and these
// extra commands:
//
//	listen VAR [DELAY]  accept TCP connections on 127.0.0.1, answer a line with
//	                "server got: LINE"; $VAR is the port; with DELAY (such
//	                as 100ms) the port opens only after that time, as a
//	                knocked door does
//	closedport VAR  $VAR is a 127.0.0.1 TCP port where nothing listens
//	stunserver VAR  answer STUN Binding requests on 127.0.0.1; $VAR is host:port
//	mode PERM FILE  check that FILE has permissions PERM (octal)
//	lines N FILE    check that FILE (stdout, stderr) has exactly N lines
//
// $VECTORS is the repository's testdata/vectors, $STREAMS its
// testdata/streams.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("CFG", filepath.Join(env.WorkDir, "config", "cipherknock"))
			vec, err := filepath.Abs("../../testdata/vectors")
			if err != nil {
				return err
			}
			env.Setenv("VECTORS", vec)
			streams, err := filepath.Abs("../../testdata/streams")
			env.Setenv("STREAMS", streams)
			return err
		},
		// [clocksynced]: the kernel says this clock is synchronised.
		Condition: func(cond string) (bool, error) {
			if cond == "clocksynced" {
				return !clockUnsynchronised(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"listen":     cmdListen,
			"closedport": cmdClosedPort,
			"stunserver": cmdSTUNServer,
			"mode":       cmdMode,
			"lines":      cmdLines,
		},
	})
}

func cmdListen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: listen VAR [DELAY]")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := l.Addr().(*net.TCPAddr).Port
	if len(args) == 2 {
		delay, err := time.ParseDuration(args[1])
		ts.Check(err)
		l.Close() // closed until the delay has passed
		ready := make(chan net.Listener, 1)
		go func() {
			time.Sleep(delay)
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				ready <- nil
				return
			}
			ready <- l
		}()
		ts.Defer(func() {
			if l := <-ready; l != nil {
				l.Close()
			}
		})
		ts.Setenv(args[0], strconv.Itoa(port))
		return
	}
	ts.Defer(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "server got: %s", line)
			}()
		}
	}()
	ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}

func cmdClosedPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: closedport VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ts.Setenv(args[0], strconv.Itoa(port))
}

type tbAdapter struct {
	testing.TB
	ts *testscript.TestScript
}

func (a tbAdapter) Cleanup(f func())                  { a.ts.Defer(f) }
func (a tbAdapter) Fatalf(format string, args ...any) { a.ts.Fatalf(format, args...) }
func (a tbAdapter) Helper()                           {}

func cmdSTUNServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: stunserver VAR")
	}
	ts.Setenv(args[0], stuntest.Start(tbAdapter{ts: ts}, "udp4"))
}

func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mode PERM FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %04o, want %s%04o", args[1], got, map[bool]string{true: "not "}[neg], want)
	}
}

func cmdLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: lines N stdout|stderr|FILE")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	var text string
	switch args[1] {
	case "stdout", "stderr":
		text = ts.ReadFile(args[1])
	default:
		text = ts.ReadFile(args[1])
	}
	n := 0
	for _, c := range text {
		if c == '\n' {
			n++
		}
	}
	if n != want {
		ts.Fatalf("%s has %d lines, want %d:\n%s", args[1], n, want, text)
	}
}
