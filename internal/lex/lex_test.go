package lex

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	in := BOM + "# comment\r\n[daemon]\r\nrealm = a#b # c\r\n\r\n  key=  v  \n[user  x  ]\n[bad\nnoequals\n = v\nk = \x01\n\ttab = 1\nlast = 2"
	want := []Line{
		{N: 2, Header: true, Words: []string{"daemon"}},
		{N: 3, Key: "realm", Value: "a#b"},
		{N: 5, Key: "key", Value: "v"},
		{N: 6, Header: true, Words: []string{"user", "x"}},
		{N: 7, Err: "section header must end with ']'"},
		{N: 8, Err: "expected 'key = value' or a [section] header"},
		{N: 9, Err: "missing key before '='"},
		{N: 10, Err: "line contains control characters or invalid UTF-8"},
		{N: 11, Key: "tab", Value: "1"},
		{N: 12, Key: "last", Value: "2"},
	}
	if got := Split([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("Split:\n got %+v\nwant %+v", got, want)
	}
	// A byte-order mark is not text anywhere but first.
	if got := Split([]byte("a = 1\n" + BOM + "b = 2\n")); len(got) != 2 || got[1].Key != BOM+"b" {
		t.Errorf("%+v", got)
	}
	if got := Split([]byte("k = \xff")); len(got) != 1 || got[0].Err == "" {
		t.Errorf("invalid UTF-8: %+v", got)
	}
}

func TestLines(t *testing.T) {
	for s, n := range map[string]int{"": 1, "a": 1, "a\n": 1, "a\nb": 2, "a\nb\n": 2} {
		if Lines([]byte(s)) != n {
			t.Errorf("%q: %d lines, want %d", s, Lines([]byte(s)), n)
		}
	}
}

func TestQuote(t *testing.T) {
	if q := Quote("a\"b"); q != `"a\"b"` {
		t.Error(q)
	}
	if q := Quote(strings.Repeat("x", 50)); q != `"`+strings.Repeat("x", 40)+`..."` {
		t.Error(q)
	}
}

// FuzzSplit: any input splits without panicking into lines numbered in
// order inside the file, each exactly one of a header, a key line or an
// error, and no error quotes the input.
func FuzzSplit(f *testing.F) {
	f.Add([]byte(BOM + "[daemon]\r\nrealm = x # c\n\n[user a]\nkey=ck-key-abc\n"))
	f.Add([]byte("a\n[b\n=c\n\x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		last, n := 0, Lines(data)
		for _, l := range Split(data) {
			if l.N <= last || l.N > n {
				t.Fatalf("line %d after %d, file of %d lines", l.N, last, n)
			}
			last = l.N
			kinds := 0
			if l.Header {
				kinds++
			}
			if l.Key != "" {
				kinds++
			}
			if l.Err != "" {
				kinds++
				if l.Value != "" || l.Words != nil || strings.ContainsAny(l.Err, "\"") {
					t.Fatalf("error line %+v", l)
				}
			}
			if kinds != 1 {
				t.Fatalf("line %+v is not one kind", l)
			}
		}
	})
}
