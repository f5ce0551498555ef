// Package testtool finds the external programs that tests use (kcat,
// promtool, systemd-analyze, kubectl, sh). A test that needs a tool fails when
// the tool is missing, naming the Debian package that provides it: a
// cross-check that silently skips proves nothing. .ci/run installs them all.
package testtool

import (
	"os/exec"
	"testing"
)

// Need returns the path of the program name, or fails the test, saying which
// Debian package provides it.
func Need(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: this test needs it (Debian package %s: apt-get install %s; .ci/run installs it)",
			name, debianPackage, debianPackage)
	}
	return p
}
