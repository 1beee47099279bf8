package firewall

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	vnetns "github.com/vishvananda/netns"

	"github.com/cipherknock/cipherknock/internal/namespace"
)

// HostInput is what the host's own ruleset does on the input hook, as far
// as the daemon can tell from its nftables base chains (iptables-nft's
// included) and iptables' INPUT policy.
type HostInput struct {
	// DropChains are the host's input base chains whose policy is drop,
	// by "family table chain", with whether each accepts the grant mark.
	DropChains []HostChain
	// IPTablesDrop: iptables' INPUT policy is DROP.
	IPTablesDrop bool
}

// HostChain is one input base chain of the host that drops by default.
type HostChain struct {
	Family, Table, Chain string
	AcceptsMark          bool
	IPTables             bool // made by iptables-nft
}

// InspectHost reads the host's input ruleset in the namespace netns (0:
// ours), nftables and iptables alike, leaving out the objects named name
// (ours). It changes nothing.
func InspectHost(netns int, name string, mark uint32) (HostInput, error) {
	if mark == 0 {
		mark = DefaultMark
	}
	if name == "" {
		name = DefaultName
	}
	var h HostInput
	var opts []nftables.ConnOption
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return h, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return h, err
	}
	for _, ch := range chains {
		if ch.Table.Name == name || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput ||
			ch.Type != nftables.ChainTypeFilter || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		hc := HostChain{Family: familyName(ch.Table.Family), Table: ch.Table.Name, Chain: ch.Name}
		rules, _ := c.GetRules(ch.Table, ch)
		for _, r := range rules {
			m, ipt := acceptsMark(r.Exprs, mark)
			hc.AcceptsMark = hc.AcceptsMark || m
			hc.IPTables = hc.IPTables || ipt
		}
		if ch.Table.Name == "filter" && ch.Name == "INPUT" {
			hc.IPTables = true
		}
		h.DropChains = append(h.DropChains, hc)
	}
	// iptables, like the nftables socket, looks at netns: a child
	// process starts in the network namespace of the thread that forks it.
	var out []byte
	listInput := func() (err error) {
		out, err = exec.Command("iptables", "-S", "INPUT").Output()
		return err
	}
	if netns != 0 {
		err = namespace.Do(vnetns.NsHandle(netns), listInput)
	} else {
		err = listInput()
	}
	if err == nil && strings.Contains(string(out), "-P INPUT DROP") {
		h.IPTablesDrop = true
		if !iptablesIsNFT() {
			// iptables-legacy's INPUT is not an nftables chain: look at
			// its rules as iptables prints them.
			want := fmt.Sprintf("-m mark --mark %#x/%#x -j ACCEPT", mark, mark)
			h.DropChains = append(h.DropChains, HostChain{Family: "ip", Table: "filter", Chain: "INPUT", IPTables: true,
				AcceptsMark: strings.Contains(string(out), want)})
		}
	}
	return h, nil
}

// acceptsMark reports whether a rule accepts packets carrying mark (a
// meta mark load compared, directly or under a mask, with a value that
// has the bit, and an accept verdict; or iptables' mark match and
// accept), and whether it is an iptables-nft rule.
func acceptsMark(es []expr.Any, mark uint32) (ok, ipt bool) {
	var loads, accept, bit, match bool
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Meta:
			if x.Key == expr.MetaKeyMARK && !x.SourceRegister {
				loads = true
			}
		case *expr.Bitwise:
			if len(x.Mask) == 4 && binary.NativeEndian.Uint32(x.Mask)&mark != 0 {
				bit = true
			}
		case *expr.Cmp:
			if len(x.Data) == 4 && x.Op == expr.CmpOpEq && binary.NativeEndian.Uint32(x.Data)&mark != 0 {
				bit = true
			}
		case *expr.Match:
			ipt = true
			if x.Name == "mark" {
				match = true
			}
		case *expr.Target:
			ipt = true
		case *expr.Verdict:
			accept = x.Kind == expr.VerdictAccept
		}
	}
	return accept && (loads && bit || match), ipt
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprint(f)
}

// MarkRule is the rule a host chain that drops by default needs to let
// granted packets in, in the host's own syntax.
func (c HostChain) MarkRule(mark uint32) string {
	if mark == 0 {
		mark = DefaultMark
	}
	if c.IPTables {
		cmd := "iptables"
		if c.Family == "ip6" {
			cmd = "ip6tables"
		}
		return fmt.Sprintf("%s -I %s -m mark --mark %#x/%#x -j ACCEPT", cmd, c.Chain, mark, mark)
	}
	return fmt.Sprintf("nft insert rule %s %s %s meta mark and %#x == %#x accept", c.Family, c.Table, c.Chain, mark, mark)
}
