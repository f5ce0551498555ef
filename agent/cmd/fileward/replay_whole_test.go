package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayFullSpeedArrivesWhole replays 200,000 events at full speed
// through a small ring. A replay is a backfill: it waits for ring space, so
// every event reaches the file sink and nothing is reported lost.
func TestReplayFullSpeedArrivesWhole(t *testing.T) {
	const want = 200000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	var buf bytes.Buffer
	for i := 0; i < want; i++ { // small eslogger open events, one per line
		fmt.Fprintf(&buf, `{"process":{"executable":{"path":"/bin/zsh"},"audit_token":[501,501,20,501,20,65195,100017,91040]},"event_type":10,"event":{"open":{"file":{"path":"/Users/a/f%d"},"fflag":1}},"time":"2026-11-01T12:00:00.000000Z","version":7}`+"\n", i)
	}
	if err := os.WriteFile(in, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source: {type: replay, replay: {path: %[2]s, rate: 0}}
filters: {aggregate_window: 0s, exclude_paths: []}
queue: {capacity: 1024}
batch: {max_events: 2048, max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[3]s, rotate_bytes: 4GiB}}
metrics: {listen: ""}
`, dir, in, out), 0o644)
	start := time.Now()
	proc := startRun(t, cfg)
	countLines := func() int {
		f, err := os.Open(out)
		if err != nil {
			return 0
		}
		defer f.Close()
		n := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			n++
		}
		return n
	}
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(proc.log(), "replay reached the end") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := proc.stop(); err != nil { // drains the pipeline and the shipper
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	t.Logf("%d events replayed and delivered in %v", want, time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte(`"events_lost"`)); n > 0 {
		i := bytes.Index(b, []byte(`"events_lost"`))
		t.Errorf("%d events_lost documents, e.g. …%s…", n, b[max(0, i-200):min(len(b), i+300)])
	}
	if n := countLines(); n != want {
		t.Errorf("the file sink has %d documents, want %d\n%s", n, want, proc.log())
	}
}
