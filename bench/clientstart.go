package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
)

// minimalGo is the floor the client's start-up is held to: a Go program
// built the same way that sends one UDP datagram and exits.
const minimalGo = `package main

import "net"

func main() {
	c, err := net.Dial("udp", "127.0.0.1:20480")
	if err != nil {
		return
	}
	c.Write(nil)
	c.Close()
}
`

// clientStart measures, side by side and interleaved so that both see the
// same machine, the client's process from exec until it exited after its
// last packet (knock --no-confirm, 24 UDP datagrams to the loopback, where
// nothing listens), and the minimal Go program's from exec to exit. It
// returns both in milliseconds.
func clientStart(n int, bin, tmp string) (client, minimal []float64, err error) {
	dir := filepath.Join(tmp, "minimal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module minimal\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(minimalGo), 0o644)
	minBin := filepath.Join(dir, "minimal")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", minBin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("building the minimal program: %v\n%s", err, out)
	}
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	env := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(tmp, "start-config"), "CIPHERKNOCK_KEY="+key.Encode())
	timeOne := func(argv ...string) (float64, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
		return ms(time.Since(t0)), nil
	}
	for i := range n + 5 {
		c, err := timeOne(filepath.Join(bin, "cipherknock"), "-q", "knock", "127.0.0.1", "--realm", "bench", "--no-confirm")
		if err != nil {
			return nil, nil, err
		}
		m, err := timeOne(minBin)
		if err != nil {
			return nil, nil, err
		}
		if i >= 5 { // the first runs warm the page cache
			client, minimal = append(client, c), append(minimal, m)
		}
	}
	return client, minimal, nil
}
