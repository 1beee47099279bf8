// Command packaging builds cipherknock's Debian package with nfpm, from
// the files nfpm.yaml names (binaries from make build, the systemd unit,
// man pages, the example configuration and the maintainer scripts).
//
//	go run . -version 1.2.3 -arch amd64 -root .. -o ../bin/cipherknock_1.2.3_amd64.deb
//
// It is its own module so that nfpm's dependencies stay out of the
// project's go.mod.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
)

func main() {
	ver := flag.String("version", "", "package version (required), e.g. 1.2.3 or 0.0.0~git0123abc")
	arch := flag.String("arch", "amd64", "Debian architecture of the binaries")
	root := flag.String("root", "..", "the repository's top directory; nfpm.yaml's paths are relative to it")
	out := flag.String("o", "", "package file to write (required)")
	flag.Parse()
	if *ver == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run . -version VERSION [-arch ARCH] [-root DIR] -o FILE.deb")
		os.Exit(2)
	}
	if err := build(*ver, *arch, *root, *out); err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
}

func build(ver, arch, root, out string) error {
	conf, err := filepath.Abs("nfpm.yaml")
	if err != nil {
		return err
	}
	outAbs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	env := map[string]string{"VERSION": ver, "ARCH": arch}
	cfg, err := nfpm.ParseFileWithEnvMapping(conf, func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	f, err := os.Create(outAbs)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(outAbs)
		return err
	}
	return f.Close()
}
