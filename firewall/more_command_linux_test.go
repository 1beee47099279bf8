package firewall

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// failRecords counts the records of a close command that failed ("fail"
// as its first argument) for addr.
func failRecords(t *testing.T, log string, addr netip.Addr) int {
	t.Helper()
	n := 0
	for _, r := range readRecords(t, log) {
		if len(r.Argv) > 2 && r.Argv[0] == "fail" && r.Argv[2] == addr.String() {
			n++
		}
	}
	return n
}

// newFailingClose returns a command backend, set up, whose open command
// works and whose close command records its arguments and exits 1.
func newFailingClose(t *testing.T, dir string) (*Command, string) {
	t.Helper()
	rec, log := argvrec(t), filepath.Join(dir, "log")
	be, err := NewCommand(CommandConfig{
		Open:        []string{rec, log, "open", "{family}", "{addr}", "{proto}", "{port}"},
		Close:       []string{rec, log, "fail", "{family}", "{addr}", "{proto}", "{port}"},
		JournalPath: filepath.Join(dir, "journal"),
		Log:         slog.New(slog.NewTextHandler(tlog{t}, nil)),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*Command)
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, log
}

// TestCommandRevokeRefused: a close command that fails makes Revoke fail
// with the command's own message; the grant stays open on record, its
// close is tried once more at its time, and then given up (logged) and
// taken off the record.
func TestCommandRevokeRefused(t *testing.T) {
	dir := t.TempDir()
	b, log := newFailingClose(t, dir)
	defer b.Close()
	if b.Name() != "command" {
		t.Errorf("Name() = %q", b.Name())
	}
	ctx := context.Background()
	a := netip.MustParseAddr("198.18.0.5")
	g := Grant{Addr: a, Proto: ports.TCP, Port: 22, Timeout: 1500 * time.Millisecond}
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	err := b.Revoke(ctx, g)
	wantErr(t, "Revoke", err, "firewall: command: close: ", "exit status 1", "refused")
	if gs, _ := b.List(ctx); len(gs) != 1 || gs[0].Addr != a {
		t.Fatalf("after a failed Revoke, List = %v, want the grant still open", gs)
	}
	if open, err := parseJournalFile(t, dir); err != nil || len(open) != 1 {
		t.Fatalf("journal after a failed Revoke: %v, %v", open, err)
	}
	waitFor(t, 15*time.Second, func() bool {
		gs, _ := b.List(ctx)
		return failRecords(t, log, a) == 2 && len(gs) == 0
	})
	if open, err := parseJournalFile(t, dir); err != nil || len(open) != 0 {
		t.Errorf("journal after giving up: %v, %v", open, err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := failRecords(t, log, a); n != 2 {
		t.Errorf("%d close attempts after giving up, want 2", n)
	}
}

// TestCommandExpiryRetried: a close that fails at the grant's time is
// tried again a second later, and a grant still open when the backend
// stops is closed by the next one at its Setup.
func TestCommandExpiryRetried(t *testing.T) {
	dir := t.TempDir()
	b, log := newFailingClose(t, dir)
	ctx := context.Background()
	a := netip.MustParseAddr("2001:db8::5")
	if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.UDP, Port: 51820, Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() bool { return failRecords(t, log, a) >= 2 })
	gs, _ := b.List(ctx)
	if len(gs) != 1 || gs[0].Timeout != 0 {
		t.Fatalf("List while its close fails = %v, want it open with no time left", gs)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.UDP, Port: 51820, Timeout: time.Second}); err == nil {
		t.Error("Grant after Close accepted")
	}
	// The next instance, with a close command that works.
	b2, log2 := newRecCommandWith(t, argvrec(t), dir, 0)
	if err := b2.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, c, _ := count(readRecords(t, log2), a); c != 1 {
		t.Errorf("the next instance's Setup closed %s %d times, want once", a, c)
	}
	if gs, _ := b2.List(ctx); len(gs) != 0 {
		t.Errorf("List after Setup = %v", gs)
	}
}

func parseJournalFile(t *testing.T, dir string) (map[grantKey]journalEntry, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	return parseJournal(data, "journal")
}

// TestCommandJournalRefused: a journal that is not one, or cannot be
// made, fails Setup with a message naming it, and no command runs; a
// journal torn in its last record is cut there and its overdue grants
// closed.
func TestCommandJournalRefused(t *testing.T) {
	ctx := context.Background()
	rec := argvrec(t)
	for _, tc := range []struct {
		name    string
		prepare func(dir string) string // returns the journal path
		want    []string
	}{
		{"not a journal", func(dir string) string {
			p := filepath.Join(dir, "journal")
			os.WriteFile(p, []byte("# my notes\n"), 0o600)
			return p
		}, []string{"firewall: command: ", "journal:1: not a cipherknock journal"}},
		{"bad record", func(dir string) string {
			p := filepath.Join(dir, "journal")
			os.WriteFile(p, []byte(journalHeader+"\nopen 1 198.18.0.2 tcp 22 -\nclose 198.18.0.300 tcp 22\n"), 0o600)
			return p
		}, []string{"journal:3: bad address"}},
		{"line too long", func(dir string) string {
			p := filepath.Join(dir, "journal")
			os.WriteFile(p, []byte(journalHeader+"\nopen 1 198.18.0.2 tcp 22 "+strings.Repeat("a", 1<<16)+"\n"), 0o600)
			return p
		}, []string{"journal: bufio.Scanner: token too long"}},
		{"missing directory", func(dir string) string {
			return filepath.Join(dir, "nosuch", "journal")
		}, []string{"firewall: command: journal: ", "no such file or directory"}},
		{"a directory", func(dir string) string {
			p := filepath.Join(dir, "journal")
			os.Mkdir(p, 0o700)
			return p
		}, []string{"firewall: command: ", "is a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.prepare(dir)
			before, _ := os.ReadFile(path)
			log := filepath.Join(dir, "log")
			be, err := NewCommand(CommandConfig{
				Open:        []string{rec, log, "open", "{addr}"},
				Close:       []string{rec, log, "close", "{addr}"},
				JournalPath: path,
			}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer be.(*Command).Close()
			wantErr(t, "Setup", be.Setup(ctx), tc.want...)
			if _, err := os.Stat(log); err == nil {
				t.Error("a command ran")
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("journal changed:\n%s", after)
			}
			if err := be.Grant(ctx, Grant{Addr: netip.MustParseAddr("198.18.0.2"), Proto: ports.TCP, Port: 22, Timeout: time.Second}); err == nil {
				t.Error("Grant after a failed Setup accepted")
			}
		})
	}
	t.Run("torn", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "journal")
		os.WriteFile(path, []byte(journalHeader+"\nopen 1 198.18.0.2 tcp 22 -\nopen 17323612"), 0o600)
		b, log := newRecCommandWith(t, rec, dir, 0)
		if err := b.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, c, _ := count(readRecords(t, log), netip.MustParseAddr("198.18.0.2")); c != 1 {
			t.Errorf("overdue grant closed %d times", c)
		}
		if data, _ := os.ReadFile(path); string(data) != journalHeader+"\n" {
			t.Errorf("journal after Setup:\n%q", data)
		}
	})
}

// TestCommandRefusals: grants the backend refuses before any command
// runs, and templates NewCommand refuses, each with the template it
// names.
func TestCommandRefusals(t *testing.T) {
	dir := t.TempDir()
	rec := argvrec(t)
	b, log := newRecCommandWith(t, rec, dir, 0)
	ctx := context.Background()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	a := netip.MustParseAddr("198.18.0.2")
	for _, g := range []Grant{
		{Addr: a, Proto: ports.TCP, Port: 22},
		{Addr: a, Proto: ports.TCP, Port: 22, Timeout: -time.Second},
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Proto: ports.TCP, Port: 22, Timeout: time.Second},
		{Addr: a, Proto: ports.TCP, Timeout: time.Second},
		{Addr: a, Proto: ports.Proto(7), Port: 22, Timeout: time.Second},
		{Addr: a, Proto: ports.TCP, Port: 22, Timeout: time.Second, User: "-rf"},
	} {
		if err := b.Grant(ctx, g); err == nil || !strings.HasPrefix(err.Error(), "firewall: ") {
			t.Errorf("Grant(%+v): %v", g, err)
		}
	}
	if err := b.Revoke(ctx, Grant{Proto: ports.TCP, Port: 22}); err == nil {
		t.Error("Revoke without an address accepted")
	}
	if err := b.Revoke(ctx, Grant{Addr: a, Proto: ports.TCP, Port: 22}); err != nil {
		t.Errorf("Revoke of nothing: %v", err)
	}
	if rs := readRecords(t, log); len(rs) != 0 {
		t.Errorf("commands ran: %v", rs)
	}

	ok := []string{rec, log, "x", "{addr}"}
	for _, tc := range []struct {
		cfg  CommandConfig
		want string
	}{
		{CommandConfig{Open: ok, Close: ok}, "needs a journal path"},
		{CommandConfig{Open: []string{"nosuch-firewall-program", "{addr}"}, Close: ok}, "open command: nosuch-firewall-program: not found in PATH"},
		{CommandConfig{Open: ok, Close: []string{}}, "close command: empty command"},
		{CommandConfig{Open: ok, Close: ok, Open6: []string{rec, "{nosuch}"}}, "IPv6 open command: argument 1: unknown placeholder {nosuch}"},
		{CommandConfig{Open: ok, Close: ok, Close6: []string{"/bin/sh", "-c", "x"}}, "IPv6 close command: /bin/sh is a shell"},
	} {
		if tc.want != "needs a journal path" {
			tc.cfg.JournalPath = filepath.Join(dir, "j2")
		}
		_, err := NewCommand(tc.cfg, Options{})
		wantErr(t, "NewCommand", err, "firewall: command: ", tc.want)
	}

	// A program named by a relative path is found from the directory
	// NewCommand runs in, and run by its absolute path from anywhere.
	t.Chdir(filepath.Dir(rec))
	rel := "./" + filepath.Base(rec)
	be, err := NewCommand(CommandConfig{
		Open: []string{rel, log, "open", "{addr}"}, Close: []string{rel, log, "close", "{addr}"},
		JournalPath: filepath.Join(dir, "j3"),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.(*Command).Close()
	t.Chdir(t.TempDir())
	if err := be.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := be.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: 22, Timeout: time.Minute}); err != nil {
		t.Fatalf("Grant through a relative program path: %v", err)
	}
	if err := be.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if o, c, _ := countArg1(readRecords(t, log), a); o != 1 || c != 1 {
		t.Errorf("%d opens and %d closes, want one each", o, c)
	}
}

// countArg1 is count for templates that pass the address first.
func countArg1(rs []argvRecord, addr netip.Addr) (opens, closes int, _ time.Time) {
	for _, r := range rs {
		if len(r.Argv) > 1 && r.Argv[1] == addr.String() {
			switch r.Argv[0] {
			case "open":
				opens++
			case "close":
				closes++
			}
		}
	}
	return opens, closes, time.Time{}
}
