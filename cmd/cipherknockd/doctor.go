package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/sniff"
)

type doctorCmd struct {
	Config string `short:"c" placeholder:"FILE" help:"Configuration file whose interfaces and firewall to check (default: the defaults)."`
	JSON   bool   `name:"json" help:"Print the report as JSON."`
}

// Report is what cipherknockd doctor finds on this host.
type Report struct {
	Config       string      `json:"config,omitempty"`
	Capabilities []Cap       `json:"capabilities"`
	Interfaces   []Interface `json:"interfaces"`
	NFTables     Check       `json:"nftables"`
	IPTables     Check       `json:"iptables"`
	Firewall     string      `json:"firewall"` // the configured value
	Backend      string      `json:"backend"`  // what it resolves to here, "" if none
	Reason       string      `json:"reason"`
	Clock        Clock       `json:"clock"`
	Capture      string      `json:"capture"`  // the configured mode
	Captures     []Mode      `json:"captures"` // which modes work here
	// Findings are what would lock users out or expose a port here.
	Findings []finding `json:"findings"`
}

// Mode is one capture mode and whether it works on this host.
type Mode struct {
	Mode   string `json:"mode"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Cap is one capability the daemon needs.
type Cap struct {
	Name string `json:"name"`
	Have bool   `json:"have"`
	For  string `json:"for"`
}

// Interface is one network interface and whether capture would use it.
type Interface struct {
	Name    string   `json:"name"`
	Up      bool     `json:"up"`
	Addrs   []string `json:"addrs"`
	Capture bool     `json:"capture"`
	// Triggers: the capture reads the trigger ports' packets here.
	Triggers bool `json:"triggers,omitempty"`
}

// Check is the outcome of one probe.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Clock is the kernel's view of time synchronisation.
type Clock struct {
	Synced   bool   `json:"synced"`
	MaxError int64  `json:"max_error_us"`
	Detail   string `json:"detail"`
}

const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// effectiveCaps parses the CapEff line of /proc/PID/status.
func effectiveCaps(status string) (uint64, error) {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff line")
}

// Run prints what the daemon would find here: capabilities, interfaces,
// firewall support and the clock. It changes nothing but a throwaway
// nftables table that the probe creates and deletes in one batch.
func (d *doctorCmd) Run(e *env) error {
	var cfg *config.Config
	if d.Config != "" {
		c, err := config.Load(d.Config)
		if err != nil {
			return err
		}
		cfg = c
	}
	r := doctor(cfg)
	if d.JSON {
		return writeJSON(e.stdout, r)
	}
	r.print(e.stdout)
	return nil
}

func doctor(cfg *config.Config) *Report {
	r := &Report{Firewall: config.DefaultFirewall}
	if cfg != nil {
		r.Config, r.Firewall = cfg.File, cfg.Firewall
	}

	status, err := os.ReadFile("/proc/self/status")
	var caps uint64
	if err == nil {
		caps, err = effectiveCaps(string(status))
	}
	for _, c := range []struct {
		bit           uint
		name, purpose string
	}{
		{capNetRaw, "CAP_NET_RAW", "capture knocks with AF_PACKET"},
		{capNetAdmin, "CAP_NET_ADMIN", "change the firewall"},
	} {
		r.Capabilities = append(r.Capabilities, Cap{Name: c.name, Have: err == nil && caps&(1<<c.bit) != 0, For: c.purpose})
	}

	r.Interfaces = interfaces(cfg)

	if err := firewall.ProbeNFTables(0); err != nil {
		r.NFTables = Check{Detail: err.Error()}
	} else {
		r.NFTables = Check{OK: true, Detail: "a table can be created and deleted"}
	}
	r.IPTables = iptablesCheck()

	switch r.Firewall {
	case "auto":
		b, reason, err := firewall.Auto(firewall.Options{})
		if err != nil {
			r.Reason = err.Error()
		} else {
			r.Backend, r.Reason = b.Name(), reason
			if c, ok := b.(io.Closer); ok {
				c.Close()
			}
		}
	case "nftables":
		r.Backend, r.Reason = pick("nftables", r.NFTables)
	case "iptables":
		r.Backend, r.Reason = pick("iptables", r.IPTables)
	case "command":
		r.Backend, r.Reason = "command", "configured; the templates were checked when the file was read"
		if _, err := firewall.NewCommand(cfg.CommandConfig(nil), firewall.Options{}); err != nil {
			r.Backend, r.Reason = "", err.Error()
		}
	}
	r.Clock = clock()
	r.Capture, r.Captures = captureModes(cfg)
	c := cfg
	if c == nil {
		c, _ = config.Parse("(defaults)", []byte("[daemon]\nrealm = defaults\n"), "", 0o600, config.OS)
	}
	if c != nil {
		r.Findings = hostFindings(c, r.Backend)
	}
	if r.Findings == nil {
		r.Findings = []finding{}
	}
	return r
}

// captureModes tries each capture mode the way the daemon would start it,
// changing nothing: a packet socket, a bind of the NFLOG group, and
// /dev/kmsg (or the configured log file).
func captureModes(cfg *config.Config) (string, []Mode) {
	mode, group, source := config.DefaultCapture, uint16(config.DefaultNFLogGroup), config.DefaultLogSource
	if cfg != nil {
		mode, group, source = cfg.Capture, cfg.NFLogGroup, cfg.LogSource
	}
	var out []Mode
	m := Mode{Mode: "afpacket", OK: true, Detail: "a packet socket opens (needs CAP_NET_RAW)"}
	if err := sniff.ProbePacket(); err != nil {
		m = Mode{Mode: "afpacket", Detail: err.Error()}
	}
	out = append(out, m)
	m = Mode{Mode: "nflog", OK: true, Detail: fmt.Sprintf("group %d binds (needs CAP_NET_ADMIN; a firewall backend of ours to log to it)", group)}
	if err := sniff.ProbeNFLog(group); err != nil {
		m = Mode{Mode: "nflog", Detail: err.Error()}
	}
	out = append(out, m)
	m = Mode{Mode: "log", OK: true}
	switch source {
	case sniff.LogKmsg:
		note, err := sniff.ProbeKmsg()
		switch {
		case err != nil:
			m = Mode{Mode: "log", Detail: err.Error()}
		case note != "":
			m.Detail = "/dev/kmsg opens; " + note
		default:
			m.Detail = "/dev/kmsg opens"
		}
	case sniff.LogStdin:
		m.Detail = "lines from standard input"
	default:
		if f, err := os.Open(source); err != nil {
			m = Mode{Mode: "log", Detail: err.Error()}
		} else {
			f.Close()
			m.Detail = source + " opens"
		}
	}
	out = append(out, m)
	return mode, out
}

func pick(name string, c Check) (string, string) {
	if c.OK {
		return name, "configured, and it works here"
	}
	return "", "configured, but it does not work here: " + c.Detail
}

// iptablesCheck looks for what the iptables backend needs: the commands,
// and ipset in the kernel (NewIPTables checks both and reads the filter
// table, changing nothing).
func iptablesCheck() Check {
	var missing []string
	for _, n := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Check{Detail: "not found: " + strings.Join(missing, ", ")}
	}
	b, err := firewall.NewIPTables(firewall.Options{})
	if err != nil {
		return Check{Detail: err.Error()}
	}
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
	return Check{OK: true, Detail: "iptables, ip6tables and ipset work"}
}

// interfaces lists the interfaces and marks those the capture would use,
// by the capture's own rule (sniff.Config.Knocks and TriggersOn).
func interfaces(cfg *config.Config) []Interface {
	ls, err := sniff.Links()
	if err != nil {
		return nil
	}
	var sc sniff.Config
	if cfg != nil {
		sc = cfg.SniffConfig()
	}
	out := make([]Interface, 0, len(ls))
	for _, l := range ls {
		it := Interface{Name: l.Name, Up: l.Up, Addrs: []string{}, Capture: sc.Knocks(l), Triggers: sc.TriggersOn(l)}
		for _, p := range l.Addrs {
			it.Addrs = append(it.Addrs, p.String())
		}
		out = append(out, it)
	}
	return out
}

// clock asks the kernel whether its clock is synchronised (adjtimex with
// no change; STA_UNSYNC set means no time service disciplines it).
func clock() Clock {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Clock{Detail: "adjtimex: " + err.Error()}
	}
	c := Clock{MaxError: tx.Maxerror}
	c.Synced = state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
	if c.Synced {
		c.Detail = fmt.Sprintf("synchronised (estimated error up to %d ms)", tx.Maxerror/1000)
	} else {
		c.Detail = "not synchronised: run an NTP client (chrony, systemd-timesyncd)"
	}
	return c
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func (r *Report) print(w io.Writer) {
	if r.Config != "" {
		fmt.Fprintf(w, "configuration: %s\n", r.Config)
	}
	fmt.Fprintln(w, "capabilities:")
	missing := false
	for _, c := range r.Capabilities {
		fmt.Fprintf(w, "  %-14s %-3s  (to %s)\n", c.Name, yes(c.Have), c.For)
		missing = missing || !c.Have
	}
	if missing {
		fmt.Fprintln(w, "  the daemon needs both: run it as root or grant them (systemd: AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN)")
	}
	fmt.Fprintln(w, "interfaces:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, i := range r.Interfaces {
		state := "down"
		if i.Up {
			state = "up"
		}
		capture := "-"
		switch {
		case i.Capture && i.Triggers:
			capture = "capture,triggers"
		case i.Capture:
			capture = "capture"
		case i.Triggers:
			capture = "triggers"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", i.Name, state, capture, strings.Join(i.Addrs, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "nftables:  %s  %s\n", yes(r.NFTables.OK), r.NFTables.Detail)
	fmt.Fprintf(w, "iptables:  %s  %s\n", yes(r.IPTables.OK), r.IPTables.Detail)
	backend := r.Backend
	if backend == "" {
		backend = "none"
	}
	fmt.Fprintf(w, "firewall = %s: %s (%s)\n", r.Firewall, backend, r.Reason)
	for _, m := range r.Captures {
		mark := ""
		if m.Mode == r.Capture {
			mark = " (configured)"
		}
		fmt.Fprintf(w, "capture %s%s: %s  %s\n", m.Mode, mark, yes(m.OK), m.Detail)
	}
	fmt.Fprintf(w, "clock:     %s  %s\n", yes(r.Clock.Synced), r.Clock.Detail)
	fmt.Fprintln(w, "  knocks carry the client's time: the two clocks must agree within the window (default ±60 s)")
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "host:      nothing found that would lock users out or expose a protected port")
		return
	}
	fmt.Fprintln(w, "host:")
	for _, f := range r.Findings {
		kind := "warning"
		if f.Error {
			kind = "ERROR"
		}
		fmt.Fprintf(w, "  %s: %s\n", kind, f.Msg)
	}
}
