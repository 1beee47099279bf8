// Package namespace runs code and commands inside Linux network
// namespaces: on an OS thread switched into a namespace (sockets opened
// and processes started there belong to it), and in namespaces created
// with `ip netns`, which the tests, the side-by-side harness and the
// firewall backends (when given a namespace) share.
package namespace

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the namespace h and returns its
// error. Sockets fn opens stay in the namespace, and processes it starts
// inherit it. The thread goes back to its own namespace afterwards; if it
// cannot, it stays locked and the runtime discards it, so no other
// goroutine ever runs in the wrong namespace.
func Do(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Named is a namespace made with `ip netns add`.
type Named struct {
	Name string
}

// Add creates the namespace name and brings its loopback up.
func Add(name string) (*Named, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	n := &Named{Name: name}
	if _, err := n.Run("ip", "link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// Delete kills what still runs in the namespace, except this process, and
// removes it.
func (n *Named) Delete() {
	if pids, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		self := fmt.Sprint(os.Getpid())
		for _, p := range strings.Fields(string(pids)) {
			if p != self {
				exec.Command("kill", "-9", p).Run()
			}
		}
	}
	exec.Command("ip", "netns", "del", n.Name).Run()
}

// Command returns a command that runs argv inside the namespace.
func (n *Named) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Run runs argv inside the namespace and returns its combined output; the
// error names the command and carries its output.
func (n *Named) Run(argv ...string) (string, error) {
	out, err := n.Command(argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %v: %s", n.Name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into the namespace (see Do).
func (n *Named) Do(fn func() error) error {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return err
	}
	defer h.Close()
	return Do(h, fn)
}
