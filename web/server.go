// Package web holds the knock page and the knock lab (the static files of
// this directory: HTML, CSS and JavaScript that implement SPEC.md §3–§10
// and §12 with WebCrypto) and a small HTTP server for them, which
// `cipherknock lab` runs on the loopback interface.
//
// The server is a minimal HTTP/1.1 file server written on package net, not
// net/http: net/http would add megabytes to the client, whose size is
// budgeted (.ci/crossbuild.sh; cmd/cipherknock/README.md has the figures). It answers GET and HEAD for the
// top-level files of one directory, plus, when given, the test vectors
// (testdata/vectors and testdata/streams) under /vectors/ and /streams/,
// one connection per request, with the pages' security headers. It is for
// trying the pages on one's own machine; to publish the knock page, serve
// the files with a real web server over HTTPS (README.md says how).
package web

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy the server sends with every file; the
// pages repeat it (without frame-ancestors) in a meta element, so that a
// server that forgets the header still gets the policy.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self' https:; media-src 'self'; manifest-src 'self'; worker-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types ck-sw"

var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".webmanifest": "application/manifest+json",
	".json":        "application/json",
}

const (
	maxRequest = 16 << 10 // bytes of request line and headers
	maxHeaders = 100
	maxFile    = 4 << 20
	ioTimeout  = 10 * time.Second
)

// Server serves Dir's top-level files and, if TestData is set, the vector
// files of TestData/vectors and TestData/streams.
type Server struct {
	Dir      string
	TestData string
	// Log, if set, receives one line per request: method, target and the
	// bytes sent (headers included).
	Log io.Writer
}

// Serve accepts connections on ln until it fails (closed).
func (s *Server) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(io.LimitReader(c, maxRequest))
	method, target, inm, err := readRequest(br)
	cw := &countingWriter{w: c}
	w := bufio.NewWriter(cw)
	defer func() {
		w.Flush()
		if s.Log != nil {
			fmt.Fprintf(s.Log, "%s %s %d bytes\n", printable(method), printable(target), cw.n)
		}
	}()
	if err != nil {
		s.reply(w, method, 400, "text/plain; charset=utf-8", []byte("bad request\n"), "")
		return
	}
	if method != "GET" && method != "HEAD" {
		s.reply(w, method, 405, "text/plain; charset=utf-8", []byte("method not allowed\n"), "")
		return
	}
	status, ctype, body := s.lookup(target)
	if status != 200 {
		s.reply(w, method, status, ctype, body, "")
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	if inm == etag {
		s.reply(w, method, 304, ctype, nil, etag)
		return
	}
	s.reply(w, method, 200, ctype, body, etag)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readRequest reads the request line and the headers, of which it keeps
// If-None-Match only.
func readRequest(br *bufio.Reader) (method, target, ifNoneMatch string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", "", err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", "", "", errors.New("bad request line")
	}
	for i := 0; ; i++ {
		h, err := br.ReadString('\n')
		if err != nil {
			return "", "", "", err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		if i >= maxHeaders {
			return "", "", "", errors.New("too many headers")
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "If-None-Match") {
			ifNoneMatch = strings.TrimSpace(v)
		}
	}
	return parts[0], parts[1], ifNoneMatch, nil
}

// lookup maps a request target to a response.
func (s *Server) lookup(target string) (int, string, []byte) {
	notFound := func() (int, string, []byte) { return 404, "text/plain; charset=utf-8", []byte("not found\n") }
	p, _, _ := strings.Cut(target, "?")
	p, _, _ = strings.Cut(p, "#")
	if p == "/" {
		p = "/index.html"
	}
	for _, kind := range []string{"vectors", "streams"} {
		prefix := "/" + kind + "/"
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		if s.TestData == "" {
			return notFound()
		}
		dir := filepath.Join(s.TestData, kind)
		name := p[len(prefix):]
		if name == "" {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return notFound()
			}
			var b strings.Builder
			for _, e := range ents {
				if e.Type().IsRegular() && vectorName(e.Name()) {
					b.WriteString(e.Name() + "\n")
				}
			}
			return 200, "text/plain; charset=utf-8", []byte(b.String())
		}
		if !vectorName(name) {
			return notFound()
		}
		if body, err := readFile(filepath.Join(dir, name)); err == nil {
			return 200, "text/plain; charset=utf-8", body
		}
		return notFound()
	}
	name := strings.TrimPrefix(p, "/")
	ctype, ok := contentTypes[filepath.Ext(name)]
	if !ok || !fileName(name) {
		return notFound()
	}
	body, err := readFile(filepath.Join(s.Dir, name))
	if err != nil {
		return notFound()
	}
	return 200, ctype, body
}

// fileName accepts top-level file names only: no directories, no hidden
// files, nothing to escape through.
func fileName(n string) bool {
	if n == "" || n[0] == '.' || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return !strings.Contains(n, "..")
}

// vectorName is SPEC.md §12's file name rule.
func vectorName(n string) bool {
	if n == "" || len(n) > 100 || n[0] == '_' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxFile {
		return nil, errors.New("not a servable file")
	}
	return io.ReadAll(f)
}

func (s *Server) reply(w *bufio.Writer, method string, status int, ctype string, body []byte, etag string) {
	text := map[int]string{200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", status, text)
	hdr := [][2]string{
		{"Content-Type", ctype},
		{"Content-Length", strconv.Itoa(len(body))},
		{"Cache-Control", "no-cache"},
		{"Connection", "close"},
		{"Content-Security-Policy", CSP},
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "no-referrer"},
		{"Cross-Origin-Opener-Policy", "same-origin"},
		{"Cross-Origin-Resource-Policy", "same-origin"},
		{"Permissions-Policy", "camera=(self), microphone=(), geolocation=()"},
	}
	if status == 405 {
		hdr = append(hdr, [2]string{"Allow", "GET, HEAD"})
	}
	if etag != "" {
		hdr = append(hdr, [2]string{"ETag", etag})
	}
	for _, h := range hdr {
		w.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	w.WriteString("\r\n")
	if method != "HEAD" && status != 304 {
		w.Write(body)
	}
}

// printable keeps a logged request target short and free of control bytes.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// FindDir returns the directory of the page's files: dir if given, else
// ./web (in a source tree) or share/cipherknock/web next to the binary's
// directory (an installed copy). It checks that index.html is there.
func FindDir(dir, executable string) (string, error) {
	cands := []string{dir}
	if dir == "" {
		cands = []string{"web"}
		if executable != "" {
			cands = append(cands, filepath.Join(filepath.Dir(executable), "..", "share", "cipherknock", "web"))
		}
	}
	for _, d := range cands {
		if fi, err := os.Stat(filepath.Join(d, "index.html")); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
	}
	if dir != "" {
		return "", fmt.Errorf("%s has no index.html: give the directory of the knock page's files (web/ in the source tree)", dir)
	}
	return "", errors.New("cannot find the knock page's files (web/ in the source tree): give --dir")
}
