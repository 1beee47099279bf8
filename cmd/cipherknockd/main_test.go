package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cipherknockd": func() {
			// Scripts must not depend on this host's /etc.
			if f := os.Getenv("CIPHERKNOCKD_TEST_DEFAULT_CONFIG"); f != "" {
				DefaultConfig = f
			}
			os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the command scripts in testdata: check-config on good
// and broken files, status and stop without a daemon.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata", Setup: func(e *testscript.Env) error {
		e.Setenv("CIPHERKNOCKD_TEST_DEFAULT_CONFIG", e.WorkDir+"/etc/cipherknockd.conf")
		return nil
	}})
}
