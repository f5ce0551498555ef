package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadChangesSinks: `fileward reload` removes a sink (its cursor stays
// for spool prune), changes another (its successor writes to the new path,
// resuming from the cursor), and a reload whose new sink cannot be built is
// rejected as a whole: the agent keeps its running sinks and says so.
func TestReloadChangesSinks(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, 20)
	cfg := filepath.Join(dir, "c.yaml")
	write := func(sinks string) {
		t.Helper()
		body := fmt.Sprintf("agent: {data_dir: %[1]s/data, heartbeat: 0s}\nsource: {type: replay, replay: {path: %[2]s, format: ecs, loop: true, rate: 200}}\nbatch: {max_wait: 20ms}\nmetrics: {listen: \"\"}\nsinks:\n%[3]s", dir, in, sinks)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sink := func(name, path string) string {
		return fmt.Sprintf("  - {name: %s, type: file, file: {path: %s}}\n", name, path)
	}
	a, a2, b := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "a2.ndjson"), filepath.Join(dir, "b.ndjson")
	write(sink("a", a) + sink("b", b))
	proc := startRun(t, cfg)
	waitLog := proc.waitLog
	grows := func(path string) {
		t.Helper()
		fi, _ := os.Stat(path)
		var size int64
		if fi != nil {
			size = fi.Size()
		}
		for deadline := time.Now().Add(60 * time.Second); ; {
			if fi, err := os.Stat(path); err == nil && fi.Size() > size {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not grow:\n%s", path, proc.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("events go to", 0)
	grows(a)
	grows(b)

	write(sink("a", a2))
	if out, errOut, code := fw(t, nil, "reload", "-c", cfg); code != 0 || !strings.Contains(out, "sent SIGHUP to the agent (pid ") {
		t.Fatalf("reload: exit %d\n%s%s", code, out, errOut)
	}
	at := waitLog("config reloaded", 0)
	for msg, name := range map[string]string{
		"sink removed; its spool cursor stays on disk (fileward spool prune removes it)": "sink=b",
		"sink changed; it resumes from its cursor":                                       "sink=a",
	} {
		found := false
		for _, l := range strings.Split(proc.log(), "\n") {
			found = found || (strings.Contains(l, msg) && strings.Contains(l, name))
		}
		if !found {
			t.Errorf("no %q line for %s in the log:\n%s", msg, name, proc.log())
		}
	}
	grows(a2)

	// A new sink whose directory cannot be created: the whole reload is
	// rejected and a keeps delivering to a2.
	blocker := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write(sink("a", a2) + sink("c", filepath.Join(blocker, "sub", "c.ndjson")))
	proc.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("reload rejected, the agent keeps its running config: sink c: file sink: create directory", at)
	grows(a2)
	if _, err := os.Stat(filepath.Join(blocker, "sub")); err == nil {
		t.Error("the rejected sink created its directory")
	}

	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
}
