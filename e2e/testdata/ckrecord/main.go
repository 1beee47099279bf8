// Command ckrecord stands in for a firewall program in the command
// backend's tests: "ckrecord FILE WHAT ADDR PROTO PORT" appends one line,
// with the time in nanoseconds, to FILE. It does as little as a program
// can, so that the tests measure the daemon rather than the stand-in.
package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 6 {
		os.Exit(2)
	}
	line := strings.Join(os.Args[2:], " ") + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(1)
	}
	// One write with O_APPEND: lines of concurrent runs never mix.
	if _, err := f.WriteString(line); err != nil || f.Close() != nil {
		os.Exit(1)
	}
}
