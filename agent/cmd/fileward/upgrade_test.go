package main

import (
	le "encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyFixture copies agent/spool's format-1 fixture (a spool written by the
// first packaged release) to <dir>/data/spool.
func copyFixture(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join("..", "..", "spool", "testdata", "spool-format1")
	dst := filepath.Join(dir, "data", "spool")
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestSpoolUpgradeAndRollback runs the binary on a spool written by the
// previous format (it reads it: stat, verify, and run ships the backlog), and
// on a spool one of whose segments a newer fileward wrote (stat, verify and
// run refuse it, exit 1, naming the spool's format version, the newest this
// binary reads and its own version, and change nothing).
func TestSpoolUpgradeAndRollback(t *testing.T) {
	dir := t.TempDir()
	sdir := copyFixture(t, dir)
	out := filepath.Join(dir, "out.ndjson")
	cfg := filepath.Join(dir, "fileward.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, shutdown_timeout: 5s}
source: {type: replay, replay: {path: %[1]s/empty.ndjson, format: ecs}}
sinks:
  - {name: kafka, type: file, file: {path: %[2]s}}
metrics: {listen: "127.0.0.1:0"}
`, dir, out), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.ndjson"), nil, 0o644)

	o, e, code := fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(o, "clean: 8 records, 32 events") {
		t.Fatalf("verify of the format-1 fixture: code %d\n%s%s", code, o, e)
	}
	// The newer segment is the newest one, as after an upgrade that wrote.
	seg := filepath.Join(sdir, "00000000000000000006.seg")
	orig, _ := os.ReadFile(seg)
	b := append([]byte(nil), orig...)
	b[4] = 3 // this build writes format 2
	le.LittleEndian.PutUint32(b[16:20], crc32.Checksum(b[:16], crc32.MakeTable(crc32.Castagnoli)))
	os.WriteFile(seg, b, 0o600)
	for _, args := range [][]string{{"spool", "stat", "-c", cfg}, {"spool", "verify", "-c", cfg}, {"run", "-c", cfg}} {
		o, e, code := fw(t, nil, args...)
		if code != 1 {
			t.Errorf("%v on a newer spool: exit %d, want 1\n%s%s", args, code, o, e)
		}
		for _, want := range []string{"00000000000000000006.seg is in spool format version 3", "reads format versions up to 2", "this is fileward dev"} {
			if !strings.Contains(e, want) {
				t.Errorf("%v: stderr does not say %q:\n%s", args, want, e)
			}
		}
		if strings.Contains(e, "goroutine ") {
			t.Errorf("%v: stack trace:\n%s", args, e)
		}
	}
	if now, _ := os.ReadFile(seg); string(now) != string(b) {
		t.Error("the refused segment was changed")
	}
	if q, _ := os.ReadDir(filepath.Join(sdir, "quarantine")); len(q) > 0 {
		t.Errorf("quarantined %d files", len(q))
	}

	// Back on a build that reads it: run ships the backlog the fixture's
	// kafka cursor had not acknowledged (events 20 to 47).
	os.WriteFile(seg, orig, 0o600)
	proc := startRun(t, cfg)
	var shipped []byte
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(string(shipped), `"id":"fixture-v1-047"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		shipped, _ = os.ReadFile(out)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("run on the format-1 fixture: %v\n%s", err, proc.log())
	}
	shipped, _ = os.ReadFile(out)
	for i := 20; i < 48; i++ {
		if id := fmt.Sprintf(`"id":"fixture-v1-%03d"`, i); !strings.Contains(string(shipped), id) {
			t.Errorf("run did not ship %s", id)
		}
	}
	if strings.Contains(string(shipped), `"id":"fixture-v1-019"`) {
		t.Error("run re-shipped an event the fixture's cursor had acknowledged")
	}
}
