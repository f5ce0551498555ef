//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testfixtures"
	"github.com/fileward/fileward/internal/testtool"
)

// TestRunReplayFileShrinks: a replay input truncated while the agent reads
// it (through its memory mapping, whose lost pages then fault) makes
// `fileward run` stop with a clear error and a non-zero exit, not a crash
// with a stack trace.
func TestRunReplayFileShrinks(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	var one bytes.Buffer
	for _, f := range testfixtures.EsloggerFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		one.Write(bytes.TrimRight(b, "\n"))
		one.WriteByte('\n')
	}
	// About 15 MB: at 200 events/s the replay is far from its end when the
	// file is cut, with the mapped window well inside it.
	if err := os.WriteFile(in, bytes.Repeat(one.Bytes(), 150), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "c.yaml", `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source: {type: replay, replay: {path: %[1]s/in.ndjson, rate: 200}}
filters: {aggregate_window: 0s}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out/events.ndjson}}
metrics: {listen: "127.0.0.1:0"}
`)
	cmd := exec.Command(binary, "run", "-c", cfg)
	var out, errb testtool.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Cut the file once events have reached the sink.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, _ := os.ReadFile(filepath.Join(dir, "out", "events.ndjson")); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no event reached the sink in 60 s\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Truncate(in, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the agent did not stop within 120 s of the truncation\n%s", errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	expectFail(t, code, out.String(), errb.String(), 1, "capture failed", "the file shrank while it was replayed")
}
