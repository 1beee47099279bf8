package sniff

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Capture from kernel log lines (capture = log): instead of a packet
// socket, the daemon reads the lines the kernel's packet logger writes
// for a logging rule (the daemon's own firewall objects add one, or an
// appliance's own firewall does) and parses each with LogLine.
//
// Three places to read them from:
//
//   - LogKmsg: /dev/kmsg, the kernel's log buffer, as the kernel writes
//     it; only records of the kernel facility count, so a line a program
//     wrote into the buffer is not taken for a packet.
//   - a file path: a syslog file, followed as it grows and across
//     rotation (renamed and recreated, or truncated in place);
//   - LogStdin: standard input, for a stream piped in (a remote
//     appliance's syslog, journalctl -kf -o cat). The capture ends with
//     an error when the stream does.
//
// It needs no capability of its own (reading /dev/kmsg needs
// CAP_SYSLOG or root, and a file needs read permission), and sees only
// what the host's rules let reach the logging rule.

// Sources of log lines besides a file path.
const (
	LogKmsg  = "kmsg"
	LogStdin = "-"
)

// LogConfig says where capture = log reads its lines.
type LogConfig struct {
	// Source is LogKmsg, LogStdin or the path of a file to follow.
	Source string
	// Prefix is the log prefix of the rule, without its trailing
	// space; only lines that carry it count.
	Prefix string
	// Stdin is read when Source is LogStdin (os.Stdin when nil).
	Stdin io.Reader
}

// MaxLogLine is the longest line read; a longer one is dropped whole and
// counted as malformed. The kernel's own records are at most 1 KiB.
const MaxLogLine = 4096

// followPoll is how often a followed file is checked for growth and
// rotation when it has nothing new.
const followPoll = 20 * time.Millisecond

// LogCapture reads knock packets from kernel log lines. Create it with
// NewLogCapture, then call Run once.
type LogCapture struct {
	cfg    LogConfig
	parser *LogLine
	log    *slog.Logger
	f      *os.File // kmsg or the followed file; nil for stdin

	ran                        atomic.Bool
	read, delivered, malformed atomic.Uint64
	rotations                  atomic.Uint64
	dropped                    atomic.Uint64 // kmsg records overwritten before we read them
	inode                      uint64
	size                       int64
}

// NewLogCapture opens the log source; lines logged before it are not
// read. The span and interfaces of cfg apply as for packet capture (an
// interface is matched by the IN= name in the line).
func NewLogCapture(cfg Config, lc LogConfig, log *slog.Logger) (*LogCapture, error) {
	if lc.Prefix == "" {
		return nil, errors.New("sniff: log capture needs a log prefix")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &LogCapture{cfg: lc, parser: NewLogLine(lc.Prefix, cfg), log: log}
	switch lc.Source {
	case LogStdin:
		if c.cfg.Stdin == nil {
			c.cfg.Stdin = os.Stdin
		}
	case LogKmsg:
		f, err := openKmsg()
		if err != nil {
			return nil, err
		}
		c.f = f
	case "":
		return nil, errors.New("sniff: log capture needs a source (kmsg, - or a file)")
	default:
		f, err := os.Open(lc.Source)
		if err != nil {
			return nil, fmt.Errorf("sniff: log file: %w", err)
		}
		// A directory opens and seeks, and fails only at the first
		// read: refuse it, and devices, here.
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("sniff: log file: %s is not a regular file", lc.Source)
		}
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("sniff: log file: %w", err)
		}
		c.f, c.size = f, end
		c.inode = inodeOf(f)
	}
	return c, nil
}

// Close releases the source of a LogCapture whose Run was never called.
func (c *LogCapture) Close() error {
	if c.ran.Load() || c.f == nil {
		return nil
	}
	return c.f.Close()
}

// Stats returns the counters: Read lines (records, for kmsg), Delivered
// knock packets, Malformed lines that carried the prefix but were not a
// knock packet the parser accepts, and Dropped kernel records lost before
// they were read.
func (c *LogCapture) Stats() Stats {
	return Stats{
		Read: c.read.Load(), Delivered: c.delivered.Load(),
		Malformed: c.malformed.Load(),
		Dropped:   c.dropped.Load(),
	}
}

// Run reads lines until ctx is done and calls fn, from this goroutine,
// for each knock packet. fn must not keep p. Run can be called once and
// closes the source when it returns; it returns nil when ctx ended it.
func (c *LogCapture) Run(ctx context.Context, fn func(p *Packet)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("sniff: Run called twice")
	}
	if c.f != nil {
		defer func() { c.f.Close() }()
	}
	c.log.Info("capturing from kernel log lines", "source", c.cfg.Source, "prefix", c.cfg.Prefix)
	switch c.cfg.Source {
	case LogKmsg:
		return c.runKmsg(ctx, fn)
	case LogStdin:
		return c.runStream(ctx, fn)
	default:
		return c.runFollow(ctx, fn)
	}
}

// line handles one line (without its newline).
func (c *LogCapture) line(b []byte, p *Packet, fn func(*Packet)) {
	c.read.Add(1)
	if c.parser.Parse(b, p) {
		p.Time = time.Now()
		c.delivered.Add(1)
		fn(p)
		return
	}
	if c.parser.Marked(b) {
		c.malformed.Add(1)
	}
}

// runStream reads standard input to its end.
func (c *LogCapture) runStream(ctx context.Context, fn func(*Packet)) error {
	lines := make(chan error, 1)
	stop := make(chan struct{})
	// The reader blocks in Read, which ctx cannot interrupt: it runs on
	// its own and hands each line over, so Run returns when ctx ends.
	type lineBuf struct {
		b    []byte
		done chan struct{}
	}
	next := make(chan lineBuf)
	go func() {
		r := bufio.NewReaderSize(c.cfg.Stdin, MaxLogLine)
		done := make(chan struct{})
		for {
			b, err := readLine(r, &c.malformed)
			if len(b) > 0 {
				select {
				case next <- lineBuf{b, done}:
					<-done
				case <-stop:
					return
				}
			}
			if err != nil {
				lines <- err
				return
			}
		}
	}()
	defer close(stop)
	var p Packet
	for {
		select {
		case <-ctx.Done():
			return nil
		case lb := <-next:
			c.line(lb.b, &p, fn)
			lb.done <- struct{}{}
		case err := <-lines:
			if err == io.EOF {
				return errors.New("sniff: standard input closed: no more log lines")
			}
			return fmt.Errorf("sniff: read standard input: %w", err)
		}
	}
}

// readLine returns the next line from r without its line end, dropping
// (and counting) lines longer than the buffer. The slice is valid until
// the next call.
func readLine(r *bufio.Reader, long *atomic.Uint64) ([]byte, error) {
	for {
		b, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long.Add(1)
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if n := len(b); n > 0 && b[n-1] == '\n' {
			b = b[:n-1]
		}
		return b, err
	}
}

// runFollow reads a file as it grows, and follows it when it is rotated:
// renamed or removed and created again (the rest of the old file is read
// first), or truncated in place (read again from its start).
func (c *LogCapture) runFollow(ctx context.Context, fn func(*Packet)) error {
	var p Packet
	var j lineJoin
	r := bufio.NewReaderSize(c.f, MaxLogLine)
	pos := c.size
	for {
		err := c.readAvailable(r, &j, &pos, &p, fn)
		if err != io.EOF {
			return fmt.Errorf("sniff: read %s: %w", c.cfg.Source, err)
		}
		// At the end of the file: wait for more, or for a rotation.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
		st, err := os.Stat(c.cfg.Source)
		switch {
		case err != nil:
			// Removed and not created again yet: the old file may still grow.
		case statInode(st) != c.inode:
			// Renamed or removed, and created again. What was written to
			// the old file since our last read is read first; a last line
			// without its end is taken as it is.
			nf, err := os.Open(c.cfg.Source)
			if err != nil {
				continue
			}
			if err := c.readAvailable(r, &j, &pos, &p, fn); err != io.EOF {
				nf.Close()
				return fmt.Errorf("sniff: read %s: %w", c.cfg.Source, err)
			}
			if line, ok := j.end(nil); ok && len(line) > 0 {
				c.line(line, &p, fn)
			}
			c.f.Close()
			c.f, c.inode, pos = nf, inodeOf(nf), 0
			r.Reset(nf)
			c.rotations.Add(1)
			c.log.Info("log file rotated", "file", c.cfg.Source)
		case st.Size() < pos:
			// Truncated in place (copytruncate): start again.
			if _, err := c.f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("sniff: read %s: %w", c.cfg.Source, err)
			}
			r.Reset(c.f)
			j.reset()
			pos = 0
			c.rotations.Add(1)
			c.log.Info("log file truncated", "file", c.cfg.Source)
		}
	}
}

// readAvailable reads complete lines until the end of what has been
// written, keeping a line whose end is not there yet in j. It returns
// io.EOF at the end, or the read error.
func (c *LogCapture) readAvailable(r *bufio.Reader, j *lineJoin, pos *int64, p *Packet, fn func(*Packet)) error {
	for {
		b, err := r.ReadSlice('\n')
		*pos += int64(len(b))
		switch err {
		case nil:
			if line, ok := j.end(b[:len(b)-1]); ok {
				c.line(line, p, fn)
			} else {
				c.malformed.Add(1)
			}
		case bufio.ErrBufferFull:
			j.add(b)
		default:
			j.add(b)
			return err
		}
	}
}

// lineJoin puts together a line read in pieces, up to MaxLogLine bytes;
// a longer one is dropped whole when it ends.
type lineJoin struct {
	buf  []byte
	over bool
}

func (j *lineJoin) add(b []byte) {
	if j.over || len(b) == 0 {
		return
	}
	if len(j.buf)+len(b) > MaxLogLine {
		j.over, j.buf = true, j.buf[:0]
		return
	}
	j.buf = append(j.buf, b...)
}

// end returns the line that b ends, valid until the next call, and
// whether it is short enough to read.
func (j *lineJoin) end(b []byte) ([]byte, bool) {
	if len(j.buf) == 0 && !j.over {
		return b, len(b) <= MaxLogLine
	}
	j.add(b)
	line, ok := j.buf, !j.over
	j.reset()
	return line, ok
}

func (j *lineJoin) reset() { j.buf, j.over = j.buf[:0], false }
