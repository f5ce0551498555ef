// Package testbin builds the fileward binary for process-level tests.
//
// When FILEWARD_BIN_COVERDIR names a directory (make cover sets it), the
// binary is built with coverage instrumentation of every package of the
// module, and the processes it runs write their counters there: make cover
// merges them with the package tests' own, so code reached only through the
// real binary (start-up failures, signals, reload) counts as covered.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
)

// CoverDirEnv is the environment variable that turns on a coverage build.
const CoverDirEnv = "FILEWARD_BIN_COVERDIR"

// Build builds github.com/fileward/fileward/agent/cmd/fileward into out.
func Build(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	args := []string{"build", "-o", out}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if dir := os.Getenv(CoverDirEnv); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		args = append(args, "-cover", "-covermode=set", "-coverpkg=github.com/fileward/fileward/...")
		// The binary's children inherit it from the test process.
		os.Setenv("GOCOVERDIR", dir)
	}
	args = append(args, "github.com/fileward/fileward/agent/cmd/fileward")
	cmd := exec.Command(gobin, args...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build fileward: %w\n%s", err, b)
	}
	return nil
}
