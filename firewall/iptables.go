package firewall

// The iptables backend: static rules installed once through the iptables
// and ip6tables commands, and grants as entries with kernel timeouts in
// two ipset sets, added over netlink (a process per grant would cost
// milliseconds; a netlink message costs about ten microseconds, see
// BenchmarkIPTablesGrant). Grants expire in the kernel and a repeated
// grant replaces the time left, as SPEC.md §11 requires.
//
// Layout, the same for iptables (set cipherknock4) and ip6tables (set
// cipherknock6), in the filter table:
//
//	-A INPUT -j CIPHERKNOCK                        (first rule of INPUT, exactly once)
//	-A CIPHERKNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	-A CIPHERKNOCK -i lo -j RETURN
//	-A CIPHERKNOCK -m set --match-set cipherknock4 src,dst -j ACCEPT
//	-A CIPHERKNOCK -p tcp -m tcp --dport 22 -j DROP  (one per protected range)
//
// Why in this order: the conntrack rule comes first so that a session
// opened during a grant keeps working after the grant expires (a grant
// opens a door for new connections; it does not cut existing ones), and
// because most packets of a busy host belong to established flows, it
// also makes them leave the chain after one match. Packets on the
// loopback interface go back to the host's rules untouched, so local
// clients of a protected service keep working. The set rule accepts
// new connections from granted address/protocol/port triples. The drops
// close the protected ports to everyone else, whatever the rest of the
// host's ruleset does. Packets that match none of these return to INPUT
// and meet the host's own rules. The jump sits first in INPUT so that no
// host rule accepts a protected port before the chain has seen it.
//
// DROP never answers, so ports in Protect are closed silently: to drop
// the knock span as SPEC.md §11 and §14 require, the daemon lists the span
// (tcp and udp) in Options.Protect. A knock packet is never ESTABLISHED
// or RELATED: it is dropped as NEW, so conntrack keeps no entry for it and
// the first rule cannot let one through.
//
// The sets must exist before the rules that name them, and can only be
// destroyed once those rules are gone: Setup creates sets first, Teardown
// destroys them last.
//
// The code is in iptables_linux.go and ipset_linux.go.

// Names of the objects the iptables backend owns with the default
// Options.Name; another name N gives chain upper(N) and sets N4 and N6.
const (
	IPTablesChain = "CIPHERKNOCK"  // chain in the filter table of iptables and ip6tables
	IPTablesSet4  = "cipherknock4" // ipset set of IPv4 grants, hash:ip,port
	IPTablesSet6  = "cipherknock6" // ipset set of IPv6 grants, hash:ip,port
)
