package web

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange sends raw request bytes to s over loopback TCP, closes its
// side for writing, and returns the status line, the headers and the body.
func exchange(t testing.TB, s *testSrv, req string) (status string, hdr map[string]string, body string) {
	s.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = ln.Addr().String()
		go s.Serve(ln)
	})
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { io.WriteString(c, req); c.(*net.TCPConn).CloseWrite() }()
	raw, _ := io.ReadAll(c)
	br := bufio.NewReader(bytes.NewReader(raw))
	status, _ = br.ReadString('\n')
	hdr = map[string]string{}
	for {
		l, err := br.ReadString('\n')
		l = strings.TrimRight(l, "\r\n")
		if err != nil || l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ": ")
		hdr[k] = v
	}
	rest, _ := io.ReadAll(br)
	return strings.TrimRight(status, "\r\n"), hdr, string(rest)
}

type testSrv struct {
	*Server
	once sync.Once
	addr string
}

func testServer(t testing.TB) *testSrv {
	td := t.TempDir()
	os.MkdirAll(filepath.Join(td, "vectors"), 0o755)
	os.WriteFile(filepath.Join(td, "vectors", "source_basic"), []byte("expect: success\n\n"), 0o644)
	os.WriteFile(filepath.Join(td, "vectors", "Bad-Name"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(td, "secret.key"), []byte("ck-key-secret"), 0o600)
	return &testSrv{Server: &Server{Dir: ".", TestData: td}}
}

func TestServeFiles(t *testing.T) {
	s := testServer(t)
	st, h, body := exchange(t, s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	if st != "HTTP/1.1 200 OK" || !strings.Contains(body, "<title>cipherknock: knock</title>") {
		t.Fatalf("GET /: %s\n%s", st, body)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP,
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
	} {
		if h[k] != want {
			t.Errorf("%s: %q, want %q", k, h[k], want)
		}
	}
	etag := h["ETag"]
	if etag == "" {
		t.Fatal("no ETag")
	}
	st, _, body = exchange(t, s, "GET /index.html HTTP/1.1\r\nIf-None-Match: "+etag+"\r\n\r\n")
	if st != "HTTP/1.1 304 Not Modified" || body != "" {
		t.Errorf("revalidation: %s, %d bytes", st, len(body))
	}
	if st, h, _ := exchange(t, s, "GET /ck.js?v=1 HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 200 OK" || !strings.HasPrefix(h["Content-Type"], "text/javascript") {
		t.Errorf("ck.js: %s %q", st, h["Content-Type"])
	}
	if st, _, body := exchange(t, s, "HEAD /app.js HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 200 OK" || body != "" {
		t.Errorf("HEAD: %s, %d bytes of body", st, len(body))
	}
	if st, _, body := exchange(t, s, "GET /vectors/ HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 200 OK" || body != "source_basic\n" {
		t.Errorf("vector list: %s %q", st, body)
	}
	if st, _, body := exchange(t, s, "GET /vectors/source_basic HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 200 OK" || body != "expect: success\n\n" {
		t.Errorf("vector: %s %q", st, body)
	}
}

// TestServeRefuses: nothing outside the pages' top-level files is served.
func TestServeRefuses(t *testing.T) {
	s := testServer(t)
	for _, target := range []string{
		"/../go.mod", "/..%2fgo.mod", "/node/ck.test.js", "/server.go", "/.git", "/%2e%2e/go.mod",
		"/vectors/../secret.key", "/vectors/Bad-Name", "/vectors/..", "/streams/", "//etc/passwd",
		"/screenshots/knock-phone.png", "/index.html/", "/nosuch.html",
	} {
		if st, _, body := exchange(t, s, "GET "+target+" HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 404 Not Found" {
			t.Errorf("GET %s: %s (%d bytes)", target, st, len(body))
		}
	}
	if st, h, _ := exchange(t, s, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"); st != "HTTP/1.1 405 Method Not Allowed" || h["Allow"] != "GET, HEAD" {
		t.Errorf("POST: %s %v", st, h)
	}
	for _, req := range []string{"GET /\r\n\r\n", "GET / SPDY/3\r\n\r\n", "\r\n", "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 200) + "\r\n",
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n"} {
		if st, _, _ := exchange(t, s, req); st != "HTTP/1.1 400 Bad Request" {
			t.Errorf("%.30q: %s", req, st)
		}
	}
	s2 := &testSrv{Server: &Server{Dir: "."}}
	if st, _, _ := exchange(t, s2, "GET /vectors/ HTTP/1.1\r\n\r\n"); st != "HTTP/1.1 404 Not Found" {
		t.Errorf("vectors without testdata: %s", st)
	}
}

func TestFindDir(t *testing.T) {
	if d, err := FindDir(".", ""); err != nil || d != "." {
		t.Errorf("FindDir(.): %q %v", d, err)
	}
	if _, err := FindDir(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "has no index.html") {
		t.Errorf("empty dir: %v", err)
	}
}

// FuzzRequest: any request bytes get one response, and a 200 only for a
// top-level page file or a vector.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n\r\n", "GET /../x HTTP/1.0\r\n\r\n", "HEAD /vectors/ HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n", "\x00\xff\r\n"} {
		f.Add(s)
	}
	s := testServer(f)
	f.Fuzz(func(t *testing.T, req string) {
		st, _, _ := exchange(t, s, req)
		if !strings.HasPrefix(st, "HTTP/1.1 ") {
			t.Fatalf("no status line: %q", st)
		}
		if strings.HasPrefix(st, "HTTP/1.1 200") {
			_, target, _, err := readRequest(bufio.NewReader(strings.NewReader(req)))
			if err != nil {
				t.Fatalf("200 for a bad request %q", req)
			}
			p, _, _ := strings.Cut(target, "?")
			p, _, _ = strings.Cut(p, "#")
			if p != "/" && !(strings.HasPrefix(p, "/vectors/") || fileName(p[1:])) {
				t.Fatalf("served %q", target)
			}
		}
	})
}
