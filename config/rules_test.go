package config

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/trigger"
)

// minimal is a valid file to which tests add [daemon] keys.
func minimal(daemon string) string {
	return "[daemon]\nrealm = example.org\n" + daemon + "[user alice]\nindex = 0\nkey-file = alice.key\nports = tcp/22\n"
}

// errorsOf parses text and returns its messages as "LINE: message".
func errorsOf(t *testing.T, text string) []string {
	t.Helper()
	_, err := Parse("t.conf", []byte(text), "", 0o600, memFS{})
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error of type %T: %v", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Error(), "t.conf:"))
	}
	return out
}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("t.conf", []byte(text), "", 0o600, memFS{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBOMAndCRLF: a file saved by an editor that writes a byte-order mark
// and CRLF line ends reads as the same file without them (a BOM used to
// turn "[daemon]" into an unknown section and cascade into seven errors).
func TestBOMAndCRLF(t *testing.T) {
	plain := minimal("window = 30\n")
	want := mustParse(t, plain)
	for name, text := range map[string]string{
		"bom":      "\uFEFF" + plain,
		"crlf":     strings.ReplaceAll(plain, "\n", "\r\n"),
		"bom+crlf": "\uFEFF" + strings.ReplaceAll(plain, "\n", "\r\n"),
	} {
		c, err := Parse("t.conf", []byte(text), "", 0o600, memFS{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		c.File = want.File
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%s: %+v, want %+v", name, c, want)
		}
	}
	// Errors keep their lines under CRLF, and a BOM later in the file is
	// no blank.
	got := errorsOf(t, strings.ReplaceAll(minimal("window = soon\n"), "\n", "\r\n"))
	if len(got) != 1 || !strings.HasPrefix(got[0], `3: window: "soon"`) {
		t.Errorf("CRLF errors: %q", got)
	}
}

// TestNameRule: user and trigger names follow the rule of the command
// backend's {user}, so a name the file accepts can always be granted.
func TestNameRule(t *testing.T) {
	for name, want := range map[string]string{
		"-admin":                `user name: "-admin" may contain only letters`,
		".hidden":               `user name: ".hidden" may contain only letters`,
		"al/ice":                `user name: "al/ice" may contain only letters`,
		"trigger@ident":         `user name: "trigger@ident": names starting with "trigger@" are the triggers'`,
		strings.Repeat("a", 65): "user name: longer than 64 bytes",
		"bob@example.org":       "",
		"_svc-1.x":              "",
		strings.Repeat("a", 64): "",
	} {
		got := errorsOf(t, "[daemon]\nrealm = r\n[user "+name+"]\nindex = 0\nkey-file = a.key\nports = tcp/22\n")
		switch {
		case want == "" && got != nil:
			t.Errorf("[user %s]: %q", name, got)
		case want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], "3: "+want)):
			t.Errorf("[user %s]: %q, want 3: %s", name, got, want)
		}
	}
	trig := func(name string) []string {
		return errorsOf(t, "[daemon]\nrealm = r\n[trigger "+name+"]\noutbound = tcp/25\ninbound = tcp/113\nduration = 60\n")
	}
	for _, bad := range []string{"-x", ".x", "a]", "é", strings.Repeat("t", MaxNameLen-len(TriggerUser)+1)} {
		if got := trig(bad); len(got) != 1 || !strings.HasPrefix(got[0], "3: trigger name: ") {
			t.Errorf("[trigger %s]: %q", bad, got)
		}
	}
	long := strings.Repeat("t", MaxNameLen-len(TriggerUser))
	if got := trig(long); got != nil {
		t.Errorf("[trigger %s]: %q", long, got)
	}
	if u := TriggerGrantUser(long); len(u) != MaxNameLen || checkName(u, MaxNameLen) != nil {
		t.Errorf("grant user %q", u)
	}
}

// TestInterfaceRule: [daemon] interfaces and a trigger's inside and
// outside read a list of interfaces by one rule.
func TestInterfaceRule(t *testing.T) {
	for list, want := range map[string]string{
		"eth0, wlan0":           "",
		"eth0:1":                `"eth0:1" is not an interface name`,
		"a/b":                   `"a/b" is not an interface name`,
		"..":                    `".." is not an interface name`,
		"averyveryverylongname": `"averyveryverylongname" is not an interface name`,
		",":                     "empty list (leave the key out to allow every interface)",
	} {
		d := errorsOf(t, minimal("interfaces = "+list+"\n"))
		tr := errorsOf(t, "[daemon]\nrealm = r\ntrigger-mode = nat\n[trigger x]\noutbound = tcp/25\ninbound = tcp/113\nduration = 60\ninside = "+list+"\n")
		if want == "" {
			if d != nil || tr != nil {
				t.Errorf("%q: %q %q", list, d, tr)
			}
			continue
		}
		if len(d) == 0 || d[0] != "3: interfaces: "+want {
			t.Errorf("interfaces = %s: %q", list, d)
		}
		if len(tr) == 0 || tr[0] != "8: inside: "+want {
			t.Errorf("inside = %s: %q", list, tr)
		}
	}
}

// stubPath makes PATH a directory holding the named programs, each a
// link to true(1): the parser looks a template's program up as the daemon
// will, and the tests must not depend on which firewalls are installed.
func stubPath(t *testing.T, names ...string) string {
	t.Helper()
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("true(1): %v", err)
	}
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(truePath, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	return dir
}

// readmeTemplates returns the open/close lines of firewall/README.md's
// command examples, by the comment line above each pair.
func readmeTemplates(t *testing.T) map[string][2]string {
	b, err := os.ReadFile("../firewall/README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	var title string
	re := regexp.MustCompile(`^(open|close) += (.*)$`)
	for _, l := range strings.Split(string(b), "\n") {
		if c, ok := strings.CutPrefix(l, "# "); ok {
			title = c
			continue
		}
		if m := re.FindStringSubmatch(l); m != nil {
			p := out[title]
			p[map[string]int{"open": 0, "close": 1}[m[1]]] = m[2]
			out[title] = p
		}
	}
	return out
}

// TestCommandTemplates: the examples of firewall/README.md read through
// the one splitter into the argument vectors they mean; the firewalld
// rich rule stays one argument (the old double-quote-only splitter cut it
// into nine and kept the single quotes).
func TestCommandTemplates(t *testing.T) {
	stubPath(t, "firewall-cmd", "pfctl", "nft", "iptables")
	ex := readmeTemplates(t)
	if len(ex) < 4 {
		t.Fatalf("found %d examples in firewall/README.md", len(ex))
	}
	want := map[string][]string{
		"firewalld":                       {"firewall-cmd", `--add-rich-rule=rule family="{family}" source address="{addr}" port port="{port}" protocol="{proto}" accept`},
		"pf (tables hold addresses only)": {"pfctl", "-t", "cipherknock", "-T", "add", "{addr}"},
	}
	for title, pair := range ex {
		if pair[0] == "" || pair[1] == "" {
			t.Errorf("%s: open or close missing", title)
			continue
		}
		c := mustParse(t, minimal("firewall = command\ncommand-drops = yes\ncommand-open = "+pair[0]+"\ncommand-close = "+pair[1]+"\n"))
		if w, ok := want[title]; ok && !slices.Equal(c.CommandOpen, w) {
			t.Errorf("%s: open = %q, want %q", title, c.CommandOpen, w)
		}
		for _, a := range append(c.CommandOpen, c.CommandClose...) {
			if strings.ContainsAny(a, "'") {
				t.Errorf("%s: argument %q keeps a quote", title, a)
			}
		}
	}
	if _, ok := ex["firewalld"]; !ok {
		t.Error("no firewalld example")
	}
	// Templates that would not run as written are refused at their line.
	for tmpl, msg := range map[string]string{
		`firewall-cmd '--add-rich-rule=rule`: "command-open: unterminated ' at column 14",
		`nft add "x`:                         `command-open: unterminated " at column 9`,
		`/bin/sh -c "nft add {addr}"`:        "command-open: /bin/sh is a shell or interpreter",
		`nft add {adr}`:                      "command-open: argument 2: unknown placeholder {adr}",
		`nft-missing add x`:                  "command-open: nft-missing: not found in PATH (give an absolute path)",
		`nft add x \`:                        "command-open: backslash at the end of the line",
		`''`:                                 "command-open: empty command",
	} {
		got := errorsOf(t, minimal("firewall = command\ncommand-drops = yes\ncommand-open = "+tmpl+"\ncommand-close = nft\n"))
		if len(got) != 1 || !strings.HasPrefix(got[0], "5: "+msg) {
			t.Errorf("%s: %q, want 5: %s", tmpl, got, msg)
		}
	}
}

// TestDistTemplates: the example configuration's command templates,
// uncommented, parse, and none sets a kernel timeout from {duration}
// (the open command runs once per grant, so it would cut a re-granted
// door short).
func TestDistTemplates(t *testing.T) {
	b, err := os.ReadFile("../dist/cipherknockd.conf")
	if err != nil {
		t.Fatal(err)
	}
	bin := stubPath(t, "nft")
	text := strings.ReplaceAll(string(b), "# command-", "command-")
	text = strings.ReplaceAll(text, "/usr/sbin/nft", filepath.Join(bin, "nft"))
	text = strings.Replace(text, "firewall = auto", "firewall = command", 1)
	text = strings.Replace(text, "realm = example.org", "realm = host.example", 1)
	c := mustParse(t, text)
	if len(c.CommandOpen) == 0 || len(c.CommandClose) == 0 || !c.CommandDrops {
		t.Fatalf("templates not read: %+v", c)
	}
	for _, a := range append(c.CommandOpen, c.CommandClose...) {
		if strings.Contains(a, "timeout") {
			t.Errorf("dist template sets a kernel timeout: %q", c.CommandOpen)
		}
	}
}

// TestKeyTable: every field Parse fills from [daemon] belongs to one key
// of the table, so a new option cannot be hot-reloaded by accident (it
// must be classified), every key's default parses, and every key is
// documented in the package doc and cipherknockd.conf(5).
func TestKeyTable(t *testing.T) {
	owned := map[string]string{}
	var c Config
	base := reflect.ValueOf(&c).Elem()
	for _, k := range daemonKeys {
		if k.parse == nil || k.fields == nil {
			t.Errorf("%s: no parser or fields", k.name)
			continue
		}
		for _, p := range k.fields(&c) {
			v := reflect.ValueOf(p).Elem()
			for i := 0; i < base.NumField(); i++ {
				if base.Field(i).Addr().Interface() == v.Addr().Interface() {
					name := base.Type().Field(i).Name
					if o, dup := owned[name]; dup && !strings.HasPrefix(o, "realm-key") {
						t.Errorf("%s set by %s and %s", name, o, k.name)
					}
					owned[name] = k.name
				}
			}
		}
	}
	notKeys := []string{"File", "Users", "Triggers", "InterfacesLine", "FirewallLine"}
	for i := 0; i < base.NumField(); i++ {
		name := base.Type().Field(i).Name
		if _, ok := owned[name]; !ok && !slices.Contains(notKeys, name) {
			t.Errorf("Config.%s belongs to no key of the table: add it, restart-only or not", name)
		}
	}
	// Defaults parse without an error.
	p := &parser{file: "defaults", cfg: &Config{}}
	for _, k := range daemonKeys {
		if k.def != "" {
			k.parse(p, &entry{key: k.name, value: k.def}, p.cfg)
		}
	}
	if p.errs != nil {
		t.Errorf("defaults: %v", p.errs)
	}
	doc, _ := os.ReadFile("doc.go")
	man, _ := os.ReadFile("../dist/man/cipherknockd.conf.5")
	manText := strings.ReplaceAll(string(man), `\-`, "-")
	for _, k := range daemonKeys {
		m := regexp.MustCompile(`(?m)^//\t` + regexp.QuoteMeta(k.name) + `( +\[R\])?[ \n]`).FindSubmatch(doc)
		switch {
		case m == nil:
			t.Errorf("%s is not in the package doc's key list", k.name)
		case (len(m[1]) > 0) != k.restart:
			t.Errorf("%s: the package doc's [R] mark says restart-only %v, the table %v", k.name, len(m[1]) > 0, k.restart)
		}
		if !strings.Contains(manText, k.name) {
			t.Errorf("%s is not in cipherknockd.conf(5)", k.name)
		}
		_, reload, _ := strings.Cut(manText, "On reload")
		reload, _, _ = strings.Cut(reload, ".PP")
		reload, _, _ = strings.Cut(reload, ".SH")
		name := k.name
		if strings.HasPrefix(name, "command-") {
			name = "command-*"
		}
		if listed := regexp.MustCompile(`(^|[ \n])` + regexp.QuoteMeta(name) + `[,. \n]`).MatchString(reload); listed != k.restart {
			t.Errorf("%s: cipherknockd.conf(5) lists it as restart-only: %v, the table: %v", k.name, listed, k.restart)
		}
	}
}

// TestRestartOnly: a reload reports each changed restart-only key, puts
// its old value back, and leaves reloadable keys and users as read.
func TestRestartOnly(t *testing.T) {
	old := mustParse(t, minimal("window = 30\nspan-base = 20480\ncapture = afpacket\nnflog-group = 100\n"))
	cfg := mustParse(t, minimal("window = 45\nspan-base = 30000\nnflog-group = 7\nloopback = yes\ninterfaces = eth0\ncommand-timeout = 5\ntrigger-mode = nat\nlog-level = debug\n"))
	got := RestartOnly(old, cfg)
	want := []string{"span-base", "interfaces", "loopback", "command-timeout", "nflog-group", "trigger-mode"}
	if !slices.Equal(got, want) {
		t.Errorf("RestartOnly = %q, want %q", got, want)
	}
	if cfg.Span != old.Span || cfg.Interfaces != nil || cfg.Loopback || cfg.NFLogGroup != 100 || cfg.CommandTimeout != 0 || cfg.TriggerMode != TriggerHost {
		t.Errorf("restart-only values not kept: %+v", cfg)
	}
	if cfg.Window != 45 || cfg.LogLevel != "debug" {
		t.Errorf("reloadable values not taken: window %d, log-level %s", cfg.Window, cfg.LogLevel)
	}
	if again := RestartOnly(old, cfg); again != nil {
		t.Errorf("second RestartOnly = %q", again)
	}
	// Every key is classified one way or the other, and the ones a
	// running daemon cannot change are restart-only.
	for _, name := range []string{"span-base", "interfaces", "capture", "state-dir", "control-socket", "firewall", "max-sources", "replay-cache-size", "command-open"} {
		if k := daemonKey(name); k == nil || !k.restart {
			t.Errorf("%s is not restart-only", name)
		}
	}
	for _, name := range []string{"realm", "realm-key", "realm-key-file", "window", "assembly-timeout", "log-level", "trigger-max-mappings"} {
		if k := daemonKey(name); k == nil || k.restart {
			t.Errorf("%s is not reloadable", name)
		}
	}
	_ = time.Second
	_ = trigger.Refuse
}
