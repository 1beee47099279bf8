package profile

import (
	"reflect"
	"strings"
	"testing"
)

// TestFileBOMAndCRLF: a profile saved by an editor that writes a
// byte-order mark and CRLF line ends reads as the same profile; it goes
// through the configuration file's lexer (internal/lex).
func TestFileBOMAndCRLF(t *testing.T) {
	p := testProfile()
	text := "\uFEFF" + strings.ReplaceAll(string(p.Format()), "\n", "\r\n") + "# trailing comment\r\n"
	got, err := Parse("work.profile", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	got.Name = p.Name
	if !reflect.DeepEqual(got, p) {
		t.Errorf("got %+v\nwant %+v", got, p)
	}
	for in, want := range map[string]string{
		"[profile]\n":     "f:1: want key = value",
		"host = a\x01b\n": "f:1: line contains control characters or invalid UTF-8",
	} {
		if _, err := Parse("f", []byte(in)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", in, err, want)
		}
	}
}
