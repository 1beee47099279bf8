// Package trigger implements port triggering for cipherknockd: when an
// inside host opens a connection to a chosen remote port (the trigger), the
// daemon lets that remote server connect back to a chosen port of that
// inside host for a while, without anyone configuring inside addresses.
// Example: an inside host connects to a mail server's tcp/25; the mail
// server may then connect to tcp/113 (ident) of that host for 60 seconds.
//
// Port triggering grows beside knocking and shares its daemon, its
// configuration file, its firewall backends and the rule that a door
// closes in the kernel on time (SPEC.md §11: grants expire without the
// receiver's help, and granting again replaces the time left). It is not
// part of the knock protocol, so SPEC.md has no section of its own for it.
//
// The package has two parts:
//
//   - Rule: one [trigger NAME] section of the daemon's configuration
//     file, as package config parses it.
//   - Engine: given each outbound connection attempt the daemon observes
//     (a TCP SYN or a UDP datagram from an inside host to a remote one),
//     decides which inbound doors to open, for how long, and what happens
//     when two inside hosts trigger the same inbound port. It keeps its
//     mappings in memory with their expiry; carrying a decision out (a
//     firewall grant, or a DNAT forward with firewall.NAT) is the
//     caller's job, and the kernel removes both on time by itself.
//
// # Configuration
//
//	[trigger ident]
//	outbound = tcp/25            # what fires it: PROTO/PORT or PROTO/FROM-TO
//	inbound = tcp/113            # what it opens on the inside host
//	duration = 60                # seconds (or 1m, 90s), 1..86400
//	inside = eth1                # optional: interfaces the trigger is seen on
//	outside = eth0               # optional: interfaces the inbound may arrive on
//	on-conflict = refuse         # refuse (default) | last-wins
//
// # Gateways that do NAT
//
// Behind a NAT gateway every inside host shares the gateway's public
// address, so an inbound port from one remote server can lead to one
// inside host only. A mapping is keyed by (remote address, inbound range);
// when a second inside host fires a trigger whose mapping is held by
// another, on-conflict decides: refuse keeps the first host's mapping
// until it expires (the decision says who holds it), last-wins moves the
// mapping to the newcomer (the decision says whom it was taken from).
// Inbound ranges of different triggers must be equal or disjoint, so that
// a mapping moves as a whole. On a NAT gateway every trigger must name its
// inside interfaces: otherwise a host on the outside could forge a packet
// from an inside address and have a port of that inside host opened to
// itself.
//
// Without NAT (a host protecting itself, or a routing gateway whose inside
// hosts have their own addresses), mappings are keyed by the inside host
// too, so triggers of different hosts never conflict.
package trigger
