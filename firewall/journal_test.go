package firewall

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

func TestJournalReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.UnixMilli(1732361234567)
	a := Grant{Addr: netip.MustParseAddr("198.18.0.2"), Proto: ports.TCP, Port: 22, User: "alice"}
	b := Grant{Addr: netip.MustParseAddr("2001:db8::2"), Proto: ports.UDP, Port: 51820}
	for _, err := range []error{
		j.opened(journalEntry{a, exp}),
		j.opened(journalEntry{b, exp}),
		j.opened(journalEntry{a, exp.Add(time.Minute)}), // re-grant
		j.closed(b),
		j.closed(b), // twice: no second record
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	data, _ := os.ReadFile(path)
	want := journalHeader + "\nopen 1732361234567 198.18.0.2 tcp 22 alice\nopen 1732361234567 2001:db8::2 udp 51820 -\nopen 1732361294567 198.18.0.2 tcp 22 alice\nclose 2001:db8::2 udp 51820\n"
	if string(data) != want {
		t.Errorf("journal:\n%s\nwant:\n%s", data, want)
	}
	// A torn last record is ignored.
	os.WriteFile(path, append(data, "open 17323612"...), 0o600)
	j, err = openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	es := j.entries()
	if len(es) != 1 || es[0].Grant != a || !es[0].Expiry.Equal(exp.Add(time.Minute)) {
		t.Errorf("replayed %v, want %v until %v", es, a, exp.Add(time.Minute))
	}
	// The torn record is cut before the next is appended.
	if err := j.closed(a); err != nil {
		t.Fatal(err)
	}
	if err := j.opened(journalEntry{b, exp}); err != nil {
		t.Fatal(err)
	}
	if err := j.tidy(); err != nil {
		t.Fatal(err)
	}
	j.close()
	data, _ = os.ReadFile(path)
	if want := journalHeader + "\nopen 1732361234567 2001:db8::2 udp 51820 -\n"; string(data) != want {
		t.Errorf("compacted journal:\n%s\nwant:\n%s", data, want)
	}
}

func TestJournalErrors(t *testing.T) {
	for _, tc := range []struct{ data, err string }{
		{"something else\n", "j:1: not a cipherknock journal"},
		{journalHeader + "\nopen x 198.18.0.2 tcp 22 -\n", "j:2: bad expiry"},
		{journalHeader + "\nopen 1 198.18.0.2 sctp 22 -\n", "j:2: bad protocol"},
		{journalHeader + "\nopen 1 198.18.0.2 tcp 0 -\n", "j:2: bad port"},
		{journalHeader + "\nopen 1 fe80::1%eth0 tcp 22 -\n", "j:2: bad address"},
		{journalHeader + "\nopen 1 198.18.0.2 tcp 22 -rf\n", "j:2: bad user name"},
		{journalHeader + "\n\nclose 198.18.0.2 tcp 22\n", "j:2: unknown record"},
		{journalHeader + "\nclose 198.18.0.2 tcp 22 extra\n", "j:2: unknown record"},
	} {
		_, err := parseJournal([]byte(tc.data), "j")
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %q", tc.data, err, tc.err)
		}
	}
}

// FuzzParseJournal: whatever is on disk, parsing does not panic, and what
// it yields is written back and read again unchanged.
func FuzzParseJournal(f *testing.F) {
	f.Add([]byte(journalHeader + "\nopen 1732361234567 198.18.0.2 tcp 22 alice\nclose 198.18.0.2 tcp 22\n"))
	f.Add([]byte(journalHeader + "\nopen 1 2001:db8::2 udp 51820 -\nopen 2 ::ffff:10.0.0.1 tcp 1 bob\n"))
	f.Add([]byte(journalHeader + "\nopen 1 2001:db8::2 udp 51820 -\nopen 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		open, err := parseJournal(data, "j")
		if err != nil {
			return
		}
		out := []byte(journalHeader + "\n")
		for _, e := range open {
			out = appendOpen(out, e)
		}
		again, err := parseJournal(out, "j")
		if err != nil {
			t.Fatalf("re-reading %q: %v", out, err)
		}
		if len(again) != len(open) {
			t.Fatalf("%d grants became %d", len(open), len(again))
		}
		for k, e := range open {
			if g := again[k]; g.Grant != e.Grant || !g.Expiry.Equal(e.Expiry) {
				t.Fatalf("%v became %v", e, g)
			}
		}
	})
}
