package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/cipherknock/cipherknock/profile"
)

var screenshotDir = flag.String("screenshots", "", "directory to keep the browser test's screenshots in (default: a temporary one)")

const (
	labAddr     = "127.0.0.1:8765" // the lab server, inside the client namespace
	devtoolPort = 9222             // Chromium's DevTools, inside the client namespace
	pageBudget  = 150_000          // bytes the knock page may transfer on its first load
)

// requireChromium returns the path of Debian's chromium, or skips.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	nstest.Skip(t, "needs Chromium (apt-get install chromium)")
	return ""
}

// labProc is `cipherknock lab` running in a namespace; its request log
// counts the bytes it sends.
type labProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	done chan struct{}
}

var bytesRE = regexp.MustCompile(`^GET (\S+) (\d+) bytes$`)

func startLab(t *testing.T, w *world) *labProc {
	t.Helper()
	l := &labProc{done: make(chan struct{})}
	l.cmd = w.client.Command(clientBin, "lab", "--listen", labAddr, "--dir", "../web", "--testdata", "../testdata")
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l.mu.Lock()
			l.log = append(l.log, sc.Text())
			l.mu.Unlock()
		}
		l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(l.stop)
	if !poll(10*time.Second, func() bool { return w.client.Do(func() error { return dialClose(labAddr) }) == nil }) {
		t.Fatalf("cipherknock lab does not listen: %s", l.lines())
	}
	return l
}

func (l *labProc) stop() {
	select {
	case <-l.done:
		return
	default:
	}
	l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		l.cmd.Process.Kill()
		<-l.done
	}
}

func (l *labProc) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.log...)
}

// sent sums the bytes of the GET requests logged from line from on.
func (l *labProc) sent(from int) (total int, paths []string) {
	lines := l.lines()
	for _, s := range lines[min(from, len(lines)):] {
		if m := bytesRE.FindStringSubmatch(s); m != nil {
			n, _ := strconv.Atoi(m[2])
			total += n
			paths = append(paths, fmt.Sprintf("%s=%d", m[1], n))
		}
	}
	return total, paths
}

func dialClose(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// startChromium runs headless Chromium inside the client namespace and
// forwards a loopback port of the test's namespace to its DevTools port,
// so that chromedp can drive it. It returns the allocator context.
func startChromium(t *testing.T, w *world, chromium string) context.Context {
	t.Helper()
	prof := t.TempDir()
	cmd := w.client.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--mute-audio", "--ignore-certificate-errors",
		"--user-data-dir="+prof, "--remote-debugging-address=127.0.0.1",
		fmt.Sprintf("--remote-debugging-port=%d", devtoolPort), "about:blank")
	cmd.Env = append(os.Environ(), "HOME="+prof)
	logf, err := os.Create(filepath.Join(w.dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	inside := fmt.Sprintf("127.0.0.1:%d", devtoolPort)
	if !poll(30*time.Second, func() bool { return w.client.Do(func() error { return dialClose(inside) }) == nil }) {
		b, _ := os.ReadFile(filepath.Join(w.dir, "chromium.log"))
		t.Fatalf("Chromium's DevTools port does not answer; its log:\n%s", b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var d net.Conn
			if err := w.client.Do(func() (err error) { d, err = net.Dial("tcp", inside); return err }); err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	actx, cancel := remote.NewAllocator(context.Background(), "ws://"+ln.Addr().String())
	t.Cleanup(cancel)
	return actx
}

// browserTab opens a new tab with a deadline.
func browserTab(t *testing.T, actx context.Context, limit time.Duration) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, limit)
	t.Cleanup(cancel2)
	return ctx
}

type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var viewports = []viewport{{"phone", 390, 844, true}, {"desktop", 1280, 800, false}}

func setViewport(v viewport) chromedp.Action[chromedp.Void] {
	if v.mobile {
		return chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(v.width, v.height)
}

// shoot saves a screenshot of the viewport as name.png.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	time.Sleep(300 * time.Millisecond)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	shot = smallPNG(t, shot)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s.png: %d bytes", name, len(shot))
}

// checkLayout checks that the elements are visible, inside the viewport's
// width, and that the page does not scroll sideways.
func checkLayout(t *testing.T, ctx context.Context, v viewport, sels ...string) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
		const bad = [];
		if (document.documentElement.scrollWidth > %d) bad.push('page is ' + document.documentElement.scrollWidth + ' px wide');
		for (const s of %s) {
			const e = document.querySelector(s);
			if (!e) { bad.push(s + ' missing'); continue; }
			const r = e.getBoundingClientRect();
			if (r.width === 0 || r.height === 0) bad.push(s + ' not visible');
			if (r.right > %d + 1) bad.push(s + ' overflows to ' + r.right);
		}
		return bad;
	})()`, v.width, mustJSON(sels), v.width)
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%s layout: %s", v.name, strings.Join(bad, "; "))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// waitAttr waits until the element's data attribute holds one of want,
// and returns it.
func waitAttr(t *testing.T, ctx context.Context, sel, attr string, limit time.Duration, want ...string) string {
	t.Helper()
	var got string
	ok := poll(limit, func() bool {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {dataset: {}}).dataset[%q] || ''`, sel, attr)))
		if err != nil {
			return false
		}
		got = v
		for _, w := range want {
			if v == w {
				return true
			}
		}
		return false
	})
	if !ok {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s data-%s is %q, want one of %q; page text:\n%s", sel, attr, got, want, text)
	}
	return got
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBrowserKnock: headless Chromium in the client namespace loads the
// knock page from cipherknock lab, imports a profile, and knocks the real
// daemon with TCP SYNs; the service is closed to the client before and
// open after, and stays closed to the third namespace; the same over
// IPv6. It also measures the page's first-load weight, checks that
// Chromium would install it as an app, that it recognises an HTTPS
// service and refuses what a page cannot knock, runs every test vector in
// the browser, drives the lab, takes the screenshots README shows, and
// checks that the knock page works offline.
func TestBrowserKnock(t *testing.T) {
	chromium := requireChromium(t)
	w := newWorld(t, "")
	lab := startLab(t, w)
	actx := startChromium(t, w, chromium)
	base := "http://" + labAddr + "/"

	p := profile.New(w.srvAddr.String(), realm, userIndex, w.key)
	p.Port, p.Duration, p.Name = servicePort, 20, "e2e-server"
	uri := p.URI()

	// First load, with an empty cache: everything the page transfers,
	// service worker and its precache included.
	ctx := browserTab(t, actx, 3*time.Minute)
	from := len(lab.lines())
	if err := chromedp.Do(ctx, setViewport(viewports[0]), chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`))); err != nil {
		t.Fatal(err)
	}
	swReady, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(() => true)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the worker's last precache responses
	for _, e := range installErrors(t, ctx) {
		t.Errorf("Chromium would not install the page as an app: %s", e)
	}
	weight, paths := lab.sent(from)
	t.Logf("knock page first load: %d bytes transferred: %s", weight, strings.Join(paths, " "))
	if weight > pageBudget || weight == 0 {
		t.Errorf("knock page transferred %d bytes on its first load, budget %d", weight, pageBudget)
	}
	if !swReady {
		t.Error("the service worker did not become ready")
	}

	// Screenshots before any profile: the import form.
	for _, v := range viewports {
		if err := chromedp.Do(ctx, setViewport(v)); err != nil {
			t.Fatal(err)
		}
		checkLayout(t, ctx, v, "h1", "#uri", "#import-btn", "#limits", "#security")
	}
	if s := text(t, ctx, "#security"); !strings.Contains(s, "Serve it yourself") || !strings.Contains(s, "Content-Security-Policy") {
		t.Errorf("security model missing from the page: %q", s)
	}
	if s := text(t, ctx, "#limits"); !strings.Contains(s, "UDP") || !strings.Contains(s, "cipherknock knock") {
		t.Errorf("the page does not say what it cannot do: %q", s)
	}

	// Closed before the knock, seen from Go and from the page.
	w.mustStayClosed(w.client, w.srvAddr)

	// Import by pasting the URI.
	if err := chromedp.Do(ctx, setViewport(viewports[0]),
		chromedp.SetValue(chromedp.CSS("#uri"), uri),
		chromedp.Click(chromedp.CSS("#import-btn")),
		chromedp.WaitVisible(chromedp.CSS(`li[data-profile="e2e-server"] button.knock`)),
	); err != nil {
		t.Fatal(err)
	}
	if s := text(t, ctx, "#import-msg"); !strings.Contains(s, "Imported profile e2e-server") {
		t.Errorf("import message %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`li[data-profile="e2e-server"] button.check`))); err != nil {
		t.Fatal(err)
	}
	if r := waitAttr(t, ctx, "#status", "result", 20*time.Second, "silent", "answered", "https"); r != "silent" {
		t.Fatalf("before the knock the page reached the service (%s): %s", r, text(t, ctx, "#status"))
	}
	w.mustStayClosed(w.client, w.srvAddr)

	for _, v := range viewports {
		if err := chromedp.Do(ctx, setViewport(v)); err != nil {
			t.Fatal(err)
		}
		checkLayout(t, ctx, v, "h1", `li[data-profile="e2e-server"] button.knock`, "#status", "#import-btn")
	}

	// Knock from the page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`li[data-profile="e2e-server"] button.knock`))); err != nil {
		t.Fatal(err)
	}
	r := waitAttr(t, ctx, "#status", "result", 30*time.Second, "silent", "answered", "https", "error", "refused")
	w.mustOpen(w.client, w.srvAddr)
	w.waitLog("knock accepted", "user=alice", "addr="+w.clientAddr.String(), "port=8080")
	if r != "answered" {
		t.Errorf("after the knock the page says %q: %s", r, text(t, ctx, "#status"))
	}
	w.mustStayClosed(w.third, w.srvAddr3)
	for _, v := range viewports {
		if err := chromedp.Do(ctx, setViewport(v)); err != nil {
			t.Fatal(err)
		}
		checkLayout(t, ctx, v, "h1", `li[data-profile="e2e-server"] button.knock`, "#status")
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`void window.scrollTo(0, 0)`)); err != nil {
			t.Fatal(err)
		}
		shoot(t, ctx, "knock-"+v.name)
	}

	// Over IPv6: the profile's host is the server's IPv6 address, which
	// the page writes in brackets.
	p6 := profile.New(w.srvAddr6.String(), realm, userIndex, w.key)
	p6.Port, p6.Duration, p6.Name = servicePort, 20, "e2e-server-v6"
	w.mustStayClosed(w.client, w.srvAddr6)
	if r := pageKnock(t, ctx, p6.URI(), p6.Name, "knock"); r != "answered" {
		t.Errorf("after the IPv6 knock the page says %q: %s", r, text(t, ctx, "#status"))
	}
	w.mustOpen(w.client, w.srvAddr6)
	w.waitLog("knock accepted", "addr="+w.clientAddr6.String())

	// An HTTPS service is recognised as such (the browser trusts the test's
	// certificate: --ignore-certificate-errors).
	serveHTTPS(t, w, "127.0.0.1:8443")
	ph := profile.New("127.0.0.1", realm, userIndex, w.key)
	ph.Port, ph.Name = 8443, "local-https"
	if r := pageKnock(t, ctx, ph.URI(), ph.Name, "check"); r != "https" {
		t.Errorf("checking an HTTPS service the page says %q: %s", r, text(t, ctx, "#status"))
	}

	// What a page cannot do it refuses, pointing to the command line: a
	// STUN address, and a span holding ports browsers refuse.
	pc := profile.New("knock.example.org", realm, userIndex, w.key)
	pc.Address, pc.Name = profile.AddressAuto, "needs-cli"
	pl := profile.New("knock.example.org", realm, userIndex, w.key)
	pl.Base, pl.Name = 1024, "low-span"
	for _, q := range []struct {
		p    *profile.Profile
		want string
	}{{pc, `uses address "auto": a page can knock in mode source only; use cipherknock knock`}, {pl, "which browsers refuse; use cipherknock knock"}} {
		li := fmt.Sprintf(`li[data-profile=%q]`, q.p.Name)
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#uri"), q.p.URI()), chromedp.Click(chromedp.CSS("#import-btn")),
			chromedp.WaitVisible(chromedp.CSS(li))); err != nil {
			t.Fatal(err)
		}
		disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('%s button.knock').disabled`, li)))
		if err != nil {
			t.Fatal(err)
		}
		if s := text(t, ctx, li); !disabled || !strings.Contains(s, q.want) {
			t.Errorf("profile %s: knock button disabled %v, text %q", q.p.Name, disabled, s)
		}
	}

	// Import from the link's fragment: it is removed from the address bar.
	p.Name = "from-link"
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#"+p.URI()),
		chromedp.WaitVisible(chromedp.CSS(`li[data-profile="from-link"]`))); err != nil {
		t.Fatal(err)
	}
	hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil {
		t.Fatal(err)
	}
	if hash != "" {
		t.Errorf("the fragment stays in the address bar: %d characters", len(hash))
	}
	// The fragment never reached the server, and no log holds the key.
	if key := w.key.Encode(); strings.Contains(w.logText(), key[7:]) || strings.Contains(strings.Join(lab.lines(), "\n"), key[7:]) ||
		strings.Contains(strings.Join(lab.lines(), "\n"), "cipherknock:") {
		t.Fatal("a log holds the key or the profile")
	}

	t.Run("vectors", func(t *testing.T) { browserVectors(t, actx, base) })
	t.Run("lab", func(t *testing.T) { browserLab(t, actx, base) })

	// Offline: with the server gone, the installed page still loads.
	lab.stop()
	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-profile="e2e-server"]`))); err != nil {
		t.Fatalf("the knock page does not load offline: %v", err)
	}
}

// browserVectors runs every file of testdata/ through ck.js in Chromium.
func browserVectors(t *testing.T, actx context.Context, base string) {
	ctx := browserTab(t, actx, 10*time.Minute)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"check.html")); err != nil {
		t.Fatal(err)
	}
	result := waitAttrAny(t, ctx, "body", "result", 9*time.Minute)
	// check.html has no manifest: the installability probe must say so,
	// or its silence on the knock page would prove nothing.
	if len(installErrors(t, ctx)) == 0 {
		t.Error("Chromium finds check.html installable: the installability check is broken")
	}
	var res struct{ Passed, Failed, Skipped []string }
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../testdata/vectors/*")
	t.Logf("Chromium: %d vectors passed, %d failed, %d skipped by design", len(res.Passed), len(res.Failed), len(res.Skipped))
	for _, s := range res.Skipped {
		t.Logf("skipped by design: %s", s)
	}
	for _, f := range res.Failed {
		t.Errorf("Chromium: %s", f)
	}
	// ck.js implements every mode of SPEC.md: no vector may be skipped.
	for _, s := range res.Skipped {
		if strings.HasPrefix(s, "vectors/") {
			t.Errorf("Chromium skipped %s", s)
		}
	}
	if len(res.Passed)+len(res.Skipped) < len(files) {
		t.Errorf("Chromium checked %d of %d vector files", len(res.Passed)+len(res.Skipped)+len(res.Failed), len(files))
	}
}

func waitAttrAny(t *testing.T, ctx context.Context, sel, attr string, limit time.Duration) string {
	t.Helper()
	var got string
	if !poll(limit, func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).dataset[%q] || ''`, sel, attr)))
		return got != ""
	}) {
		t.Fatalf("%s has no data-%s after %v", sel, attr, limit)
	}
	return got
}

// browserLab drives the knock lab: Appendix B.1 step by step, then
// tampering, and the receiver's verdicts.
func browserLab(t *testing.T, actx context.Context, base string) {
	ctx := browserTab(t, actx, 2*time.Minute)
	sel := func(value string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.getElementById('example'); s.value = %q; s.dispatchEvent(new Event('change')); })()`, value))
	}
	verdict := func(want string) {
		t.Helper()
		if !poll(20*time.Second, func() bool { return strings.HasPrefix(text(t, ctx, "#verdict"), "Verdict: "+want) }) {
			t.Errorf("lab verdict %q, want %q; receiver:\n%s", text(t, ctx, "#verdict"), want, text(t, ctx, "#rcv-steps"))
		}
	}
	if err := chromedp.Do(ctx, setViewport(viewports[1]), chromedp.Navigate(base+"lab.html"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
		sel("e:Appendix B.1 (source, no realm key)")); err != nil {
		t.Fatal(err)
	}
	verdict("success")
	steps := text(t, ctx, "#steps")
	for _, want := range []string{"80fc032c8057c8e1", "401f019920b555e87831a26232", "61d96c5ad972ba6df5d67cb47fca74ff",
		"1061d9501f179730dc00517830a0613680fc032c8057c8e1", "20496 20833 21209 21328 21535 21783 22167 22320"} {
		if !strings.Contains(steps, want) {
			t.Errorf("lab steps lack %s", want)
		}
	}
	click := func(id string) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#"+id))); err != nil {
			t.Fatal(err)
		}
	}
	setNum := func(id string, v int) {
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#"+id), strconv.Itoa(v))); err != nil {
			t.Fatal(err)
		}
	}
	setNum("t-pos", 3)
	click("t-flip")
	verdict("bad tag")
	click("t-reset")
	setNum("t-byte", 0x42)
	setNum("t-pos", 5)
	click("t-before")
	verdict("conflicting duplicate")
	if s := text(t, ctx, "#rcv-steps"); !strings.Contains(s, "opens the last reading") || !strings.Contains(s, "success") {
		t.Errorf("the assembler does not recover from an injected byte:\n%s", s)
	}
	for _, v := range viewports {
		if err := chromedp.Do(ctx, setViewport(v)); err != nil {
			t.Fatal(err)
		}
		checkLayout(t, ctx, v, "h1", "#seal", "#stream", "#t-flip", "#verdict", "#readings")
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`void document.getElementById('h-rcv').scrollIntoView()`)); err != nil {
			t.Fatal(err)
		}
		shoot(t, ctx, "lab-"+v.name)
	}
	click("t-reset")
	setNum("t-clock", 61)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`void document.getElementById('t-clock').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatal(err)
	}
	verdict("stale")

	// Mode bound: the address is under the tag, not sent; packets from
	// another address make a bad tag.
	if err := chromedp.Do(ctx, sel("e:Mode bound (the address under the tag, not sent)")); err != nil {
		t.Fatal(err)
	}
	verdict("success")
	if s := text(t, ctx, "#steps"); !strings.Contains(s, "A (bound, not sent)") || !strings.Contains(s, "00000000000000000000ffffc6336417") {
		t.Errorf("lab steps lack the bound address:\n%s", s)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#r-src"), "198.51.100.24"),
		chromedp.Evaluate[chromedp.Void](`void document.getElementById('r-src').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatal(err)
	}
	verdict("bad tag")
	// A vector at the end of the signed 64-bit clock: exact, not rounded.
	if err := chromedp.Do(ctx, sel("v:receiver_time_max")); err != nil {
		t.Fatal(err)
	}
	verdict("stale")
	if now, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#r-now"))); err != nil || now != "9223372036854775807" {
		t.Errorf("lab receiver's now %q (%v), want 9223372036854775807", now, err)
	}
}

// smallPNG re-encodes a screenshot with a palette of its 256 most common
// colours (each other colour mapped to the nearest), a few times smaller
// than the browser's true-colour PNG, for the copies README shows.
func smallPNG(t *testing.T, b []byte) []byte {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	count := map[color.RGBA]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			count[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	cols := make([]color.RGBA, 0, len(count))
	for c := range count {
		cols = append(cols, c)
	}
	sort.Slice(cols, func(i, j int) bool {
		if count[cols[i]] != count[cols[j]] {
			return count[cols[i]] > count[cols[j]]
		}
		a, b := cols[i], cols[j]
		return uint32(a.R)<<16|uint32(a.G)<<8|uint32(a.B) < uint32(b.R)<<16|uint32(b.G)<<8|uint32(b.B)
	})
	pal := color.Palette{}
	for _, c := range cols[:min(256, len(cols))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(r, pal)
	near := map[color.RGBA]uint8{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := near[c]
			if !ok {
				i = uint8(pal.Index(c))
				near[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pageKnock imports uri on the knock page, presses the profile's button
// ("knock" or "check") and returns the page's verdict.
func pageKnock(t *testing.T, ctx context.Context, uri, name, button string) string {
	t.Helper()
	li := fmt.Sprintf(`li[data-profile=%q]`, name)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#uri"), uri),
		chromedp.Click(chromedp.CSS("#import-btn")),
		chromedp.WaitVisible(chromedp.CSS(li+" button."+button)),
		chromedp.Evaluate[chromedp.Void](`void (document.getElementById('status').dataset.result = '')`),
		chromedp.Click(chromedp.CSS(li+" button."+button))); err != nil {
		t.Fatal(err)
	}
	return waitAttr(t, ctx, "#status", "result", 30*time.Second, "silent", "answered", "https", "error", "refused", "blocked", "udp")
}

// serveHTTPS runs a minimal HTTPS server in the client namespace, with a
// throwaway self-signed certificate.
func serveHTTPS(t *testing.T, w *world, addr string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"http/1.1"}}
	w.client.Serve(addr, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(tc)
		for {
			l, err := br.ReadString('\n')
			if err != nil || strings.TrimRight(l, "\r\n") == "" {
				break
			}
		}
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		tc.Close()
	})
}

// installErrors asks Chromium why it would not install the page as an app.
func installErrors(t *testing.T, ctx context.Context) []string {
	t.Helper()
	res, err := chromedp.Run(ctx, chromedp.Action[page.GetInstallabilityErrorsResult](func(ctx context.Context, tg *chromedp.Target) (page.GetInstallabilityErrorsResult, error) {
		return cdp.Call(ctx, tg, page.GetInstallabilityErrors, cdp.Empty{})
	}))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range res.InstallabilityErrors {
		out = append(out, e.ErrorID)
	}
	return out
}
