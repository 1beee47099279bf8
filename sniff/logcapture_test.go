package sniff

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logLine is a line as syslog writes the kernel's, for a UDP packet from
// 203.0.113.x to port.
func logLine(x int, port int) string {
	return fmt.Sprintf("Dec  2 02:18:40 fw kernel: [1234.5] ck: IN=eth0 OUT= MAC= SRC=203.0.113.%d DST=198.51.100.1 LEN=28 TTL=64 ID=1 PROTO=UDP SPT=4000 DPT=%d LEN=8\n", x, port)
}

// runLog runs a LogCapture until the test ends and returns the channel of
// the packets it reads ("SRC/DPT").
func runLog(t *testing.T, lc LogConfig) (*LogCapture, chan string, chan error) {
	t.Helper()
	c, err := NewLogCapture(Config{Span: testSpan}, lc, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, func(p *Packet) { got <- fmt.Sprintf("%v/%d", p.Src, p.DstPort) }) }()
	t.Cleanup(cancel)
	return c, got, errc
}

func expect(t *testing.T, got chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("got %s, want %s", g, w)
			}
		case <-time.After(10 * time.Second): // only keeps a broken capture from hanging the test
			t.Fatalf("no packet; want %s", w)
		}
	}
}

func appendTo(t *testing.T, path string, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestLogFollowRotation follows a file through what logrotate does:
// lines before the capture starts are not read; a line written in two
// pieces is read once whole; after a rename the rest of the old file is
// read and then the new file from its start; after a truncation in place
// the file is read again from its start; an over-long line is dropped and
// counted.
func TestLogFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kern.log")
	appendTo(t, path, logLine(1, 20481)) // before the start: not read
	c, got, _ := runLog(t, LogConfig{Source: path, Prefix: "ck:"})

	appendTo(t, path, logLine(2, 20482))
	expect(t, got, "203.0.113.2/20482")
	l := logLine(3, 20483)
	appendTo(t, path, l[:40])
	time.Sleep(3 * followPoll) // the reader sees the half line first
	appendTo(t, path, l[40:])
	expect(t, got, "203.0.113.3/20483")

	// logrotate's default: rename, then a new file. A line the logger
	// wrote to the old file just before is not lost.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", logLine(4, 20484))
	appendTo(t, path, logLine(5, 20485))
	expect(t, got, "203.0.113.4/20484", "203.0.113.5/20485")

	// copytruncate.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * followPoll)
	appendTo(t, path, logLine(6, 20486))
	expect(t, got, "203.0.113.6/20486")

	// A line longer than MaxLogLine, then a good one.
	appendTo(t, path, "ck: IN=eth0 "+strings.Repeat("x", MaxLogLine)+"\n"+logLine(7, 20487))
	expect(t, got, "203.0.113.7/20487")
	// A line with the prefix that is not a knock packet, and one without.
	appendTo(t, path, "kernel: ck: IN=eth0 OUT= PROTO=ICMP\nkernel: usb 1-1: new device\n"+logLine(8, 20488))
	expect(t, got, "203.0.113.8/20488")
	st := c.Stats()
	if st.Malformed != 2 || st.Delivered != 7 || c.rotations.Load() != 2 {
		t.Errorf("stats %+v, %d rotations; want 2 malformed, 7 delivered, 2 rotations", st, c.rotations.Load())
	}
}

// TestLogStdin reads a stream piped in; its end ends the capture with an
// error that says so.
func TestLogStdin(t *testing.T) {
	r, w := io.Pipe()
	c, got, errc := runLog(t, LogConfig{Source: LogStdin, Prefix: "ck:", Stdin: r})
	fmt.Fprint(w, logLine(1, 20481)+"garbage\n"+logLine(2, 20482)+"ck: IN=")
	expect(t, got, "203.0.113.1/20481", "203.0.113.2/20482")
	w.Close()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "standard input closed") {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return at the end of the stream")
	}
	if st := c.Stats(); st.Read != 4 || st.Delivered != 2 || st.Malformed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLogConfigErrors(t *testing.T) {
	for _, lc := range []LogConfig{
		{Source: "kmsg"},
		{Prefix: "ck"},
		{Source: filepath.Join(t.TempDir(), "absent"), Prefix: "ck"},
	} {
		if c, err := NewLogCapture(Config{Span: testSpan}, lc, nil); err == nil {
			c.Close()
			t.Errorf("%+v accepted", lc)
		}
	}
}

// FuzzLogStream feeds a byte stream through the stdin reader: lines of
// any length and content are read or dropped, never fatal, and every
// line is counted.
func FuzzLogStream(f *testing.F) {
	f.Add([]byte(logLine(1, 20481) + logLine(2, 20482)))
	f.Add([]byte("ck: IN=\n\n\r\n" + strings.Repeat("y", MaxLogLine+10) + "\nck: IN=eth0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := NewLogCapture(Config{Span: testSpan}, LogConfig{Source: LogStdin, Prefix: "ck:", Stdin: strings.NewReader(string(b))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = c.Run(context.Background(), func(p *Packet) { n++ })
		if err == nil || !strings.Contains(err.Error(), "standard input closed") {
			t.Fatalf("Run: %v", err)
		}
		if st := c.Stats(); st.Delivered != uint64(n) || st.Delivered+st.Malformed > st.Read+st.Malformed {
			t.Fatalf("stats %+v, %d delivered", st, n)
		}
	})
}
