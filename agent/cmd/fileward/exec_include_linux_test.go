//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
)

// TestShortLivedExecOutsideIncludePaths is the `make run` scenario with
// include_paths: a copied cat that lives outside the included tree reads a
// file inside it and exits within a millisecond or so. Its exec event is
// dropped by the path rules, but must still feed the exec cache, so that
// the open of the file names the cat as process.executable even though the
// process is gone before the pipeline looks at /proc.
func TestShortLivedExecOutsideIncludePaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
	dir := t.TempDir()
	mnt := testtool.Tmpfs(t, "64m")
	bin, tmp := filepath.Join(mnt, "bin"), filepath.Join(mnt, "tmp")
	for _, d := range []string{bin, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cat := filepath.Join(bin, "cat")
	copyProgram(t, "cat", cat)
	note := filepath.Join(tmp, "note.txt")
	if err := os.WriteFile(note, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source:
  type: fanotify
  events: [open, exec]
  fanotify: {marks: [%[2]s], mark_type: filesystem}
filters: {include_paths: [%[3]s/], aggregate_window: 0s}
batch: {max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[4]s}}
metrics: {listen: ""}
`, dir, mnt, tmp, out), 0o644)
	proc := startRun(t, cfg)
	defer proc.stop()
	proc.waitLog("events go to", 0)
	// Several runs: without the exec cache each would depend on the race
	// between the cat's exit and the pipeline's read of /proc.
	const runs = 20
	pids := map[int]bool{}
	for i := 0; i < runs; i++ {
		c := exec.Command(cat, note)
		start := time.Now()
		o, err := c.Output()
		if err != nil || string(o) != "short" {
			t.Fatalf("cat: %v %q", err, o)
		}
		if i == 0 {
			t.Logf("one cat run took %v", time.Since(start))
		}
		pids[c.Process.Pid] = true
	}
	var docs []schema.Event
	seen := func(evs []schema.Event) int {
		n := 0
		for _, e := range evs {
			if e.Action == schema.ActionOpen && e.Path == note && pids[int(e.Process.PID)] {
				n++
			}
		}
		return n
	}
	waitDocs(t, out, 20*time.Second, func(evs []schema.Event) bool { docs = evs; return seen(evs) >= runs })
	if n := seen(docs); n < runs {
		t.Fatalf("%d of %d cat opens reached the output\n%s", n, runs, proc.log())
	}
	for _, e := range docs {
		if e.Path == cat || strings.HasPrefix(e.Path, bin+"/") {
			t.Errorf("an event outside include_paths reached the output: %v %s", e.Action, e.Path)
		}
		if e.Action == schema.ActionOpen && e.Path == note && pids[int(e.Process.PID)] && e.Process.Executable != cat {
			t.Errorf("pid %d's open of %s: process.executable %q, want %q", e.Process.PID, note, e.Process.Executable, cat)
		}
	}
}
