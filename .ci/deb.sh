#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg -i on this (throwaway) machine,
# exercises the installed binaries, and purges it again, checking that the
# package leaves nothing of its own behind. CI calls it as root.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "deb: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg -s cipherknock >/dev/null 2>&1; then fail "cipherknock is already installed here; not touching it"; fi
[ ! -e /etc/cipherknock ] || fail "/etc/cipherknock exists here; not touching it"

make -s deb >/dev/null
deb=$(ls -t bin/cipherknock_*.deb | head -n1)
version=$(dpkg-deb -f "$deb" Version)
echo "deb: built $deb ($(wc -c <"$deb") bytes)"
dpkg-deb -c "$deb" | grep -q ' ./usr/share/man/man8/cipherknockd.8.gz$' || fail "no cipherknockd(8) in the package"

tmp=$(mktemp -d)
ns=ckdeb-$$
cleanup() {
	set +e
	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	dpkg --purge cipherknock >/dev/null 2>&1
	rm -f /etc/cipherknock/alice.key
	rmdir /etc/cipherknock 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
echo "deb: installed $version"

# The binaries: static, stamped with the package's version.
for b in /usr/sbin/cipherknockd /usr/bin/cipherknock; do
	"$b" --version | grep -qF " $version (" || fail "$b --version: $("$b" --version)"
	if ldd "$b" >/dev/null 2>&1; then fail "$b is dynamically linked"; fi
done
man -w cipherknock cipherknockd cipherknockd.conf >/dev/null || fail "man pages not found"
grep -q '^ExecStart=/usr/sbin/cipherknockd run -c /etc/cipherknock/cipherknockd.conf$' /usr/lib/systemd/system/cipherknockd.service ||
	fail "the unit does not start /usr/sbin/cipherknockd"
grep -q '^Documentation=man:cipherknockd(8)' /usr/lib/systemd/system/cipherknockd.service || fail "the unit's Documentation= does not name the man page"

# postinst: the state directory and a first configuration with a realm of
# this host's, which passes check-config once alice's key exists.
conf=/etc/cipherknock/cipherknockd.conf
[ "$(stat -c %a /var/lib/cipherknockd)" = 700 ] || fail "/var/lib/cipherknockd is not mode 0700"
[ "$(stat -c %a $conf)" = 600 ] || fail "$conf is not mode 0600"
realm=$(sed -n 's/^realm = \([^ ]*\).*/\1/p' $conf)
[ -n "$realm" ] && [ "$realm" != example.org ] || fail "postinst's realm: '$realm'"
if out=$(cipherknockd check-config 2>&1); then fail "check-config passed without alice's key"; fi
echo "$out" | grep -q 'key-file "alice.key": no such file or directory' || fail "check-config: $out"
XDG_CONFIG_HOME=$tmp/config cipherknock keygen --host 127.0.0.1 --realm "$realm" --user-name alice \
	--server-key /etc/cipherknock/alice.key --uri-file "$tmp/alice.uri" --no-save >/dev/null 2>&1
cipherknockd check-config | grep -q ": ok: realm $realm, 1 users" || fail "check-config with alice's key"

# The installed daemon, in a namespace of its own, on its default
# configuration (the operator enables the loopback for this test), and a
# knock from the installed client.
sed -i 's/^loopback = false/loopback = true/' $conf
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" /usr/sbin/cipherknockd run >"$tmp/daemon.log" 2>&1 &
for _ in $(seq 100); do
	grep -q "cipherknockd running" "$tmp/daemon.log" && break
	sleep 0.1
done
grep -q "cipherknockd running" "$tmp/daemon.log" || { cat "$tmp/daemon.log"; fail "the installed daemon did not start"; }
XDG_CONFIG_HOME=$tmp/config cipherknock profile import "$tmp/alice.uri" >/dev/null
ip netns exec "$ns" env XDG_CONFIG_HOME="$tmp/config" cipherknock knock 127.0.0.1 --no-confirm >/dev/null
for _ in $(seq 50); do
	ip netns exec "$ns" cipherknockd status --json >"$tmp/status.json"
	grep -q '"user":"alice"' "$tmp/status.json" && break
	sleep 0.1
done
grep -q '"user":"alice"' "$tmp/status.json" || { cat "$tmp/status.json" "$tmp/daemon.log"; fail "the knock opened nothing"; }
ip netns exec "$ns" cipherknockd stop >/dev/null
echo "deb: the installed daemon granted the installed client's knock"

# An upgrade (the same package again) keeps the configuration.
sum=$(sha256sum $conf)
dpkg -i "$deb" >/dev/null
[ "$(sha256sum $conf)" = "$sum" ] || fail "reinstalling changed $conf"

# Purge removes what the package made; the operator's key stays.
dpkg --purge cipherknock >/dev/null
for f in /usr/sbin/cipherknockd /usr/bin/cipherknock $conf /var/lib/cipherknockd /usr/lib/systemd/system/cipherknockd.service; do
	[ ! -e "$f" ] || fail "purge left $f"
done
[ -e /etc/cipherknock/alice.key ] || fail "purge removed the operator's alice.key"
echo "deb: purged; the operator's key file was kept"
