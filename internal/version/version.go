// Package version says which build of cipherknock is running. Release
// builds stamp the version with
//
//	-ldflags "-X github.com/cipherknock/cipherknock/internal/version.stamp=1.2.3"
//
// (the Makefile does, from git describe); other builds report the module
// version or VCS revision that the Go toolchain recorded, or "devel".
package version

import (
	"runtime"
	"runtime/debug"
)

// stamp is set by the linker in release builds.
var stamp = ""

// String returns the version: the linker's stamp, else the module version
// from the build information, else "devel" with the VCS revision when
// known ("devel+0123456789ab", "+dirty" for a modified tree).
func String() string {
	if stamp != "" {
		return stamp
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v := "devel"
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += "+" + rev + dirty
	}
	return v
}

// Line is the one line both commands print for --version:
// "NAME VERSION (GO, OS/ARCH)".
func Line(name string) string {
	return name + " " + String() + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
