package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
)

func TestSpoolStatVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}\n", dir), 0o644)
	sdir := filepath.Join(dir, "data", "spool")
	s, err := spool.Open(context.Background(), spool.Options{Dir: sdir, MaxBytes: 1 << 20, SegmentBytes: 16 << 10, Fsync: spool.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		evs := make([]sinks.Event, 10)
		for k := range evs {
			evs[k] = sinks.Event{ID: fmt.Sprintf("e%d-%d", i, k), Doc: []byte(`{"pad":"` + strings.Repeat("x", 300) + `"}`)}
		}
		if err := s.Append(context.Background(), sinks.AppendBatch(nil, evs), len(evs)); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := s.Reader("local")
	for i := 0; i < 5 && r.Next(); i++ {
		r.Ack()
	}
	r.Close()
	s.Close() // the consumed first segment is deleted

	out, errOut, code := fw(t, nil, "spool", "stat", "-c", cfg)
	if code != 0 || !strings.Contains(out, "cursor    local") || !strings.Contains(out, "lag 150 events") ||
		!strings.Contains(out, "events:   150 held") || !strings.Contains(out, "agent running: no") ||
		!strings.Contains(out, "compression ratio 1.00 (none 15 records)") {
		t.Fatalf("stat: code %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(out, "clean: 15 records, 150 events") {
		t.Fatalf("verify on a clean spool: code %d\n%s%s", code, out, errOut)
	}

	segs, _ := filepath.Glob(filepath.Join(sdir, "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	// A torn tail (what a SIGKILL mid-append leaves) is not damage that
	// loses events: exit 0, and say that the next start repairs it.
	last := segs[len(segs)-1]
	fi, _ := os.Stat(last)
	os.Truncate(last, fi.Size()-7)
	out, _, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(out, "torn tail (normal after a crash): the next start truncates it") ||
		!strings.Contains(out, "ok: torn tail only") {
		t.Fatalf("verify on a torn tail: code %d, want 0\n%s", code, out)
	}
	// A damaged record no sink has read loses its 10 events: exit 1.
	b, _ := os.ReadFile(segs[0])
	b[20+28+10] ^= 0xff
	os.WriteFile(segs[0], b, 0o600)
	out, _, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 1 || !strings.Contains(out, "corrupt: the next start quarantines") || !strings.Contains(out, "torn tail") ||
		!strings.Contains(out, "DAMAGED: 1 damaged span(s) lose 10 events") {
		t.Fatalf("verify on a damaged spool: code %d\n%s", code, out)
	}
	// verify changed nothing.
	if b2, _ := os.ReadFile(segs[0]); string(b2) != string(b) {
		t.Fatal("verify modified a segment")
	}
	// The same damage in records every sink has acknowledged loses
	// nothing: exit 0.
	s, err = spool.Open(context.Background(), spool.Options{Dir: sdir, MaxBytes: 1 << 20, SegmentBytes: 16 << 10, Fsync: spool.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // recovery repaired both; the damage is counted once
	out, _, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(out, "clean") {
		t.Fatalf("verify after recovery: code %d\n%s", code, out)
	}
	if _, _, code := fw(t, nil, "spool", "frob", "-c", cfg); code != 2 {
		t.Fatalf("unknown subcommand: exit %d, want 2", code)
	}
}

// TestSpoolStatCompression: spool stat on a spool written with zstd and
// then lz4 reports the events held, the payload bytes before and after
// compression, their ratio and the records of each codec.
func TestSpoolStatCompression(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}\n", dir), 0o644)
	sdir := filepath.Join(dir, "data", "spool")
	var raw int
	for _, c := range []string{spool.CompressionZstd, spool.CompressionLZ4} {
		s, err := spool.Open(context.Background(), spool.Options{Dir: sdir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Fsync: spool.FsyncNever, Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			evs := make([]sinks.Event, 10)
			for k := range evs {
				evs[k] = sinks.Event{ID: fmt.Sprintf("%s-%d-%d", c, i, k), Doc: fmt.Appendf(nil, `{"event":{"id":"%s-%d-%d"},"file":{"path":"/home/user/project/src/file%d.go"}}`, c, i, k, k)}
			}
			p := sinks.AppendBatch(nil, evs)
			raw += len(p)
			if err := s.Append(context.Background(), p, len(evs)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	out, errOut, code := fw(t, nil, "spool", "stat", "-c", cfg)
	m := regexp.MustCompile(`payload:  ([0-9]+) bytes as written, ([0-9]+) bytes stored: compression ratio ([0-9.]+) \(lz4 3 records, zstd 3 records\)`).FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "events:   60 held") {
		t.Fatalf("stat: code %d\n%s%s", code, out, errOut)
	}
	var written, stored int
	var ratio float64
	fmt.Sscan(m[1], &written)
	fmt.Sscan(m[2], &stored)
	fmt.Sscan(m[3], &ratio)
	if written != raw || stored <= 0 || stored*2 > written || fmt.Sprintf("%.2f", float64(written)/float64(stored)) != m[3] || ratio < 2 {
		t.Fatalf("stat says %d written (appended %d), %d stored, ratio %s:\n%s", written, raw, stored, m[3], out)
	}
}
