package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
)

// finding is one thing about this host that would lock users out or
// expose a protected port: an error stops check-config and the daemon,
// a warning is reported.
type finding struct {
	Error bool   `json:"error"`
	Line  int    `json:"line,omitempty"`
	Msg   string `json:"message"`
}

func (f finding) String(file string) string {
	if f.Error {
		return fmt.Sprintf("%s:%d: %s", file, f.Line, f.Msg)
	}
	return fmt.Sprintf("%s: warning: %s", file, f.Msg)
}

// hostFindings checks cfg against this host: the interfaces it names, the
// command backend's drops, the host's input ruleset next to the backend
// (the grant mark; what would be open without cipherknockd's objects),
// sockets listening in the knock span, and forwarding, which the input
// hook does not see. backend is the kernel backend in use or to be
// used ("" when unknown).
func hostFindings(cfg *config.Config, backend string) []finding {
	var fs []finding
	if !cfg.WaitInterfaces {
		for _, name := range cfg.Interfaces {
			if _, err := net.InterfaceByName(name); err != nil {
				fs = append(fs, finding{Error: true, Line: cfg.InterfacesLine, Msg: fmt.Sprintf(
					"interfaces: no interface %q on this host (it has %s): fix the name, or set wait-for-interfaces = yes to capture it once it appears",
					name, strings.Join(ifaceNames(), ", "))})
			}
		}
	}
	if cfg.Firewall == "command" && !cfg.CommandDrops {
		fs = append(fs, finding{Error: true, Line: cfg.FirewallLine, Msg: fmt.Sprintf(
			"firewall = command drops neither the knock span nor the protected ports, so they answer with RST and ICMP: make the host's ruleset drop %s silently and set command-drops = yes, or use firewall = nftables or iptables",
			protectWords(cfg))})
	}
	if backend == "nftables" || backend == "iptables" {
		h, err := firewall.InspectHost(0, cfg.FirewallName, 0)
		if err == nil {
			if backend == "nftables" {
				for _, c := range h.DropChains {
					if !c.AcceptsMark {
						fs = append(fs, finding{Msg: fmt.Sprintf(
							"host chain %s %s %s drops input by default and has no accept for the grant mark: knocks are accepted but the port stays closed; add: %s",
							c.Family, c.Table, c.Chain, c.MarkRule(0))})
					}
				}
			}
			if backend == "iptables" {
				for _, c := range h.DropChains {
					if !c.IPTables {
						fs = append(fs, finding{Msg: fmt.Sprintf(
							"host chain %s %s %s drops input by default, and the iptables backend's accepts cannot get granted packets through another table's chain: use firewall = nftables (whose grant mark the chain can accept), or accept the granted ports there",
							c.Family, c.Table, c.Chain)})
					}
				}
			}
			if len(h.DropChains) == 0 && !h.IPTablesDrop {
				fs = append(fs, finding{Msg: fmt.Sprintf(
					"fails open if removed: the host's own firewall accepts input by default, so without cipherknockd's objects (after cipherknockd remove, or a flush while the daemon is down on a kernel without the nftables owner flag) %s would answer anyone; give the host's input chain a default drop, or drop these ports in it",
					protectWords(cfg))})
			}
		}
	}
	for _, l := range spanListeners(cfg) {
		fs = append(fs, finding{Msg: fmt.Sprintf(
			"a local socket listens in the knock span (%s): knocks to it are dropped before it sees them, and it cannot be reached from outside; move it out of %d-%d or move the span (span-base)",
			l, cfg.Span.Base, cfg.Span.Last())})
	}
	if fwd := forwarding(); fwd != "" {
		fs = append(fs, finding{Msg: fmt.Sprintf(
			"%s: services reached through DNAT or forwarding (containers, port forwards) pass the forward hook, which cipherknockd does not filter; its grants and drops protect only this host's own services",
			fwd)})
	}
	return fs
}

func ifaceNames() []string {
	ifs, _ := net.Interfaces()
	var s []string
	for _, i := range ifs {
		s = append(s, i.Name)
	}
	return s
}

func protectWords(cfg *config.Config) string {
	var s []string
	for _, r := range cfg.Protect() {
		s = append(s, r.String())
	}
	s = append(s, fmt.Sprintf("tcp and udp %d-%d (the knock span)", cfg.Span.Base, cfg.Span.Last()))
	return strings.Join(s, ", ")
}

// spanListeners lists the local TCP listeners and bound UDP sockets whose
// port is in the span (SPEC.md §9.2), from /proc/net.
func spanListeners(cfg *config.Config) []string {
	var out []string
	for _, f := range []struct{ file, proto string }{
		{"/proc/net/tcp", "tcp"}, {"/proc/net/tcp6", "tcp"}, {"/proc/net/udp", "udp"}, {"/proc/net/udp6", "udp"},
	} {
		fh, err := os.Open(f.file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 4 {
				continue
			}
			_, portHex, ok := strings.Cut(fl[1], ":")
			port, err := strconv.ParseUint(portHex, 16, 16)
			if !ok || err != nil {
				continue
			}
			if f.proto == "tcp" && fl[3] != "0A" { // LISTEN
				continue
			}
			if uint16(port) >= cfg.Span.Base && uint16(port) <= cfg.Span.Last() {
				s := fmt.Sprintf("%s/%d", f.proto, port)
				if !contains(out, s) {
					out = append(out, s)
				}
			}
		}
		fh.Close()
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// forwarding says whether this host forwards packets, or "".
func forwarding() string {
	var on []string
	for _, f := range []struct{ path, what string }{
		{"/proc/sys/net/ipv4/ip_forward", "IPv4"},
		{"/proc/sys/net/ipv6/conf/all/forwarding", "IPv6"},
	} {
		if b, err := os.ReadFile(f.path); err == nil && strings.TrimSpace(string(b)) == "1" {
			on = append(on, f.what)
		}
	}
	if len(on) == 0 {
		return ""
	}
	return "this host forwards " + strings.Join(on, " and ") + " packets"
}

// kernelBackend names the kernel backend cfg resolves to here, without
// changing anything but a probe table.
func kernelBackend(cfg *config.Config) string {
	switch cfg.Firewall {
	case "nftables", "iptables":
		return cfg.Firewall
	case "auto", "":
		if firewall.ProbeNFTables(0) == nil {
			return "nftables"
		}
		return "iptables"
	}
	return ""
}
