package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestApplyMemoryLimit: agent.memory_limit becomes the runtime's soft
// memory limit; 0 leaves it alone; a GOMEMLIMIT in the environment wins
// and the log says so.
func TestApplyMemoryLimit(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))

	debug.SetMemoryLimit(math.MaxInt64)
	if got := applyMemoryLimit(64<<20, "", log); got != 64<<20 || debug.SetMemoryLimit(-1) != 64<<20 {
		t.Errorf("64MiB: returned %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got := applyMemoryLimit(0, "", log); got != math.MaxInt64 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("0: returned %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
	// As if the runtime had read GOMEMLIMIT=200MiB at start-up.
	debug.SetMemoryLimit(200 << 20)
	if got := applyMemoryLimit(64<<20, "200MiB", log); got != 200<<20 || debug.SetMemoryLimit(-1) != 200<<20 {
		t.Errorf("GOMEMLIMIT=200MiB: returned %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
	if !strings.Contains(logBuf.String(), "GOMEMLIMIT is set: it replaces agent.memory_limit") {
		t.Errorf("no log line for GOMEMLIMIT winning: %q", logBuf.String())
	}
}

// TestBadMemoryLimit: the real binary refuses a memory limit that would
// keep the collector running, with the line and the rule.
func TestBadMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	for _, v := range []string{"1MiB", "-1"} {
		os.WriteFile(cfg, fmt.Appendf(nil, "agent:\n  data_dir: %[1]s/data\n  memory_limit: %[2]s\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/o.ndjson}}\n", dir, v), 0o644)
		for _, cmd := range []string{"check-config", "run"} {
			_, errOut, code := fw(t, nil, cmd, "-c", cfg)
			if code != 2 || !strings.Contains(errOut, cfg+":3: agent.memory_limit") {
				t.Errorf("%s with memory_limit %s: exit %d, %q", cmd, v, code, errOut)
			}
		}
	}
}
