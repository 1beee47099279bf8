package firewall

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestCloseOnExecAll: a descriptor made without O_CLOEXEC is not
// inherited by a child after CloseOnExecAll.
func TestCloseOnExecAll(t *testing.T) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	CloseOnExecAll()
	out, err := exec.Command("ls", "/proc/self/fd").Output()
	if err != nil {
		t.Fatalf("ls: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if f == itoa(fd) {
			t.Fatalf("child inherited descriptor %d: %s", fd, out)
		}
	}
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// BenchmarkCloseOnExecAll is what each command of the command backend
// pays for it, next to a fork and exec of about a millisecond.
func BenchmarkCloseOnExecAll(b *testing.B) {
	for b.Loop() {
		CloseOnExecAll()
	}
}
