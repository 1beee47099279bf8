package sniff

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Capture through NFLOG (capture = nflog): the daemon's own firewall
// objects log every packet to the knock span to a netfilter log group
// before dropping it (nftables "log group N", iptables "-j NFLOG
// --nflog-group N"), and the kernel hands each one, from its IP header
// on, to the one socket bound to that group. Reading it needs
// CAP_NET_ADMIN, not CAP_NET_RAW, and sees only packets that reached the
// daemon's rule: the host's own earlier rules (rate limits, address
// filters) have had their say. Each packet is re-checked by the same
// decoder as an AF_PACKET capture.

// nflogSnaplen is how much of each packet the kernel copies: the IPv6
// and TCP headers with room to spare; a knock carries no payload.
const nflogSnaplen = 128

// NFLogCapture reads knock packets from a netfilter log group. Create it
// with NewNFLog, then call Run once.
type NFLogCapture struct {
	cfg   Config
	group uint16
	log   *slog.Logger
	nf    *nflog.Nflog
	dec   *decoder

	ifmu   sync.Mutex
	wanted map[uint32]bool // ifindex → captured, as far as looked up
	looked time.Time       // last full lookup

	mu     sync.Mutex // held while fn runs; closed stops further calls
	closed bool

	ran                                  atomic.Bool
	read, delivered, rejected, malformed atomic.Uint64
	dropped                              atomic.Uint64
}

// NewNFLog opens a netfilter log socket for group in the calling
// thread's network namespace. Binding happens in Run; a group that
// another program holds is reported by Run, or earlier by Check.
func NewNFLog(cfg Config, group uint16, log *slog.Logger) (*NFLogCapture, error) {
	if group == 0 {
		return nil, errors.New("sniff: nflog group 0 is the kernel's default; use 1 or more")
	}
	if len(cfg.Triggers) > 0 {
		return nil, errors.New("sniff: port triggering needs the AF_PACKET capture")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckNFLogGroup(group); err != nil {
		return nil, err
	}
	nf, err := nflog.Open(&nflog.Config{
		Group:    group,
		Copymode: nflog.CopyPacket,
		Bufsize:  nflogSnaplen,
		QThresh:  1, // hand each packet over at once: latency over batching
		Logger:   nflogLogger{log},
	})
	if err != nil {
		return nil, fmt.Errorf("sniff: nflog: %w", err)
	}
	// A larger socket buffer rides out bursts; what still overflows is
	// counted (ENOBUFS), not fatal.
	nf.Con.SetReadBuffer(4 << 20)
	return &NFLogCapture{cfg: cfg, group: group, log: log, nf: nf,
		dec: newDecoderFor(filterSpec{span: cfg.Span}), wanted: make(map[uint32]bool)}, nil
}

// CheckNFLogGroup reports an error naming the program that holds group
// in this network namespace, if one does: the kernel lets one socket bind
// a group, and says only "exists" to a second.
func CheckNFLogGroup(group uint16) error {
	holder, err := nflogHolder(group)
	if err != nil || holder == "" {
		return nil
	}
	return fmt.Errorf("sniff: nflog group %d is already bound by %s; set nflog-group to a free group", group, holder)
}

// nflogHolder reads /proc/thread-self/net/netfilter/nfnetlink_log ("group portid
// qlen copy_mode copy_range flushtimeout use") and names the process
// whose netlink port holds group: netlink ports are process ids unless a
// process opens more than one socket.
func nflogHolder(group uint16) (string, error) {
	f, err := os.Open("/proc/thread-self/net/netfilter/nfnetlink_log")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		g, err1 := strconv.Atoi(fs[0])
		port, err2 := strconv.ParseInt(fs[1], 10, 64)
		if err1 != nil || err2 != nil || g != int(group) {
			continue
		}
		if pid := netlinkOwner(uint32(port)); pid > 0 {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return fmt.Sprintf("process %d (%s)", pid, strings.TrimSpace(string(comm))), nil
		}
		return fmt.Sprintf("netlink port %d", uint32(port)), nil
	}
	return "", sc.Err()
}

// netlinkOwner finds the process that holds the netfilter netlink
// socket with port id port, as ss -p does: the socket's inode from
// /proc/net/netlink, then the process with a descriptor on it. It
// returns 0 when it cannot tell (another user's process, without root).
func netlinkOwner(port uint32) int {
	b, err := os.ReadFile("/proc/thread-self/net/netlink")
	if err != nil {
		return 0
	}
	inode := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l) // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		if len(f) >= 10 && f[1] == "12" && f[2] == strconv.FormatUint(uint64(port), 10) {
			inode = f[9]
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && l == want {
				return pid
			}
		}
	}
	return 0
}

// ProbeNFLog binds group and lets it go again: it reports whether an
// NFLOG capture could run here (CAP_NET_ADMIN, nfnetlink_log in the
// kernel, the group free).
func ProbeNFLog(group uint16) error {
	c, err := NewNFLog(Config{}, group, nil)
	if err != nil {
		return err
	}
	defer c.nf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.nf.RegisterWithErrorFunc(ctx, func(nflog.Attribute) int { return 1 }, func(error) int { return 1 }); err != nil {
		return fmt.Errorf("sniff: nflog group %d: %w", group, err)
	}
	return nil
}

// ProbePacket opens and closes a packet socket: it reports whether an
// AF_PACKET capture could run here (CAP_NET_RAW).
func ProbePacket() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sniff: packet socket: %w", err)
	}
	unix.Close(fd)
	return nil
}

// ProbeKmsg opens and closes /dev/kmsg. When packet-log lines from this
// network namespace may not reach it, it says so in note: the kernel
// logs packets from the first network namespace only, unless the host
// sets net.netfilter.nf_log_all_netns = 1, and that setting exists in
// the first namespace alone, so from another one it cannot be read.
func ProbeKmsg() (note string, err error) {
	f, err := openKmsg()
	if err != nil {
		return "", err
	}
	f.Close()
	if _, err := os.Stat("/proc/sys/net/netfilter/nf_log_all_netns"); err == nil {
		return "", nil // the first namespace
	}
	if _, err := os.Stat("/proc/sys/net/netfilter"); err != nil {
		return "", nil // netfilter not loaded: nothing to tell
	}
	return "this is not the first network namespace: its packet-log lines reach the kernel log only if the host has set sysctl net.netfilter.nf_log_all_netns=1", nil
}

// Close releases the socket of a capture whose Run was never called.
func (c *NFLogCapture) Close() error {
	if c.ran.Load() {
		return nil
	}
	return c.nf.Close()
}

// Stats returns the counters: Read messages, Delivered knock packets,
// Rejected packets the decoder refused, Malformed messages without a
// packet, and Dropped: times the socket buffer overflowed (each loses
// one or more packets).
func (c *NFLogCapture) Stats() Stats {
	return Stats{Read: c.read.Load(), Delivered: c.delivered.Load(), Rejected: c.rejected.Load(),
		Malformed: c.malformed.Load(), Dropped: c.dropped.Load()}
}

// Run binds the group and calls fn for each knock packet until ctx is
// done. Calls of fn never overlap, and none is made after Run returns.
// fn must not keep p. Run returns nil when ctx ended it.
func (c *NFLogCapture) Run(ctx context.Context, fn func(p *Packet)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("sniff: Run called twice")
	}
	defer c.nf.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatal := make(chan error, 1)
	var p Packet
	hook := func(a nflog.Attribute) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return 1
		}
		c.read.Add(1)
		if a.Payload == nil {
			c.malformed.Add(1)
			return 0
		}
		if !c.dec.decode(*a.Payload, &p) || p.Kind != Knock || a.InDev == nil || !c.captured(*a.InDev) {
			c.rejected.Add(1)
			return 0
		}
		p.Ifindex = int(*a.InDev)
		if a.Timestamp != nil {
			p.Time = *a.Timestamp
		} else {
			p.Time = time.Now()
		}
		c.delivered.Add(1)
		fn(&p)
		return 0
	}
	onErr := func(err error) int {
		if errors.Is(err, syscall.ENOBUFS) {
			c.dropped.Add(1)
			return 0
		}
		if rctx.Err() != nil {
			return 1
		}
		var op *netlink.OpError
		if errors.As(err, &op) && (op.Timeout() || op.Temporary()) {
			return 0
		}
		select {
		case fatal <- err:
		default:
		}
		return 1
	}
	if err := c.nf.RegisterWithErrorFunc(rctx, hook, onErr); err != nil {
		if errors.Is(err, syscall.EEXIST) || strings.Contains(err.Error(), "file exists") {
			if e := CheckNFLogGroup(c.group); e != nil {
				return e
			}
			return fmt.Errorf("sniff: nflog group %d is already bound by another program; set nflog-group to a free group", c.group)
		}
		return fmt.Errorf("sniff: nflog group %d: %w", c.group, err)
	}
	c.log.Info("capturing from nflog", "group", c.group, "ports", fmt.Sprintf("%d-%d", c.cfg.Span.Base, c.cfg.Span.Last()))
	var err error
	select {
	case <-ctx.Done():
	case err = <-fatal:
		err = fmt.Errorf("sniff: nflog: %w", err)
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return err
}

// captured reports whether packets arriving on ifindex are to be read:
// those of Config.Interfaces, or, when it names none, every interface but
// loopback (unless Config.Loopback). Answers are cached and looked up
// again at most once a second, so an unknown index costs one lookup.
func (c *NFLogCapture) captured(ifindex uint32) bool {
	c.ifmu.Lock()
	defer c.ifmu.Unlock()
	if w, ok := c.wanted[ifindex]; ok {
		return w
	}
	if time.Since(c.looked) < time.Second && len(c.wanted) > 0 {
		return false
	}
	c.looked = time.Now()
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	clear(c.wanted)
	for _, ifc := range ifs {
		w := false
		switch {
		case len(c.cfg.Interfaces) > 0:
			for _, n := range c.cfg.Interfaces {
				w = w || n == ifc.Name
			}
		case ifc.Flags&net.FlagLoopback != 0:
			w = c.cfg.Loopback
		default:
			w = true
		}
		c.wanted[uint32(ifc.Index)] = w
	}
	return c.wanted[ifindex]
}

// nflogLogger passes the library's messages on at debug level.
type nflogLogger struct{ log *slog.Logger }

func (l nflogLogger) Debugf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l nflogLogger) Errorf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "nflog")
}
