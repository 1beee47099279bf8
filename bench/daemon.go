package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a system's daemon process running in the server namespace.
// ip netns exec execs the command in place, so the process is the daemon
// itself and its pid is the one to account.
type daemon struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startDaemon(e *env, s system, tag string) (*daemon, error) {
	argv := s.daemonArgv(e)
	if e.cpuProfile != "" && argv[len(argv)-2] == "--cpu-profile" {
		argv[len(argv)-1] = strings.TrimSuffix(e.cpuProfile, ".pprof") + "-" + tag + ".pprof"
	}
	logPath := filepath.Join(e.dir, s.name()+"-"+tag+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := e.topo.srv.command(argv...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	d := &daemon{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(d.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-d.done:
			return nil, fmt.Errorf("%s exited at start: %s", argv[0], lastLines(d.logText(), 5))
		default:
		}
		if s.ready(e, d.logText()) {
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("%s not ready after 15 s: %s", argv[0], lastLines(d.logText(), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let it finish what it does after announcing itself (attach its
	// filter, install rules).
	time.Sleep(300 * time.Millisecond)
	select {
	case <-d.done:
		return nil, fmt.Errorf("%s exited after start: %s", argv[0], lastLines(d.logText(), 5))
	default:
	}
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(3 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// cpuTime returns the CPU time all threads of pid have used, from
// /proc/PID/task/*/schedstat (nanoseconds, unlike the clock ticks of
// /proc/PID/stat), falling back to utime+stime.
func cpuTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	if sum > 0 {
		return time.Duration(sum)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// memKiB returns VmRSS and VmHWM of pid in KiB.
func memKiB(pid int) (rss, hwm uint64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(fs[1], 10, 64)
		switch fs[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// ctxSwitches returns the context switches of all threads of pid: how
// often the daemon slept and was woken, one of the costs of a capture
// that wakes per packet rather than per block.
func ctxSwitches(pid int) uint64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var sum uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && (f[0] == "voluntary_ctxt_switches:" || f[0] == "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				sum += v
			}
		}
	}
	return sum
}
