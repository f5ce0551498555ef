package spool

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// corruptFixture fills a spool with records of 10 events across several
// segments, with a cursor created first (so every event is undelivered),
// and returns the options and the number of events appended.
func corruptFixture(t *testing.T, records int) (Options, uint64) {
	t.Helper()
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 16 << 10 // ~5 records per segment
	o.MaxBytes = 64 << 20
	s := mustOpen(t, o)
	r, err := s.Reader("sink")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	for i := 0; i < records; i++ {
		if err := s.Append(context.Background(), payload(uint64(i*10), 10, 3000), 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return o, uint64(records * 10)
}

// reopenCounting opens the spool counting corrupt events and logging to
// logs, reads everything through cursor "sink" (skipping damage found at
// run time) and returns the events read and counted as corrupt.
func reopenCounting(t *testing.T, o Options, logs *bytes.Buffer) (read, corrupt uint64, s *Spool) {
	t.Helper()
	var mu sync.Mutex
	o.OnCorrupt = func(n uint64) { mu.Lock(); corrupt += n; mu.Unlock() }
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s = mustOpen(t, o)
	r, err := s.Reader("sink")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		if r.Next() {
			rec := r.Record()
			for i, id := range ids(rec.Payload, rec.Events) {
				if id != rec.Seq+uint64(i) {
					t.Fatalf("record at seq %d holds event %d at %d", rec.Seq, id, i)
				}
			}
			read += uint64(rec.Events)
			if err := r.Ack(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if r.Err() != nil {
			r.SkipDamaged()
			continue
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	return read, corrupt, s
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFlippedByteCountedExactly(t *testing.T) {
	o, total := corruptFixture(t, 30)
	idxs, _ := listSegments(o.Dir)
	path := filepath.Join(o.Dir, segName(idxs[1]))
	res := scanFile(t, path)
	flip(t, path, res.records[2].off+recHeaderSize+100)
	var logs bytes.Buffer
	read, corrupt, s := reopenCounting(t, o, &logs)
	defer s.Close()
	if corrupt != 10 || read+corrupt != total {
		t.Fatalf("read %d + corrupt %d, want 10 corrupt and %d in all", read, corrupt, total)
	}
	if s.Recovery().LostEvents != 10 || !strings.Contains(logs.String(), "counted as corrupt") {
		t.Errorf("recovery %+v, log:\n%s", s.Recovery(), logs.String())
	}
	if tot := s.ledger.Corrupt; len(tot) != 1 {
		t.Errorf("counted ranges %v", tot)
	}
	s.Close()
	// A second start does not count the same gap again.
	var logs2 bytes.Buffer
	_, again, s2 := reopenCounting(t, o, &logs2)
	s2.Close()
	if again != 0 {
		t.Errorf("the second start counted %d corrupt events again", again)
	}
}

func TestCorruptBadSegmentHeaderCountedExactly(t *testing.T) {
	o, total := corruptFixture(t, 30)
	idxs, _ := listSegments(o.Dir)
	path := filepath.Join(o.Dir, segName(idxs[2]))
	res := scanFile(t, path)
	var inSeg uint64
	for _, r := range res.records {
		inSeg += uint64(r.events)
	}
	flip(t, path, 9) // inside baseSeq: the header CRC fails
	var logs bytes.Buffer
	read, corrupt, s := reopenCounting(t, o, &logs)
	defer s.Close()
	if corrupt != inSeg || read+corrupt != total {
		t.Fatalf("read %d + corrupt %d (want %d corrupt) != %d", read, corrupt, inSeg, total)
	}
	if got := len(s.Recovery().Quarantined); got != 1 {
		t.Errorf("quarantined %d segments", got)
	}
}

func TestCorruptBadHeaderOfOldestSegment(t *testing.T) {
	o, total := corruptFixture(t, 30)
	idxs, _ := listSegments(o.Dir)
	path := filepath.Join(o.Dir, segName(idxs[0]))
	res := scanFile(t, path)
	var inSeg uint64
	for _, r := range res.records {
		inSeg += uint64(r.events)
	}
	flip(t, path, 0)
	var logs bytes.Buffer
	read, corrupt, s := reopenCounting(t, o, &logs)
	defer s.Close()
	if corrupt != inSeg || read+corrupt != total {
		t.Fatalf("read %d + corrupt %d (want %d corrupt) != %d", read, corrupt, inSeg, total)
	}
}

func TestCorruptManyFlipsCountedExactly(t *testing.T) {
	o, total := corruptFixture(t, 60)
	idxs, _ := listSegments(o.Dir)
	rng := rand.New(rand.NewPCG(1, 2))
	// 200 flips anywhere in the sealed segments (headers included).
	for i := 0; i < 200; i++ {
		idx := idxs[rng.IntN(len(idxs)-1)]
		path := filepath.Join(o.Dir, segName(idx))
		fi, _ := os.Stat(path)
		flip(t, path, rng.Int64N(fi.Size()))
	}
	var logs bytes.Buffer
	read, corrupt, s := reopenCounting(t, o, &logs)
	defer s.Close()
	t.Logf("read %d, corrupt %d of %d", read, corrupt, total)
	if corrupt == 0 || read+corrupt != total {
		t.Fatalf("read %d + corrupt %d != %d", read, corrupt, total)
	}
}

func TestCorruptAtRunTimeCountedOnceForTwoReaders(t *testing.T) {
	o, total := corruptFixture(t, 10)
	var logs bytes.Buffer
	var corrupt uint64
	o.OnCorrupt = func(n uint64) { corrupt += n }
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := mustOpen(t, o)
	defer s.Close()
	path := filepath.Join(o.Dir, segName(1))
	flip(t, path, scanFile(t, path).records[1].off+recHeaderSize+50)
	if r, err := s.Reader("other"); err != nil { // both cursors at the start
		t.Fatal(err)
	} else {
		r.Close()
	}
	for _, name := range []string{"sink", "other"} {
		r, err := s.Reader(name)
		if err != nil {
			t.Fatal(err)
		}
		var read uint64
		for {
			if r.Next() {
				read += uint64(r.Record().Events)
				r.Ack()
				continue
			}
			if r.Err() != nil {
				r.SkipDamaged()
				continue
			}
			break
		}
		r.Close()
		if read+10 != total {
			t.Errorf("%s read %d of %d with one damaged record", name, read, total)
		}
	}
	if corrupt != 10 {
		t.Errorf("corrupt counted %d, want 10 (once, not per reader)", corrupt)
	}
}

// TestForgedCursorIsNotASilentSkip: a cursor with a valid CRC that names a
// segment after the newest (and a sequence number past the data) is logged
// at ERROR and moved to the oldest data: every event is still read.
func TestForgedCursorIsNotASilentSkip(t *testing.T) {
	o, total := corruptFixture(t, 30)
	if err := writeCursor(o.Dir, "sink", Position{Segment: 999, Offset: segHeaderSize, Seq: 1 << 40}, false); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	read, corrupt, s := reopenCounting(t, o, &logs)
	defer s.Close()
	if read != total || corrupt != 0 {
		t.Fatalf("read %d (corrupt %d) of %d after a forged cursor", read, corrupt, total)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "cursor points past the end") {
		t.Errorf("no ERROR line for the forged cursor:\n%s", logs.String())
	}
	if c := s.Recovery().ClampedCursors; len(c) != 1 || c[0] != "sink" {
		t.Errorf("ClampedCursors = %v", c)
	}
	// A valid sequence number in a segment that does not exist is clamped
	// the same way.
	s.Close()
	o, total = corruptFixture(t, 30)
	if err := writeCursor(o.Dir, "sink", Position{Segment: 999, Offset: segHeaderSize, Seq: 50}, false); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	read, _, s2 := reopenCounting(t, o, &logs)
	s2.Close()
	if read != total || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("read %d of %d; log:\n%s", read, total, logs.String())
	}
}
