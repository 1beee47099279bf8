package sniff

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
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
//
// The socket speaks nfnetlink_log (include/uapi/linux/netfilter/
// nfnetlink_log.h) directly: one configuration message binds the group
// and sets copy mode, range and queue threshold; then every read returns
// a batch of packet messages, parsed where they lie, so the per-packet
// path allocates nothing, as the AF_PACKET one does (TestNFLogAllocs).
// The maintained library for this protocol, github.com/florianl/go-nflog,
// allocates for every message (its netlink receive and its attribute
// decoding), which a flood would pay for in garbage collection; README
// has the figures.

// nfnetlink_log message types, attributes and values.
const (
	nfulnlMsgPacket = 0 // NFULNL_MSG_PACKET
	nfulnlMsgConfig = 1 // NFULNL_MSG_CONFIG

	nfulaPacketHdr   = 1 // NFULA_PACKET_HDR
	nfulaTimestamp   = 3 // NFULA_TIMESTAMP: be64 seconds, be64 microseconds
	nfulaIfindexIn   = 4 // NFULA_IFINDEX_INDEV: be32
	nfulaPayload     = 9 // NFULA_PAYLOAD: the packet from its network header
	nfulaCfgCmd      = 1 // NFULA_CFG_CMD: u8 command
	nfulaCfgMode     = 2 // NFULA_CFG_MODE: be32 copy range, u8 copy mode, u8 pad
	nfulaCfgNlbufsiz = 3 // NFULA_CFG_NLBUFSIZ: be32
	nfulaCfgTimeout  = 4 // NFULA_CFG_TIMEOUT: be32, 1/100 s
	nfulaCfgQthresh  = 5 // NFULA_CFG_QTHRESH: be32

	nfulnlCfgCmdBind = 1 // NFULNL_CFG_CMD_BIND
	nfulnlCopyPacket = 2 // NFULNL_COPY_PACKET

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// nflogRcvbuf is the socket's receive buffer: each packet is a netlink
// message of about 400 bytes of buffer, so this holds some 40,000, or
// 0.2 s of a 200k packets/s flood while the reader is not scheduled.
const nflogRcvbuf = 16 << 20

// nflogSnaplen is how much of each packet the kernel copies: the IPv6
// and TCP headers with room to spare; a knock carries no payload.
const nflogSnaplen = 128

// NFLogCapture reads knock packets from a netfilter log group. Create it
// with NewNFLog, then call Run once.
type NFLogCapture struct {
	cfg   Config
	group uint16
	log   *slog.Logger
	fd    int
	dec   *decoder
	buf   []byte

	ifmu   sync.Mutex
	nl     *netlink.Handle // in the namespace NewNFLog was called in
	wanted map[uint32]bool // ifindex → captured, as far as looked up
	looked time.Time       // last full lookup

	ran                                  atomic.Bool
	closed                               atomic.Bool
	read, delivered, rejected, malformed atomic.Uint64
	dropped                              atomic.Uint64
}

// NewNFLog opens a netfilter log socket in the calling thread's network
// namespace and binds group to it. A group another program holds is an
// error that names the program.
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
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("sniff: nflog socket: %w", err)
	}
	c := &NFLogCapture{cfg: cfg, group: group, log: log, fd: fd,
		dec: newDecoderFor(filterSpec{span: cfg.Span}), buf: make([]byte, 1<<16), wanted: make(map[uint32]bool)}
	// The interfaces are looked up in this namespace, whichever
	// goroutine calls Run.
	if c.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sniff: netlink: %w", err)
	}
	// A larger socket buffer rides out bursts; what still overflows is
	// counted (ENOBUFS), never fatal.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, nflogRcvbuf)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		c.nl.Close()
		return nil, fmt.Errorf("sniff: nflog socket: %w", err)
	}
	if err := c.bind(); err != nil {
		unix.Close(fd)
		c.nl.Close()
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			if e := CheckNFLogGroup(group); e != nil {
				return nil, e
			}
			return nil, fmt.Errorf("sniff: nflog group %d is already bound by another program; set nflog-group to a free group", group)
		}
		return nil, fmt.Errorf("sniff: nflog group %d: %w", group, err)
	}
	return c, nil
}

// bind sends the one configuration message: bind the group, copy
// nflogSnaplen bytes of each packet, hand each packet over at once (queue
// threshold 1: latency over batching), and waits for its acknowledgement.
func (c *NFLogCapture) bind() error {
	var m []byte
	m = binary.NativeEndian.AppendUint32(m, 0) // length, set below
	m = binary.NativeEndian.AppendUint16(m, unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgConfig)
	m = binary.NativeEndian.AppendUint16(m, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	m = binary.NativeEndian.AppendUint32(m, 1) // sequence
	m = binary.NativeEndian.AppendUint32(m, 0) // port: the kernel's
	m = append(m, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	m = binary.BigEndian.AppendUint16(m, c.group)
	attr := func(typ uint16, data []byte) {
		m = binary.NativeEndian.AppendUint16(m, uint16(4+len(data)))
		m = binary.NativeEndian.AppendUint16(m, typ)
		m = append(m, data...)
		for len(m)%4 != 0 {
			m = append(m, 0)
		}
	}
	attr(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})
	attr(nfulaCfgMode, append(binary.BigEndian.AppendUint32(nil, nflogSnaplen), nfulnlCopyPacket, 0))
	attr(nfulaCfgQthresh, binary.BigEndian.AppendUint32(nil, 1))
	attr(nfulaCfgTimeout, binary.BigEndian.AppendUint32(nil, 0))
	attr(nfulaCfgNlbufsiz, binary.BigEndian.AppendUint32(nil, 1<<16))
	binary.NativeEndian.PutUint32(m, uint32(len(m)))
	if err := unix.Sendto(c.fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	// The acknowledgement; packet messages may come first once the
	// group is bound, and are dropped here.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Read(c.fd, c.buf)
		if err != nil {
			switch err {
			case unix.EAGAIN:
				unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}, 100)
				continue
			case unix.EINTR, unix.ENOBUFS:
				continue
			}
			return err
		}
		for b := c.buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ, seq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && seq == 1 && l >= unix.NLMSG_HDRLEN+4 {
				if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
					return unix.Errno(-e)
				}
				return nil
			}
			b = b[min(nlmsgAlign(l), len(b)):]
		}
	}
	return errors.New("no acknowledgement from the kernel")
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

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
	return c.Close()
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
	if c.ran.Load() || !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.nl.Close()
	return unix.Close(c.fd)
}

// Stats returns the counters: Read messages, Delivered knock packets,
// Rejected packets the decoder refused, Malformed messages without a
// packet, and Dropped: times the socket buffer overflowed (each loses
// one or more packets).
func (c *NFLogCapture) Stats() Stats {
	return Stats{Read: c.read.Load(), Delivered: c.delivered.Load(), Rejected: c.rejected.Load(),
		Malformed: c.malformed.Load(), Dropped: c.dropped.Load()}
}

// Run calls fn, from this goroutine, for each knock packet until ctx is
// done. fn must not keep p. Run can be called once; it closes the socket
// (which unbinds the group) when it returns, and returns nil when ctx
// ended it.
func (c *NFLogCapture) Run(ctx context.Context, fn func(p *Packet)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("sniff: Run called twice")
	}
	if c.closed.Load() {
		return errors.New("sniff: Run after Close")
	}
	defer unix.Close(c.fd)
	defer c.nl.Close()
	c.log.Info("capturing from nflog", "group", c.group, "ports", fmt.Sprintf("%d-%d", c.cfg.Span.Base, c.cfg.Span.Last()))
	pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	var p Packet
	for {
		n, err := unix.Read(c.fd, c.buf)
		switch {
		case err == nil:
			c.batch(c.buf[:n], &p, fn)
			continue
		case err == unix.ENOBUFS:
			c.dropped.Add(1) // the kernel could not queue some: counted, not fatal
			continue
		case err == unix.EAGAIN || err == unix.EINTR:
		default:
			return fmt.Errorf("sniff: nflog: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if _, err := unix.Poll(pfd, int(pollTimeout.Milliseconds())); err != nil && err != unix.EINTR {
			return fmt.Errorf("sniff: nflog: poll: %w", err)
		}
	}
}

// batch handles the netlink messages of one read.
func (c *NFLogCapture) batch(b []byte, p *Packet, fn func(*Packet)) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			c.malformed.Add(1)
			return
		}
		if binary.NativeEndian.Uint16(b[4:]) == unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket {
			c.packet(b[unix.NLMSG_HDRLEN:l], p, fn)
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
}

// packet handles one NFULNL_MSG_PACKET: an nfgenmsg, then attributes.
func (c *NFLogCapture) packet(m []byte, p *Packet, fn func(*Packet)) {
	c.read.Add(1)
	if len(m) < 4 {
		c.malformed.Add(1)
		return
	}
	var payload []byte
	var ifindex uint32
	var at time.Time
	for a := m[4:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a))
		if l < 4 || l > len(a) {
			c.malformed.Add(1)
			return
		}
		data := a[4:l]
		switch binary.NativeEndian.Uint16(a[2:]) & nlaTypeMask {
		case nfulaPayload:
			payload = data
		case nfulaIfindexIn:
			if len(data) == 4 {
				ifindex = binary.BigEndian.Uint32(data)
			}
		case nfulaTimestamp:
			if len(data) == 16 {
				at = time.Unix(int64(binary.BigEndian.Uint64(data)), int64(binary.BigEndian.Uint64(data[8:]))*1000)
			}
		}
		a = a[min(nlmsgAlign(l), len(a)):]
	}
	if payload == nil || ifindex == 0 {
		c.malformed.Add(1)
		return
	}
	if !c.dec.decode(payload, p) || p.Kind != Knock || !c.captured(ifindex) {
		c.rejected.Add(1)
		return
	}
	if at.IsZero() {
		at = time.Now()
	}
	p.Ifindex, p.Time = int(ifindex), at
	c.delivered.Add(1)
	fn(p)
}

// captured reports whether packets arriving on ifindex are to be read,
// by the capture's one interface rule (Config.Knocks). Answers are cached and looked up
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
	ls, _, err := links(c.nl)
	if err != nil {
		return false
	}
	clear(c.wanted)
	for _, l := range ls {
		c.wanted[uint32(l.Index)] = c.cfg.Knocks(l)
	}
	return c.wanted[ifindex]
}
