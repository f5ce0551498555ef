//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
)

// TestReloadOnSIGHUP runs the agent with fanotify capture on a tmpfs and
// one file sink, then reloads it with SIGHUP:
//   - a valid change (a new exclude path, a second file sink) takes effect
//     without a restart: events after the reload follow the new rules, and
//     the events spooled before it reach both sinks, once each;
//   - a change to the fanotify marks is logged as needing a restart;
//   - a broken config is logged at FILE:LINE and the agent keeps running on
//     the config it has.
func TestReloadOnSIGHUP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
	dir := t.TempDir()
	mnt := testtool.Tmpfs(t, "64m")
	x, y := filepath.Join(mnt, "x"), filepath.Join(mnt, "y")
	for _, d := range []string{x, y} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outA, outB := filepath.Join(dir, "out", "a.ndjson"), filepath.Join(dir, "out", "b.ndjson")
	cfg := filepath.Join(dir, "c.yaml")
	write := func(exclude, marks, extraSink string) {
		t.Helper()
		body := fmt.Sprintf(`agent: {data_dir: %[1]s/data, heartbeat: 0s}
source:
  type: fanotify
  events: [create]
  fanotify: {marks: [%[2]s]}
filters: {aggregate_window: 0s, exclude_paths: [%[3]s]}
batch: {max_wait: 50ms}
sinks:
  - {name: a, type: file, file: {path: %[4]s}}
%[5]smetrics: {listen: ""}
`, dir, marks, exclude, outA, extraSink)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/proc/", mnt, "")
	proc := startRun(t, cfg)
	defer proc.stop()
	waitLog := proc.waitLog
	waitLog("events go to", 0)
	create := func(p string) {
		t.Helper()
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	has := func(evs []schema.Event, p string) int {
		n := 0
		for _, e := range evs {
			if e.Path == p && e.Action == schema.ActionCreation {
				n++
			}
		}
		return n
	}
	for i := 1; i <= 5; i++ {
		create(filepath.Join(x, fmt.Sprint("before", i)))
	}
	if !waitDocs(t, outA, 15*time.Second, func(evs []schema.Event) bool { return has(evs, filepath.Join(x, "before5")) == 1 }) {
		t.Fatalf("sink a did not get the first events\n%s", proc.log())
	}

	// A valid change: exclude x/, add sink b, and change the marks (which
	// needs a restart and keeps its running value).
	write(x+"/", mnt+", /tmp", fmt.Sprintf("  - {name: b, type: file, file: {path: %s}}\n", outB))
	proc.cmd.Process.Signal(syscall.SIGHUP)
	at := waitLog("config reloaded", 0)
	if !strings.Contains(proc.log(), "restart needed for source.fanotify.marks:") {
		t.Errorf("no restart notice for the changed marks:\n%s", proc.log())
	}
	create(filepath.Join(x, "after"))  // excluded now
	create(filepath.Join(y, "after"))  // both sinks
	create(filepath.Join(y, "after2")) // sentinel
	for _, out := range []string{outA, outB} {
		if !waitDocs(t, out, 15*time.Second, func(evs []schema.Event) bool { return has(evs, filepath.Join(y, "after2")) == 1 }) {
			t.Fatalf("%s did not get the events after the reload\n%s", out, proc.log())
		}
	}

	// A broken config: logged at its line; the agent keeps running.
	if err := os.WriteFile(cfg, []byte("agent:\n  data_dir: "+dir+"/data\n  colour: blue\nqueue:\n  capacity: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(cfg+":3: agent.colour: unknown key", at)
	waitLog(cfg+":5: queue.capacity: \\\"lots\\\" is not a whole number", at)
	create(filepath.Join(y, "broken"))
	for _, out := range []string{outA, outB} {
		if !waitDocs(t, out, 15*time.Second, func(evs []schema.Event) bool { return has(evs, filepath.Join(y, "broken")) == 1 }) {
			t.Fatalf("%s: the agent stopped capturing after a broken reload\n%s", out, proc.log())
		}
	}

	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	a, b := readDocs(t, outA), readDocs(t, outB)
	for _, out := range []struct {
		name string
		evs  []schema.Event
	}{{"a", a}, {"b", b}} {
		for i := 1; i <= 5; i++ {
			if n := has(out.evs, filepath.Join(x, fmt.Sprint("before", i))); n != 1 {
				t.Errorf("sink %s has the spooled event before%d %d times, want once", out.name, i, n)
			}
		}
		if n := has(out.evs, filepath.Join(x, "after")); n != 0 {
			t.Errorf("sink %s has x/after, which the reloaded rules exclude", out.name)
		}
		for _, p := range []string{"after", "after2", "broken"} {
			if n := has(out.evs, filepath.Join(y, p)); n != 1 {
				t.Errorf("sink %s has y/%s %d times, want once", out.name, p, n)
			}
		}
	}
	if t.Failed() {
		t.Logf("agent log:\n%s", proc.log())
	}
}
