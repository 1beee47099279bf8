// Command argvrec appends its arguments, as one JSON line with the time,
// to the file named by its first argument. The firewall tests use it as a
// command template to see exactly what a command receives.
//
// A second argument "sleep" makes it hang (to be killed by a timeout);
// "fail" makes it exit 1 after recording.
package main

import (
	"encoding/json"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	rec, _ := json.Marshal(struct {
		T    int64    `json:"t"`
		Argv []string `json:"argv"`
	}{time.Now().UnixNano(), os.Args[2:]})
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(3)
	}
	f.Write(append(rec, '\n'))
	f.Close()
	if len(os.Args) > 2 {
		switch os.Args[2] {
		case "sleep":
			time.Sleep(time.Hour)
		case "fail":
			os.Stderr.WriteString("refused\n")
			os.Exit(1)
		}
	}
}
