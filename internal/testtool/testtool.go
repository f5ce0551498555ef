// Package testtool holds what many packages' tests share. Need finds the
// external programs that tests use (kcat, promtool, systemd-analyze,
// kubectl, sh): a test that needs a tool fails when the tool is missing,
// naming the Debian package that provides it (a cross-check that silently
// skips proves nothing; .ci/run installs them all). Tmpfs, MountTmpfs and
// FillDisk give a test a filesystem of its own (Linux, as root), and
// SyncBuffer collects a child's or a goroutine's output for the test to read.
package testtool

import (
	"bytes"
	"os/exec"
	"sync"
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

// SyncBuffer is a bytes.Buffer that a child process's output (or a
// logger's goroutine) writes into while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
