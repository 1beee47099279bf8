// Package lex cuts the project's line-oriented files into lines: the
// daemon's configuration file (package config) and the client's profile
// file (package profile) share it, so that comments, white space, line
// ends and the byte-order mark are read one way.
//
// A file is UTF-8 text, optionally starting with a byte-order mark, with
// LF or CRLF line ends. A '#' at the start of a line or after white space
// starts a comment, so values may still contain '#'. A line is blank, a
// "[words]" section header, or "key = value".
package lex

import (
	"strconv"
	"strings"
)

// BOM is the UTF-8 byte-order mark, which some editors write first.
const BOM = "\uFEFF"

// Line is one line of a file that is not blank or a comment.
type Line struct {
	N int // line number, from 1

	// Header is true for a section header; Words holds the words between
	// its brackets.
	Header bool
	Words  []string

	Key, Value string // of a key = value line, trimmed

	// Err, when not empty, says why the line is malformed; the other
	// fields are then empty. It never repeats the line's text.
	Err string
}

// Split returns the lines of data that are neither blank nor comments.
func Split(data []byte) []Line {
	var out []Line
	s := strings.TrimPrefix(string(data), BOM)
	for n := 1; s != ""; n++ {
		var raw string
		raw, s, _ = strings.Cut(s, "\n")
		line := strings.TrimSpace(StripComment(strings.TrimSuffix(raw, "\r")))
		if line == "" {
			continue
		}
		l := Line{N: n}
		switch {
		case !IsText(line):
			l.Err = "line contains control characters or invalid UTF-8"
		case line[0] == '[':
			if line[len(line)-1] != ']' {
				l.Err = "section header must end with ']'"
				break
			}
			l.Header, l.Words = true, strings.Fields(line[1:len(line)-1])
		default:
			k, v, ok := strings.Cut(line, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case !ok:
				l.Err = "expected 'key = value' or a [section] header"
			case k == "":
				l.Err = "missing key before '='"
			default:
				l.Key, l.Value = k, v
			}
		}
		out = append(out, l)
	}
	return out
}

// Lines counts the lines of data, at least 1: the line number of its end.
func Lines(data []byte) int {
	n := strings.Count(string(data), "\n")
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

// StripComment removes a '#' comment: at the start of s, or after white
// space.
func StripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// IsText reports whether s is valid UTF-8 without control characters
// other than tab.
func IsText(s string) bool {
	for _, r := range s {
		if r == 0xfffd || (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

// maxQuote is how much operator input Quote repeats.
const maxQuote = 40

// Quote quotes operator input for a message, cut to 40 bytes.
func Quote(s string) string {
	if len(s) > maxQuote {
		s = s[:maxQuote] + "..."
	}
	return strconv.Quote(s)
}
