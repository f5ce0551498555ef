package spool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCountsComeBack: drop_oldest deleting a record of loss reports
// that no cursor has read hands its counts back instead of counting its
// documents as dropped events, and the totals survive a restart.
func TestReportCountsComeBack(t *testing.T) {
	dir := t.TempDir()
	var dropped uint64
	var back LossCounts
	o := Options{Dir: dir, MaxBytes: 3 * 4096, SegmentBytes: 4096, Fsync: FsyncNever,
		OnDrop:          func(n uint64) { dropped += n },
		OnReportDropped: func(c LossCounts) { back = c }}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reader("sink"); err != nil { // a cursor that never moves
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.AppendReport(ctx, make([]byte, 100), 2, LossCounts{"spool_full": 500, "ring_full": 7},
		LossCounts{"spool_full": 900, "ring_full": 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, make([]byte, 100), 10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200 && back == nil; i++ {
		if err := s.Append(ctx, make([]byte, 1000), 10); err != nil {
			t.Fatal(err)
		}
	}
	if back["spool_full"] != 500 || back["ring_full"] != 7 {
		t.Fatalf("counts handed back: %v", back)
	}
	// The first segment held the report (2 documents, not counted) and
	// 10 + some 10-event records, all counted.
	if dropped%10 != 0 || dropped == 0 {
		t.Errorf("dropped %d events: the 2 report documents must not be among them", dropped)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tot := s.LossTotals(); tot["spool_full"] != 900 || tot["ring_full"] != 7 {
		t.Errorf("totals after restart: %v", tot)
	}
}

// TestLedgerFileEdges: a damaged ledger file is logged and replaced with
// empty totals; a ledger without totals loads as empty totals; AppendReport
// with nil totals stores empty ones; AppendReport on a closed spool fails.
func TestLedgerFileEdges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logs bytes.Buffer
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncAlways, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, ledgerFile), []byte("{not json"), 0o600)
	s := mustOpen(t, o)
	if tot := s.LossTotals(); tot == nil || len(tot) != 0 || !strings.Contains(logs.String(), "unreadable loss ledger") {
		t.Fatalf("damaged ledger: totals %v, log %s", tot, logs.String())
	}
	if err := s.AppendReport(ctx, []byte("r"), 1, LossCounts{"ring_full": 1}, nil); err != nil {
		t.Fatal(err)
	}
	if tot := s.LossTotals(); tot == nil || len(tot) != 0 {
		t.Fatalf("nil totals stored as %v", tot)
	}
	if err := s.AppendReport(ctx, []byte("r"), 1, nil, LossCounts{"ring_full": 3}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.ledger.Reports); n != 2 {
		t.Fatalf("%d reports remembered, want 2", n)
	}
	if strings.Contains(logs.String(), "spool: loss ledger") {
		t.Fatalf("a ledger written fine logged an error:\n%s", logs.String())
	}
	s.Close()
	if err := s.AppendReport(ctx, []byte("r"), 1, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendReport after Close: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, ledgerFile))
	if !strings.Contains(string(b), `"ring_full":3`) {
		t.Fatalf("ledger on disk: %s", b)
	}
	os.WriteFile(filepath.Join(dir, ledgerFile), []byte(`{"totals":null}`), 0o600)
	s = mustOpen(t, o)
	defer s.Close()
	if tot := s.LossTotals(); tot == nil || len(tot) != 0 {
		t.Fatalf("null totals loaded as %v", tot)
	}
}

// TestRefusedReportIsNotALoss: a record of loss reports that a full spool
// refuses (drop_newest) or that is too large returns the error, and its
// documents are not counted as dropped events: they are not captured
// events, and the caller reports the same counts again.
func TestRefusedReportIsNotALoss(t *testing.T) {
	ctx := context.Background()
	var dropped, calls uint64
	o := Options{Dir: t.TempDir(), MaxBytes: 2 * 4096, SegmentBytes: 4096, WhenFull: DropNewest, Fsync: FsyncNever,
		OnDrop: func(n uint64) { dropped += n; calls++ }}
	s := mustOpen(t, o)
	defer s.Close()
	for i := 0; i < 2; i++ {
		if err := s.Append(ctx, make([]byte, 4096-segHeaderSize-recHeaderSize), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendReport(ctx, []byte("loss"), 3, LossCounts{"ring_full": 5}, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("report into a full spool: %v", err)
	}
	if err := s.AppendReport(ctx, make([]byte, 8192), 2, nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized report: %v", err)
	}
	if err := s.Append(ctx, []byte("event"), 4); !errors.Is(err, ErrFull) {
		t.Fatalf("append into a full spool: %v", err)
	}
	if dropped != 4 || calls != 1 || len(s.ledger.Reports) != 0 {
		t.Fatalf("dropped %d in %d calls (want the 4 events only), reports %v", dropped, calls, s.ledger.Reports)
	}
}
