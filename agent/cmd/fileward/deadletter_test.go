package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// TestDeadLetterWriteErrorKeepsShipping: the dead-letter directory cannot be
// created (a regular file is in its place under data_dir). The sink refuses
// every odd-numbered event (400): the agent cannot dead-letter them, says so
// (log and fileward_sink_errors_total{kind="deadletter"}), counts each
// exactly as rejected, and goes on: every even-numbered event is delivered
// once, and SIGTERM ends it with exit 0 and no stack trace.
func TestDeadLetterWriteErrorKeepsShipping(t *testing.T) {
	const n = 400
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "dead-letter"), []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := bulktest.New(21)
	defer srv.Close()
	seqRe := regexp.MustCompile(`"sequence":(\d+)`)
	srv.SetPoison(func(doc []byte) string {
		if !strings.Contains(string(doc), `"dataset":"fileward.file"`) && !strings.Contains(string(doc), `"dataset":"fileward.process"`) {
			return "" // loss reports and heartbeats go through
		}
		m := seqRe.FindSubmatch(doc)
		if m == nil {
			return ""
		}
		if q, _ := strconv.Atoi(string(m[1])); q%2 == 1 {
			return "odd events are refused"
		}
		return ""
	})
	cfg := filepath.Join(dir, "c.yaml")
	esReplayConfig{dataDir: data, shutdown: "2s", in: in, esURL: srv.URL, maxEvents: 32, metrics: "127.0.0.1:0"}.write(t, cfg)
	proc := startRun(t, cfg)
	metricsURL := proc.metricsURL()
	deadline := time.Now().Add(60 * time.Second)
	const rejected = `fileward_events_dropped_total{reason="rejected"}`
	const dlErrors = `fileward_sink_errors_total{kind="deadletter",sink="es"}`
	var page string
	for time.Now().Before(deadline) {
		page = httpGet(t, metricsURL)
		docs, _ := streamDocs(srv)
		if seqs, _, _ := tally(docs); metricValue(page, rejected) >= n/2 && len(seqs) >= n/2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := proc.stop()
	out := proc.log()
	if err != nil {
		t.Fatalf("agent: %v (want exit 0)\n%s", err, out)
	}
	if got := metricValue(page, rejected); got != n/2 {
		t.Errorf("%s = %v, want exactly %d", rejected, got, n/2)
	}
	if got := metricValue(page, dlErrors); got < 1 {
		t.Errorf("%s = %v, want at least 1", dlErrors, got)
	}
	if !strings.Contains(out, "ship: write dead-letter file") || !strings.Contains(out, "not a directory") {
		t.Errorf("the write error is not logged with its cause:\n%s", out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Errorf("a stack trace:\n%s", out)
	}
	// The even events, each once.
	docs, dupes := streamDocs(srv)
	seqs, _, _ := tally(docs)
	if dupes != 0 || len(seqs) != n/2 {
		t.Errorf("delivered %d file events (%d duplicates), want the %d even ones once", len(seqs), dupes, n/2)
	}
	for i, q := range seqs {
		if q != 2*(i+1) {
			t.Fatalf("delivered event.sequence %v..., want 2, 4, ..., %d", seqs[:min(len(seqs), 10)], n)
		}
	}
	// The file in the way is untouched.
	if b, err := os.ReadFile(filepath.Join(data, "dead-letter")); err != nil || string(b) != "not a directory\n" {
		t.Errorf("the file in the dead-letter directory's place: %q, %v", b, err)
	}
}
