package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/cipherknock/cipherknock/profile"
)

// emit prints v as one JSON line on standard output.
func (a *app) emit(v any) error {
	enc := json.NewEncoder(a.stdout) // one line per object
	enc.SetEscapeHTML(false)         // keep URIs readable
	return enc.Encode(v)
}

// say prints a line for people on standard output, unless --quiet or --json.
func (a *app) say(format string, args ...any) {
	if !a.quiet && !a.json {
		fmt.Fprintf(a.stdout, format+"\n", args...)
	}
}

// status shows a progress line on the terminal, replacing the previous one.
func (a *app) status(line string) {
	if a.tty {
		fmt.Fprintf(a.stderr, "\r\x1b[K%s", line)
	}
}

// endStatus clears the progress line.
func (a *app) endStatus() {
	if a.tty {
		fmt.Fprint(a.stderr, "\r\x1b[K")
	}
}

// colorOut reports whether standard output is a terminal that takes
// colours (not TERM=dumb, no NO_COLOR).
func (a *app) colorOut() bool {
	f, ok := a.stdout.(*os.File)
	if !ok || a.getenv("TERM") == "dumb" || a.getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (a *app) store() (*profile.Store, error) {
	d, err := profile.DefaultDir()
	if err != nil {
		return nil, usage(err)
	}
	return &profile.Store{Dir: d}, nil
}

// readSecret reads a secret (key, URI, passphrase) from file, "-" meaning
// standard input, or else from the environment variable env. It returns ""
// when neither is given. Errors never include the secret.
func (a *app) readSecret(file, env, what string) (string, error) {
	if file != "" {
		var r io.Reader
		if file == "-" {
			r = a.stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				return "", usagef("cannot read %s: %v", what, errors.Unwrap(err))
			}
			defer f.Close()
			// The same rule as for profiles: a secret others may read
			// is refused, not used.
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
				return "", usagef("%s: %v (mode %04o): others may read the %s; fix with: chmod 600 %s", file, profile.ErrPermissions, fi.Mode().Perm(), what, file)
			}
			r = f
		}
		s, err := firstLine(r)
		if err != nil {
			return "", usagef("cannot read %s from %s: %v", what, displayFile(file), err)
		}
		if s == "" {
			return "", usagef("no %s in %s", what, displayFile(file))
		}
		return s, nil
	}
	return strings.TrimSpace(a.getenv(env)), nil
}

// readPassphrase reads a passphrase file ("-": standard input) as SPEC.md
// §3.2 says: its content without one final line ending, nothing trimmed,
// no comments. A file of several lines is refused: earlier versions took
// its first line that was neither empty nor a '#' comment, trimmed, and
// guessing which part is meant would derive another key. Errors never
// include the passphrase.
func (a *app) readPassphrase(file string) (string, error) {
	var r io.Reader = a.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", usagef("cannot read passphrase: %v", errors.Unwrap(err))
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return "", usagef("cannot read passphrase from %s: %v", displayFile(file), err)
	}
	if len(b) > 64<<10 {
		return "", usagef("passphrase in %s is longer than 64 KiB", displayFile(file))
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	switch {
	case s == "":
		return "", usagef("no passphrase in %s", displayFile(file))
	case strings.ContainsAny(s, "\r\n"):
		return "", usagef("passphrase file %s has more than one line: the passphrase is the whole file without its final line ending (SPEC.md §3.2); remove comment and other lines (earlier versions used the first line that was not empty or a # comment, trimmed)", displayFile(file))
	}
	if strings.TrimSpace(s) != s {
		fmt.Fprintf(a.stderr, "cipherknock: warning: the passphrase in %s begins or ends with white space, which is part of it\n", displayFile(file))
	}
	return s, nil
}

func displayFile(f string) string {
	if f == "-" {
		return "standard input"
	}
	return f
}

// firstLine returns the first line of r that is neither empty nor a '#'
// comment, trimmed.
func firstLine(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" && s[0] != '#' {
			return s, nil
		}
	}
	return "", sc.Err()
}
