//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
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

// copyProgram copies the program name, found in $PATH, to to (mode 0755):
// a binary of the test's own whose exec and opens the test can tell apart.
func copyProgram(t *testing.T, name, to string) {
	t.Helper()
	from, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRunFanotifyEndToEnd runs the real agent (`fileward run`, fanotify
// source, pipeline, spool, file sink) on a tmpfs the test mounts, performs
// every operation of issue 5's list from this test process, and reads the
// agent's own NDJSON output: each operation must be there with the right
// event.action, file.path, original path for renames, process.pid and
// process.executable. The agent's data_dir and output live on the watched
// filesystem, and no document may name them. Then one file is opened 10,000
// times by this process within the aggregation window.
func TestRunFanotifyEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
	dir, mnt := t.TempDir(), testtool.Tmpfs(t, "256m")
	work := filepath.Join(mnt, "work")
	data := filepath.Join(mnt, "data")
	out := filepath.Join(mnt, "out", "events.ndjson")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s, heartbeat: 300ms}
source:
  type: fanotify
  events: [open, close, create, modify, rename, delete, attrib, exec]
  fanotify: {marks: [%[2]s], mark_type: filesystem}
filters: {aggregate_window: 3s}
batch: {max_wait: 100ms}
sinks:
  - {name: local, type: file, file: {path: %[3]s}}
metrics: {listen: "127.0.0.1:0"}
`, data, mnt, out), 0o644)
	errb, stop := startFanotifyAgent(t, cfg)

	self := os.Getpid()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := func(parts ...string) string { return filepath.Join(append([]string{work}, parts...)...) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		action     schema.Action
		path, orig string
		pid        int
		exe        string
	}
	var wants []want
	expect := func(a schema.Action, path, orig string) {
		wants = append(wants, want{a, path, orig, self, exe})
	}
	// A pause between steps keeps the kernel from merging records of
	// different steps (merging has its own tests in the fanotify package).
	step := func() { time.Sleep(30 * time.Millisecond) }

	must(os.WriteFile(p("a.txt"), []byte("hello"), 0o644)) // create, write, close
	expect(schema.ActionCreation, p("a.txt"), "")
	expect(schema.ActionModification, p("a.txt"), "")
	step()
	_, err = os.ReadFile(p("a.txt")) // open for read, close
	must(err)
	expect(schema.ActionOpen, p("a.txt"), "")
	expect(schema.ActionClose, p("a.txt"), "")
	step()
	must(os.Rename(p("a.txt"), p("b.txt"))) // rename within a directory
	expect(schema.ActionRename, p("b.txt"), p("a.txt"))
	step()
	must(os.Mkdir(p("sub"), 0o755)) // mkdir
	expect(schema.ActionCreation, p("sub"), "")
	step()
	must(os.Rename(p("b.txt"), p("sub", "c.txt"))) // rename across directories
	expect(schema.ActionRename, p("sub", "c.txt"), p("b.txt"))
	step()
	must(os.Chmod(p("sub", "c.txt"), 0o600)) // chmod
	expect(schema.ActionAttributesModification, p("sub", "c.txt"), "")
	step()
	must(os.Chown(p("sub", "c.txt"), 1234, 1234)) // chown
	step()
	must(os.Link(p("sub", "c.txt"), p("l.txt"))) // link: the new name is a creation
	expect(schema.ActionCreation, p("l.txt"), "")
	step()
	must(os.Remove(p("l.txt"))) // unlink
	expect(schema.ActionDeletion, p("l.txt"), "")
	step()
	must(os.Remove(p("sub", "c.txt")))
	expect(schema.ActionDeletion, p("sub", "c.txt"), "")
	step()
	must(os.Remove(p("sub"))) // rmdir
	expect(schema.ActionDeletion, p("sub"), "")
	step()
	// exec of a copied binary: the event comes from the child, whose
	// executable is the copy once the exec completes.
	copied := p("mysleep")
	copyProgram(t, "sleep", copied)
	child := exec.Command(copied, "3")
	must(child.Start())
	defer func() { child.Process.Kill(); child.Wait() }()
	wants = append(wants, want{schema.ActionExec, copied, "", child.Process.Pid, copied})
	step()

	// A short-lived process: a copied cat reads a file and exits at once,
	// often before the pipeline looks at its pid. Its events are named from
	// /proc if the pipeline is quick enough, else by its exec event (procfs'
	// TestShortLivedProcessFromExec covers that path deterministically).
	mycat := p("mycat")
	copyProgram(t, "cat", mycat)
	must(os.WriteFile(p("note.txt"), []byte("short"), 0o644))
	step()
	catCmd := exec.Command(mycat, p("note.txt"))
	if o, err := catCmd.Output(); err != nil || string(o) != "short" {
		t.Fatalf("mycat: %v %q", err, o)
	}
	wants = append(wants, want{schema.ActionExec, mycat, "", catCmd.Process.Pid, mycat},
		want{schema.ActionOpen, p("note.txt"), "", catCmd.Process.Pid, mycat})
	step()

	// 10,000 opens of one file by this process, inside the window.
	hot := p("hot")
	must(os.WriteFile(hot, []byte("x"), 0o644))
	step()
	const n = 10000
	for i := 0; i < n; i++ {
		f, err := os.Open(hot)
		must(err)
		f.Close()
	}
	step()
	must(os.WriteFile(p("end"), nil, 0o644)) // a sentinel

	// The sentinel's documents are written once its aggregation window
	// closes; then stop the agent, which drains everything.
	if !waitDocs(t, out, 15*time.Second, func(evs []schema.Event) bool {
		for _, e := range evs {
			if e.Path == p("end") && e.Action == schema.ActionCreation {
				return true
			}
		}
		return false
	}) {
		t.Error("the sentinel's creation never reached the output")
	}
	// Every record the agent took from the kernel is either filtered or
	// in a document (folded ones in its fileward.count): read what it
	// captured and filtered once capture has gone quiet, then stop (which
	// emits what aggregation still holds) and count the documents.
	m := metricsAtRe.FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("no metrics address in the agent's log:\n%s", errb.String())
	}
	var captured, filtered float64
	for last, quiet := -1.0, 0; quiet < 5; time.Sleep(100 * time.Millisecond) {
		page := httpGet(t, "http://"+m[1]+"/metrics")
		captured = metricValue(page, `fileward_events_captured_total{source="fanotify"}`)
		filtered = metricValue(page, "fileward_events_filtered_total")
		if captured == last {
			quiet++
		} else {
			last, quiet = captured, 0
		}
	}
	stop()
	docs := readDocs(t, out)
	sum := 0
	for _, e := range docs {
		sum += count(e)
	}
	if float64(sum) != captured-filtered {
		t.Errorf("the documents stand for %d records (fileward.count summed); the agent captured %v and filtered %v: %v lost or invented between the ring and the output",
			sum, captured, filtered, captured-filtered-float64(sum))
	}
	// Heartbeats ran with the pipeline's Stats callback: the spool size it
	// fills is in them.
	if !heartbeatWithSpoolBytes(t, out) {
		t.Error("no heartbeat document carries fileward.stats.spool_bytes > 0")
	}

	// Aggregation emits a document when its window closes, so the order of
	// the output is not the order of the operations: look each one up.
	for _, w := range wants {
		found := false
		for _, e := range docs {
			if e.Action != w.action || e.Path != w.path || e.OrigPath != w.orig || int(e.Process.PID) != w.pid {
				continue
			}
			if e.Process.Executable != w.exe {
				t.Errorf("%v %s: process.executable %q, want %q", w.action, w.path, e.Process.Executable, w.exe)
			}
			if e.Provider != schema.ProviderFanotify {
				t.Errorf("%v %s: provider %v", w.action, w.path, e.Provider)
			}
			found = true
			break
		}
		if !found {
			t.Errorf("missing %v %s (orig %q, pid %d)", w.action, w.path, w.orig, w.pid)
		}
	}
	// chmod and chown of one file by one process within the window: one
	// document with fileward.count 2, or two; or, when both records waited
	// in the kernel's queue together (a loaded machine), the kernel merged
	// them into one record and says nothing of it: 1 is the stated bound
	// of fanotify, and the exact accounting above still holds.
	attribs := 0
	for _, e := range docs {
		if e.Action == schema.ActionAttributesModification && e.Path == p("sub", "c.txt") {
			attribs += count(e)
		}
		if strings.HasPrefix(e.Path, data+"/") || strings.HasPrefix(e.Path, filepath.Dir(out)+"/") {
			t.Errorf("the agent reported its own file: %v %s", e.Action, e.Path)
		}
	}
	if attribs < 1 || attribs > 2 {
		t.Errorf("chmod and chown gave %d attributes_modification events, want 2 (or 1, merged in the kernel's queue)", attribs)
	}

	// The kernel merges repeats of an identical event while they wait in
	// its queue and does not say how many it merged, so the 10,000 opens
	// arrive as far fewer records. What reaches the pipeline must fold into
	// a few documents, and nothing may be lost on the way.
	var opens, closes int
	var openCount, closeCount int
	for _, e := range docs {
		if e.Path != hot || int(e.Process.PID) != self {
			continue
		}
		switch e.Action {
		case schema.ActionOpen:
			opens++
			openCount += count(e)
		case schema.ActionClose:
			closes++
			closeCount += count(e)
		}
	}
	t.Logf("%d opens of one file → %d open documents (fileward.count sum %d), %d close documents (sum %d)", n, opens, openCount, closes, closeCount)
	if opens < 1 || opens > 3 || closes < 1 || closes > 3 {
		t.Errorf("10,000 opens in one window gave %d open and %d close documents, want 1–3 of each", opens, closes)
	}
	// The kernel's merging makes these sums a lower bound of the 10,000
	// (docs/linux.md); what the agent received of them is accounted for
	// exactly above.
	if openCount < 1 || openCount > n || closeCount < 1 || closeCount > n {
		t.Errorf("fileward.count sums %d (open) and %d (close), want 1…%d", openCount, closeCount, n)
	}
	if s := errb.String(); strings.Contains(s, "events_lost") || strings.Contains(s, "level=ERROR") {
		t.Errorf("the agent logged a loss or an error:\n%s", s)
	}
	if t.Failed() {
		for _, e := range docs {
			t.Logf("%v %s (orig %q) pid %d exe %q count %d", e.Action, e.Path, e.OrigPath, e.Process.PID, e.Process.Executable, e.Count)
		}
		t.Logf("agent log:\n%s", errb.String())
	}
}

// count is how many raw events a document stands for: fileward.count when
// aggregation folded several, else one.
func count(e schema.Event) int {
	if e.Count > 1 {
		return int(e.Count)
	}
	return 1
}

// readDocs decodes the file events of an NDJSON file, skipping the agent's
// own documents (loss reports, heartbeats).
func readDocs(t *testing.T, path string) []schema.Event {
	t.Helper()
	evs, losses := readDocsAndLosses(t, path)
	for _, l := range losses {
		t.Errorf("loss reported: %s", l)
	}
	return evs
}

// readDocsAndLosses is readDocs that returns the stream's loss reports
// (events_lost documents) instead of failing on them.
func readDocsAndLosses(t *testing.T, path string) (evs []schema.Event, losses [][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	// The agent may be writing: a last line without its newline is not
	// written yet.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e schema.Event
		if err := schema.DecodeECS(sc.Bytes(), &e); err != nil {
			if errors.Is(err, schema.ErrNotFileEvent) {
				if bytes.Contains(sc.Bytes(), []byte(`"events_lost"`)) {
					losses = append(losses, bytes.Clone(sc.Bytes()))
				}
				continue
			}
			t.Fatalf("bad document %q: %v", sc.Bytes(), err)
		}
		evs = append(evs, e)
	}
	return evs, losses
}

// waitDocs polls the output until done holds for its documents, or d passes.
func waitDocs(t *testing.T, path string, d time.Duration, done func([]schema.Event) bool) bool {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if done(readDocs(t, path)) {
			return true
		}
	}
	return false
}

// heartbeatWithSpoolBytes reports whether the NDJSON file holds a heartbeat
// document whose fileward.stats.spool_bytes is positive.
func heartbeatWithSpoolBytes(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"action":"heartbeat"`)) {
			continue
		}
		var d struct {
			Fileward struct {
				Stats struct {
					SpoolBytes int64 `json:"spool_bytes"`
				} `json:"stats"`
			} `json:"fileward"`
		}
		if json.Unmarshal(line, &d) == nil && d.Fileward.Stats.SpoolBytes > 0 {
			return true
		}
	}
	return false
}
