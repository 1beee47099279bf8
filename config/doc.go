// Package policy reads the daemon's configuration file and decides, for an
// opened knock, whether its user may have what it asks for (SPEC.md §11:
// what a receiver does with an opened knock).
//
// The file is line-oriented INI in the style of WireGuard and systemd units:
// '#' comments (at the start of a line or after white space), a [daemon]
// section, one [user NAME] section per user and "key = value" lines. Every
// error names the file and line it comes from, all errors are reported at
// once, and no error ever repeats a key's value.
//
// [daemon] keys (durations are seconds, bare or as "90s", "1m"):
//
//	realm               required; 1..64 of [A-Za-z0-9._-], bound into every tag
//	realm-key           ck-realm-... inline (file must be mode 0600), or
//	realm-key-file      a file holding it (mode 0600); optional
//	span-base           first knock port, 1024..55296 (20480)
//	interfaces          comma-separated names (every interface with an address);
//	                    a name that does not exist is an error unless
//	wait-for-interfaces yes: capture it once it appears (no)
//	loopback            capture on loopback too (false)
//	firewall            auto | iptables | nftables | command (auto)
//	firewall-name       base name of the kernel objects: the nftables table,
//	                    the iptables chain (upper-cased) and ipset sets (+4, +6)
//	                    (cipherknock; the demo uses cipherknock-demo)
//	firewall-owner      nftables table flags owner and persist where the
//	                    kernel has them, so a ruleset flush leaves it (yes)
//	firewall-check-interval  seconds between checks of the firewall objects,
//	                    1..60 (2); notifications are heard at once
//	command-open        with firewall = command: the program and arguments
//	command-close       that open and close a grant, run without a shell;
//	command-open6       placeholders {addr} {family} {ipver} {proto} {port}
//	command-close6      {duration} {user}; double quotes group words; the
//	                    *6 ones, if set, serve IPv6 grants
//	command-timeout     seconds a command may run, 1..300 (10)
//	command-drops       yes: the host's ruleset drops the knock span and the
//	                    protected ports, which the command backend cannot;
//	                    firewall = command is refused without it (no)
//	window              freshness window, 5..600 (60)
//	assembly-timeout    time a knock may take to arrive, 1..60 (10)
//	max-sources         knocks in progress tracked at once, 1024..4194304
//	                    (65536); each takes 128 bytes, allocated at start
//	replay-cache-size   accepted knocks remembered for 10 minutes; when full,
//	                    new knocks are refused; with n users, each has
//	                    size/(2n) entries reserved and the other half is
//	                    shared (65536)
//	state-dir           replay cache and command journal (/var/lib/cipherknockd)
//	control-socket      (/run/cipherknockd/control.sock), mode 0600
//	log-format          text | json (text)
//	log-level           debug | info | warn | error (info)
//	reject-log-interval seconds between summaries of rejected knocks (10)
//	capture             how knocks are seen (afpacket; restart to change):
//	                    afpacket  a packet socket below the firewall
//	                              (CAP_NET_RAW);
//	                    nflog     the daemon's firewall objects log the
//	                              span to an NFLOG group before dropping
//	                              it, and the daemon reads the group
//	                              (CAP_NET_ADMIN only, with nftables);
//	                    log       kernel log lines of a LOG / "log prefix"
//	                              rule (ours with nftables and iptables;
//	                              the appliance's own with command)
//	nflog-group         with nflog: the group, 1..65535 (100); one
//	                    listener per group, so not ulogd's
//	log-source          with log: kmsg (/dev/kmsg), - (standard input, a
//	                    stream piped in) or a file followed across
//	                    rotation (kmsg)
//	log-prefix          with log: the rule's prefix, 1..28 of
//	                    [A-Za-z0-9_.:-], written with a space after it
//	                    (cipherknock:)
//
// [user NAME] keys:
//
//	index               required, 0..65535, unique
//	key | key-file      required, exactly one: ck-key-... or a mode-0600 file
//	ports               required: tcp/22, udp/51820, tcp/8000-8100 (outside the span)
//	max-duration        longest grant, 1..65535; longer knocks are refused,
//	                    not shortened (3600)
//	sources             networks the knock may come from (0.0.0.0/0, ::/0)
//	allow-address       networks other than the knock's source that an
//	                    explicit-address knock may open (none); the old
//	                    allow-other-address = true is refused with a hint
//
// Relative paths are taken from the configuration file's directory.
//
// # Port triggering
//
// [trigger NAME] sections (package trigger parses each one) open an
// inbound port when an inside host connects out; a file with triggers
// needs no [user] section. Their [daemon] keys:
//
//	trigger-mode         host: triggers open ports of this host, through the
//	                     grant backend, and their inbound ports are closed
//	                     like the users' ports; nat: this is a gateway that
//	                     masquerades its inside hosts, and a trigger forwards
//	                     the gateway's port to the inside host that fired it
//	                     (host); the forwards are nftables objects of their
//	                     own (firewall/nat.go), whatever the firewall key says
//	trigger-max-mappings doors open by triggers at once, 16..1048576 (4096)
//
// [trigger NAME] keys:
//
//	outbound            required: what fires it, tcp/25 or udp/6000-6010
//	inbound             required: what it opens, at most 1024 ports; the
//	                    ranges of two triggers are equal or disjoint
//	duration            required: seconds the door stays open, 1..86400
//	inside              interfaces the trigger is seen on (a gateway's inside
//	                    interfaces, a host's outgoing ones); required with nat
//	outside             with nat only: interfaces forwarded connections may
//	                    arrive on, the same for every trigger (any)
//	on-conflict         with nat, when a second inside host fires a trigger
//	                    for the port and remote server another holds:
//	                    refuse | last-wins (refuse); each case is logged
//
// Trigger ports lie outside the knock span.
package config
