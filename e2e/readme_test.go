package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// readmeBlock is one shell block of README's "Using it" walk-through.
type readmeBlock struct {
	role  string // "server" or "client"
	lines []string
}

// readmeWalkthrough returns the ```sh blocks of README's "Using it"
// section; each starts with "# On the server" or "# On alice's machine".
func readmeWalkthrough(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## Using it\n")
	if i < 0 {
		t.Fatal(`README.md has no "## Using it" section`)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	var blocks []readmeBlock
	for {
		i := strings.Index(s, "```sh\n")
		if i < 0 {
			break
		}
		s = s[i+len("```sh\n"):]
		j := strings.Index(s, "```")
		if j < 0 {
			t.Fatal("README.md: unterminated ```sh block")
		}
		lines := strings.Split(strings.TrimSpace(s[:j]), "\n")
		s = s[j+3:]
		var blk readmeBlock
		switch lines[0] {
		case "# On the server":
			blk.role = "server"
		case "# On alice's machine":
			blk.role = "client"
		default:
			t.Fatalf("README.md: a block of \"Using it\" starts with %q, not \"# On the server\" or \"# On alice's machine\"", lines[0])
		}
		blk.lines = lines[1:]
		blocks = append(blocks, blk)
	}
	if len(blocks) < 2 {
		t.Fatalf("README.md: %d blocks in \"Using it\"", len(blocks))
	}
	return blocks
}

// TestREADMEWalkthrough runs README's "Using it" blocks as they are
// written, in order: the server's in a server namespace, alice's in a
// client namespace that resolves server.example.org to it. sudo runs the
// command (everything runs as root), systemctl starts the installed unit's
// ExecStartPre and ExecStart, and a real sshd listens on port 22, which the
// daemon keeps closed. make install writes into tmpfs mounts over the
// directories it installs to, in a mount namespace of the test's own, so
// that the host is left as it was.
func TestREADMEWalkthrough(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "make", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd", "iptables", "ipset")
	blocks := readmeWalkthrough(t)
	srv := nstest.New(t, "server")
	cli := nstest.New(t, "alice")
	ls, _ := nstest.Connect(srv, cli, 41)

	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(repo, filepath.Join(work, "cipherknock")))
	shims := filepath.Join(work, "shims")
	must(os.Mkdir(shims, 0o755))
	must(os.WriteFile(filepath.Join(shims, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755))
	must(os.WriteFile(filepath.Join(shims, "systemctl"), []byte(systemctlShim), 0o755))
	must(os.WriteFile(filepath.Join(work, "sshd_config"), []byte(strings.ReplaceAll(sshdConfig, "WORK", work)), 0o644))

	// The script: the mounts, sshd, each block in its namespace, then the
	// state the walk-through must leave.
	var sc strings.Builder
	fmt.Fprintf(&sc, "set -euo pipefail\nwork=%q; srv=%q; cli=%q\n", work, srv.Name, cli.Name)
	sc.WriteString(readmePrologue)
	fmt.Fprintf(&sc, "mkdir -p /etc/netns/$cli && echo '%s server.example.org' >/etc/netns/$cli/hosts\n", ls.Addr4)
	for i, b := range blocks {
		ns := "$srv"
		env := `HOME=/root XDG_CONFIG_HOME="$work/server-config"`
		if b.role == "client" {
			ns = "$cli"
			env = `HOME=/root XDG_CONFIG_HOME="$work/alice-config"`
		}
		fmt.Fprintf(&sc, "echo '=== block %d (%s)'\n", i+1, b.role)
		for _, l := range b.lines {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			fmt.Fprintf(&sc, "echo '$ %s'\n", strings.ReplaceAll(l, "'", `'\''`))
			fmt.Fprintf(&sc, "(cd \"$work\" && ip netns exec %s env %s PATH=\"$work/shims:$PATH\" CK_WORK=\"$work\" bash -euo pipefail -c %s </dev/null)\n",
				ns, env, shellQuote(l))
		}
	}
	sc.WriteString(readmeEpilogue)
	must(os.WriteFile(filepath.Join(work, "walkthrough.sh"), []byte(sc.String()), 0o755))

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", filepath.Join(work, "walkthrough.sh"))
	out, err := cmd.CombinedOutput()
	t.Logf("walk-through:\n%s", out)
	if err != nil {
		if log, rerr := os.ReadFile(filepath.Join(work, "cipherknockd.log")); rerr == nil {
			t.Logf("cipherknockd's log:\n%s", log)
		}
		t.Fatalf("README's walk-through failed: %v", err)
	}
	text := string(out)
	for _, want := range []string{
		": ok: realm server.example.org, 1 users", // check-config, once keygen wrote the key
		"tcp/22 on server.example.org is open",    // knock confirmed by sshd answering
		"ssh-session-ran",                         // ssh logged in through connect
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through printed no %q", want)
		}
	}
	// After the ssh session connect sent a close knock: no grant is left.
	b, err := os.ReadFile(filepath.Join(work, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Grants []json.RawMessage `json:"grants"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, b)
	}
	if len(st.Grants) != 0 {
		t.Errorf("grants left after the session ended: %s", b)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readmePrologue runs in the test's own mount namespace: tmpfs over every
// directory the walk-through writes to (mount points missing on the host
// are made, and removed again on exit), alice's ssh key, and sshd in the
// server namespace.
const readmePrologue = `
made=()
cleanup() {
	set +e
	ip netns exec "$srv" /usr/local/sbin/cipherknockd stop >/dev/null 2>&1
	[ -f "$work/cipherknockd.pid" ] && kill "$(cat "$work/cipherknockd.pid")" 2>/dev/null
	[ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null
	for d in "${made[@]}"; do umount -l "$d" 2>/dev/null; rmdir "$d" 2>/dev/null; done
}
trap cleanup EXIT
for d in /usr/local/sbin /usr/local/bin /usr/local/share/man /etc/systemd/system /usr/share/doc/cipherknock \
	/etc/cipherknock /var/lib/cipherknockd /run/cipherknockd /root/.ssh /etc/netns /run/sshd; do
	if [ ! -d "$d" ]; then mkdir -p "$d"; made+=("$d"); fi
	mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 700 /root/.ssh /etc/cipherknock /var/lib/cipherknockd /run/cipherknockd
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
cp /root/.ssh/id_ed25519.pub "$work/authorized_keys"
printf 'Host *\n    StrictHostKeyChecking accept-new\n    UserKnownHostsFile /root/.ssh/known_hosts\n    BatchMode yes\n    ConnectTimeout 10\n' >/root/.ssh/config
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh_host_ed25519_key"
ip netns exec "$srv" /usr/sbin/sshd -f "$work/sshd_config"
`

// readmeEpilogue records what the walk-through left, and proves that ssh
// ran a session.
const readmeEpilogue = `
ip netns exec "$cli" env HOME=/root XDG_CONFIG_HOME="$work/alice-config" PATH="$work/shims:$PATH" \
	ssh server.example.org echo ssh-session-ran </dev/null
# ssh does not wait for its ProxyCommand, which sends the close knock as
# it ends: wait for the grant to go, within a deadline.
for _ in $(seq 50); do
	ip netns exec "$srv" /usr/local/sbin/cipherknockd status --json >"$work/status.json"
	grep -q '"addr"' "$work/status.json" || break
	sleep 0.1
done
`

// sshdConfig is a minimal sshd for the server namespace: root logs in with
// alice's key only.
const sshdConfig = `Port 22
HostKey WORK/ssh_host_ed25519_key
PidFile WORK/sshd.pid
AuthorizedKeysFile WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`

// systemctlShim does what systemd would for "systemctl enable --now
// cipherknockd": make the unit's runtime and state directories, run its
// ExecStartPre and start its ExecStart.
const systemctlShim = `#!/bin/bash
set -euo pipefail
unit=/etc/systemd/system/cipherknockd.service
case "$*" in
"enable --now cipherknockd" | "start cipherknockd")
	install -d -m 0700 /run/cipherknockd /var/lib/cipherknockd
	pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
	start=$(sed -n 's/^ExecStart=//p' "$unit")
	$pre
	$start >"$CK_WORK/cipherknockd.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$CK_WORK/cipherknockd.pid"
	for _ in $(seq 100); do
		grep -q "cipherknockd running" "$CK_WORK/cipherknockd.log" && exit 0
		kill -0 "$pid" 2>/dev/null || { cat "$CK_WORK/cipherknockd.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "systemctl: cipherknockd did not start" >&2
	exit 1
	;;
*)
	echo "systemctl (test): $*: not supported" >&2
	exit 1
	;;
esac
`
