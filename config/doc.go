// Package config owns the daemon's configuration file: it parses the
// [daemon], [user NAME] and [trigger NAME] sections and hands each
// component its plain options (the realm and window of SPEC.md §4.3 and
// §7.1, the span base of §9.2, the users that package policy judges
// knocks against under §11, the firewall's and the capture's settings,
// the trigger rules).
//
// The file is line-oriented INI in the style of WireGuard and systemd units:
// '#' comments (at the start of a line or after white space), a [daemon]
// section, one [user NAME] section per user and "key = value" lines, UTF-8
// with LF or CRLF line ends and an optional byte-order mark (internal/lex,
// which profile files share). Every error names the file and line it comes
// from, all errors are reported at once, and no error ever repeats a key's
// value.
//
// One table (keys.go) says for each [daemon] key how it is read, its
// default, and whether a reload may change it; RestartOnly reads it for
// the daemon's reload. The rules that several keys share live in rules.go:
// names (the command backend's {user} rule), interface lists (the
// kernel's), argument vectors (firewall.SplitCommand, checked as the
// command backend will) and port ranges (package ports).
//
// The components get their own options from a Config (components.go):
// FirewallOptions, CommandConfig and FirewallLog for the backends,
// SniffConfig and LogCaptureConfig for the capture, Protected for what
// stays closed; none of them reads a Config.
//
// [daemon] keys (durations are seconds, bare or as "90s", "1m"; [R]: a
// reload keeps the old value, with a warning, and a restart applies it):
//
//	realm               required; 1..64 of [A-Za-z0-9._-], bound into every tag
//	realm-key           ck-realm-... inline (file must be mode 0600), or
//	realm-key-file      a file holding it (mode 0600); optional
//	span-base           [R] first knock port, 1024..55296 (20480)
//	interfaces          [R] comma-separated names, 1..15 bytes without / or :
//	                    (every interface with an address);
//	                    a name that does not exist is an error unless
//	wait-for-interfaces [R] yes: capture it once it appears (no)
//	loopback            [R] capture on loopback too (false)
//	firewall            [R] auto | iptables | nftables | command (auto)
//	firewall-name       [R] base name of the kernel objects: the nftables table,
//	                    the iptables chain (upper-cased) and ipset sets (+4, +6)
//	                    (cipherknock; the demo uses cipherknock-demo)
//	firewall-owner      [R] nftables table flags owner and persist where the
//	                    kernel has them, so a ruleset flush leaves it (yes)
//	firewall-check-interval  [R] seconds between checks of the firewall objects,
//	                    1..60 (2); notifications are heard at once
//	command-open        [R] with firewall = command: the program and arguments
//	command-close       [R] that open and close a grant, run without a shell;
//	command-open6       [R] placeholders {addr} {family} {ipver} {proto} {port}
//	command-close6      [R] {duration} {user}; words split at blanks, '...'
//	                    literal, "..." with \" and \\ (firewall.SplitCommand);
//	                    the program is looked up in PATH and shells are
//	                    refused, as the backend will; the *6 ones, if set,
//	                    serve IPv6 grants
//	command-timeout     [R] seconds a command may run, 1..300 (10)
//	command-drops       [R] yes: the host's ruleset drops the knock span and the
//	                    protected ports, which the command backend cannot;
//	                    firewall = command is refused without it (no)
//	window              freshness window, 5..600 (60)
//	assembly-timeout    time a knock may take to arrive, 1..60 (10)
//	max-sources         [R] knocks in progress tracked at once, 1024..4194304
//	                    (65536); each takes about 424 bytes (daemon.SlotSize),
//	                    allocated at start
//	replay-cache-size   [R] accepted knocks remembered for 10 minutes; when full,
//	                    new knocks are refused; with n users, each has
//	                    size/(2n) entries reserved and the other half is
//	                    shared (65536)
//	state-dir           [R] replay cache and command journal (/var/lib/cipherknockd)
//	control-socket      [R] (/run/cipherknockd/control.sock), mode 0600
//	log-format          [R] text | json (text)
//	log-level           debug | info | warn | error (info)
//	reject-log-interval [R] seconds between summaries of rejected knocks (10)
//	capture             [R] how knocks are seen (afpacket; restart to change):
//	                    afpacket  a packet socket below the firewall
//	                              (CAP_NET_RAW);
//	                    nflog     the daemon's firewall objects log the
//	                              span to an NFLOG group before dropping
//	                              it, and the daemon reads the group
//	                              (CAP_NET_ADMIN only, with nftables);
//	                    log       kernel log lines of a LOG / "log prefix"
//	                              rule (ours with nftables and iptables;
//	                              the appliance's own with command)
//	nflog-group         [R] with nflog: the group, 1..65535 (100); one
//	                    listener per group, so not ulogd's
//	log-source          [R] with log: kmsg (/dev/kmsg), - (standard input, a
//	                    stream piped in) or a file followed across
//	                    rotation (kmsg)
//	log-prefix          [R] with log: the rule's prefix, 1..28 of
//	                    [A-Za-z0-9_.:-], written with a space after it
//	                    (cipherknock:)
//
// A user's NAME, and a trigger's, is letters, digits and ._@- starting with
// a letter, a digit or _ (the command backend's {user}), at most 64 bytes; "trigger@"
// starts no user's name: a host trigger's grants are made for
// trigger@NAME, so a trigger's name has at most 56 bytes.
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
// [trigger NAME] sections (trigger.go; package trigger runs them) open an
// inbound port when an inside host connects out; a file with triggers
// needs no [user] section. Their [daemon] keys:
//
//	trigger-mode         [R] host: triggers open ports of this host, through the
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
