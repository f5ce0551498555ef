package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fill appends n records of 10 events (ids from 0) and closes the spool.
func fill(t *testing.T, o Options, n int) {
	t.Helper()
	s := mustOpen(t, o)
	for i := 0; i < n; i++ {
		if err := s.Append(context.Background(), payload(uint64(i*10), 10, 3000), 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func scanFile(t *testing.T, path string) scanResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return scanSegment(bytes.NewReader(b), int64(len(b)), true)
}

func TestCorruptionQuarantineAndTornTail(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 16 << 10 // ~5 records per segment
	fill(t, o, 30)
	idxs, _ := listSegments(dir)
	if len(idxs) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(idxs))
	}
	// Flip bytes inside the payload of the second record of a sealed segment.
	sealed := filepath.Join(dir, segName(idxs[1]))
	res := scanFile(t, sealed)
	victim := res.records[1]
	b, _ := os.ReadFile(sealed)
	for i := int64(0); i < 4; i++ {
		b[victim.off+recHeaderSize+40+i] ^= 0xff
	}
	os.WriteFile(sealed, b, 0o600)
	lostMid := victim.seq
	// Truncate the active segment in the middle of its last record.
	active := filepath.Join(dir, segName(idxs[len(idxs)-1]))
	ares := scanFile(t, active)
	last := ares.records[len(ares.records)-1]
	if err := os.Truncate(active, last.off+recHeaderSize+100); err != nil {
		t.Fatal(err)
	}
	lostTail := last.seq

	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Corrupt() || len(rep.Damage) != 2 || rep.Damage[0].Torn || !rep.Damage[1].Torn {
		t.Fatalf("verify before recovery: %+v", rep.Damage)
	}
	var ce *CorruptionError
	if !errors.As(error(&CorruptionError{Err: errBadCRC}), &ce) || !errors.Is(ce, errBadCRC) {
		t.Fatal("CorruptionError does not unwrap")
	}

	s := mustOpen(t, o)
	rec := s.Recovery()
	if rec.TornTails != 1 || rec.BadRecords != 1 || len(rec.Quarantined) != 1 {
		t.Fatalf("recovery = %+v", rec)
	}
	if _, err := os.Stat(filepath.Join(dir, quarantineDir, rec.Quarantined[0])); err != nil {
		t.Fatalf("quarantined file kept for inspection: %v", err)
	}
	got := readAll(t, s, "after", 10)
	var want []uint64
	for id := uint64(0); id < 300; id++ {
		if (id >= lostMid && id < lostMid+10) || id >= lostTail {
			continue
		}
		want = append(want, id)
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %d, want %d", i, got[i], want[i])
		}
	}
	// New appends after recovery continue the sequence and are readable.
	if err := s.Append(context.Background(), payload(1000, 10, 0), 10); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, readAll(t, s, "after", 10), 1000, 1010)
	s.Close()
	rep, err = Inspect(dir, true)
	if err != nil || len(rep.Damage) != 0 {
		t.Fatalf("verify after recovery: %v %+v", err, rep.Damage)
	}
}

func TestRecoverBadHeaderAndEmptyTornSegment(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 16 << 10
	fill(t, o, 12)
	idxs, _ := listSegments(dir)
	// A sealed segment whose header is garbage: quarantined whole.
	os.WriteFile(filepath.Join(dir, segName(idxs[0])), []byte("garbage garbage garbage garbage"), 0o600)
	// A newest segment that was created but never got its header.
	os.WriteFile(filepath.Join(dir, segName(idxs[len(idxs)-1]+1)), []byte{'F', 'W'}, 0o600)
	s := mustOpen(t, o)
	defer s.Close()
	rec := s.Recovery()
	if rec.TornTails != 1 || len(rec.Quarantined) != 1 {
		t.Fatalf("recovery = %+v", rec)
	}
	if got := readAll(t, s, "r", 10); len(got) == 0 || got[len(got)-1] != 119 {
		t.Fatalf("read after recovery: %d events", len(got))
	}
}

func TestCursorSurvivesRepairedSegment(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 16 << 10
	fill(t, o, 12)
	s := mustOpen(t, o)
	r, _ := s.Reader("c")
	for i := 0; i < 3; i++ { // stop in the middle of the first segment
		if !r.Next() {
			t.Fatal(r.Err())
		}
		r.Ack()
	}
	r.Close()
	s.Close()
	// Damage record 0 (already read): repair shifts the offsets after it.
	first := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(first)
	b[segHeaderSize+recHeaderSize+5] ^= 1
	os.WriteFile(first, b, 0o600)
	s = mustOpen(t, o)
	defer s.Close()
	checkSeq(t, readAll(t, s, "c", 10), 30, 120)
}

// Damage found while reading (not at Open) is a *CorruptionError; the
// reader skips past it and goes on with later records.
func TestReaderCorruptionAtRuntime(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	var corrupt uint64
	o.OnCorrupt = func(n uint64) { corrupt += n }
	s := mustOpen(t, o)
	defer s.Close()
	for i := uint64(0); i < 3; i++ {
		if err := s.Append(context.Background(), payload(i*10, 10, 100), 10); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, segName(1))
	res := scanFile(t, path)
	b, _ := os.ReadFile(path)
	b[res.records[1].off+recHeaderSize+3] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Reader("rt")
	defer r.Close()
	if !r.Next() || r.Record().Seq != 0 {
		t.Fatalf("first record: %v", r.Err())
	}
	if r.Next() {
		t.Fatal("read a damaged record")
	}
	var ce *CorruptionError
	if !errors.As(r.Err(), &ce) || ce.Segment != 1 || ce.Offset != res.records[1].off || !errors.Is(r.Err(), errBadCRC) {
		t.Fatalf("Err = %v", r.Err())
	}
	r.SkipDamaged()
	// Resynchronised on the next good record; the damaged one's 10 events
	// are counted as corrupt.
	if !r.Next() || r.Record().Seq != 20 {
		t.Fatalf("after SkipDamaged: want the record at seq 20, err %v", r.Err())
	}
	if got := corrupt; got != 10 {
		t.Errorf("corrupt events counted %v, want 10", got)
	}
	if r.Next() || r.Err() != nil {
		t.Fatalf("past the end: %v", r.Err())
	}
	s.Append(context.Background(), payload(30, 10, 100), 10)
	if !r.Next() || r.Record().Seq != 30 {
		t.Fatalf("record appended after the damage: %v", r.Err())
	}
}
