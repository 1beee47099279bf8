#!/usr/bin/env bash
# cipherknock demo: a real knock opens a real firewall, in throwaway network
# namespaces, and the door closes again by itself.
#
# It builds both binaries into ./bin, creates two namespaces joined by a
# veth pair, starts cipherknockd in "server" with its built-in demo
# configuration (--demo) and a fresh key, starts a small TCP service there on port
# 8080 (closed by the firewall), knocks from "client", shows the service
# answering, waits for the grant to expire, shows new connections refused,
# and removes everything it made. Run it as root: sudo make demo
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

say()  { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, firewall): run sudo make demo"

# Tools: install what is missing, or say what to install.
missing=()
command -v ip >/dev/null       || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v ipset >/dev/null    || missing+=(ipset)
if [ ${#missing[@]} -gt 0 ]; then
	if command -v apt-get >/dev/null; then
		say "installing ${missing[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	else
		fail "please install: ${missing[*]}"
	fi
fi
command -v go >/dev/null || fail "needs Go 1.26 (https://go.dev/dl/) to build the binaries"

say "building bin/cipherknockd and bin/cipherknock"
mkdir -p bin
make -s build

tag="ckdemo-$$"
srv="$tag-srv"
cli="$tag-cli"
veth_s="ckd$$s"
veth_c="ckd$$c"
srv_ip=198.18.200.1
cli_ip=198.18.200.2
work=$(mktemp -d /tmp/cipherknock-demo.XXXXXX)
pids=()

cleanup() {
	set +e
	say "cleaning up"
	if [ -S "$work/state/control.sock" ]; then
		(cd "$work" && ip netns exec "$srv" "$repo/bin/cipherknockd" remove --demo) || true
	fi
	# Each pid is the program's own (started without a subshell between).
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$srv" 2>/dev/null
	ip netns del "$cli" 2>/dev/null
	rm -rf "$work"
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then echo "demo: process $p is still running" >&2; fi
	done
	echo "namespaces, firewall rules and files removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "creating namespaces $srv and $cli, joined by a veth pair"
ip netns add "$srv"
ip netns add "$cli"
ip link add "$veth_s" netns "$srv" type veth peer name "$veth_c" netns "$cli"
ip -n "$srv" addr add "$srv_ip/24" dev "$veth_s"
ip -n "$cli" addr add "$cli_ip/24" dev "$veth_c"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "$veth_s" up
ip -n "$cli" link set "$veth_c" up

cd "$work"
in_srv() { ip netns exec "$srv" "$@"; }
in_cli() { ip netns exec "$cli" "$@"; }

# try_connect: open a new TCP connection from the client and print the
# service's greeting; fails if the firewall drops it.
try_connect() {
	in_cli timeout 3 bash -c "exec 3<>/dev/tcp/$srv_ip/8080 && head -n1 <&3" 2>/dev/null
}

say "starting cipherknockd (built-in demo config: realm demo, user demo, protects tcp/8080)"
"$repo/bin/cipherknockd" demo-key demo.key
# Started with ip netns exec itself, not a shell function, so that $! is
# the program's pid (ip execs it) and cleanup can stop it.
ip netns exec "$srv" "$repo/bin/cipherknockd" run --demo >daemon.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	grep -q "cipherknockd running" daemon.log && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat daemon.log; fail "cipherknockd did not start"; }
	sleep 0.1
done
grep -q "cipherknockd running" daemon.log || { cat daemon.log; fail "cipherknockd did not start"; }
sed 's/^/    daemon: /' daemon.log

ip netns exec "$srv" "$repo/bin/cipherknockd" demo-service --listen :8080 >service.log 2>&1 &
pids+=($!)
sleep 0.3

say "connecting to $srv_ip:8080 before knocking"
if try_connect; then fail "the service answered without a knock"; fi
echo "    no answer: the port is closed"

say "knocking from $cli_ip for 5 seconds"
in_cli "$repo/bin/cipherknock" knock "$srv_ip" --realm demo --user 0 --key-file demo.key \
	--port 8080 --proto tcp --duration 5s

say "connecting again"
ok=
for _ in $(seq 20); do
	if greeting=$(try_connect); then ok=1; break; fi
	sleep 0.2
done
[ -n "$ok" ] || { cat daemon.log; fail "the door did not open"; }
echo "    service says: $greeting"
grep "knock accepted" daemon.log | sed 's/^/    daemon: /'

say "cipherknockd status"
in_srv "$repo/bin/cipherknockd" status --demo | sed 's/^/    /'

say "waiting for the grant to expire"
closed=
for _ in $(seq 40); do
	if ! try_connect >/dev/null; then closed=1; break; fi
	sleep 0.5
done
[ -n "$closed" ] || fail "the door stayed open after its time"
echo "    no answer: new connections are refused again"

say "removing cipherknockd: it stops, and its chain and sets are removed (plain stop would leave them closed)"
in_srv "$repo/bin/cipherknockd" remove --demo | sed 's/^/    /'
left=$( { in_srv iptables-save; in_srv ip6tables-save; in_srv ipset list -n;
	command -v nft >/dev/null && in_srv nft list ruleset; } 2>/dev/null | grep -i cipherknock || true)
[ -z "$left" ] || fail "left behind: $left"
echo "    the firewall holds nothing of cipherknock"
say "demo done"
