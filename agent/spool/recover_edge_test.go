package spool

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCursorAheadOfTornTail: a cursor that had read records a crash then
// tore from the tail keeps its place at the end (it is not clamped to the
// oldest data), and the sequence numbers go on after it, so that nothing it
// read is numbered again.
func TestCursorAheadOfTornTail(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	s := mustOpen(t, o)
	for i := uint64(0); i < 3; i++ {
		s.Append(context.Background(), payload(i*10, 10, 100), 10)
	}
	r, _ := s.Reader("c")
	for r.Next() {
		r.Ack()
	}
	r.Close()
	s.Close()
	path := filepath.Join(dir, segName(1))
	res := scanFile(t, path)
	os.Truncate(path, res.records[2].off+5) // the last record torn away
	s = mustOpen(t, o)
	defer s.Close()
	if rec := s.Recovery(); len(rec.ClampedCursors) != 0 || rec.TornTails != 1 {
		t.Fatalf("recovery %+v", rec)
	}
	if err := s.Append(context.Background(), payload(30, 10, 100), 10); err != nil {
		t.Fatal(err)
	}
	r, _ = s.Reader("c")
	defer r.Close()
	if !r.Next() || r.Record().Seq != 30 || r.Next() {
		t.Fatalf("after the torn tail the cursor read seq %d (err %v), want only the new record at 30", r.Record().Seq, r.Err())
	}
}

// TestCursorAtTheEndIsNotClamped: a cursor at the end of the data, and one
// at the end of a sealed segment, are kept as they are at the next start;
// one naming the next segment index, not yet created, is clamped.
func TestCursorAtTheEndIsNotClamped(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 4096
	s := mustOpen(t, o)
	pin, _ := s.Reader("pin")
	pin.Close()
	for i := uint64(0); i < 4; i++ {
		s.Append(context.Background(), payload(i*10, 10, 1800), 10)
	}
	r, _ := s.Reader("end")
	for r.Next() {
		r.Ack()
	}
	r.Close()
	r, _ = s.Reader("mid")
	r.Next()
	r.Next()
	r.Ack() // the end of the first segment (2 records per segment)
	r.Close()
	s.Close()
	s = mustOpen(t, o)
	if c := s.Recovery().ClampedCursors; len(c) != 0 {
		t.Fatalf("clamped %v", c)
	}
	for name, want := range map[string]uint64{"end": 0, "mid": 20, "pin": 40} {
		if l, _ := s.Lag(name); l.Events != want {
			t.Errorf("%s: lag %d, want %d", name, l.Events, want)
		}
	}
	next := s.nextIdx
	s.Close()
	if err := writeCursor(dir, "ahead", Position{Segment: next, Offset: segHeaderSize, Seq: 5}, false); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, o)
	defer s.Close()
	if c := s.Recovery().ClampedCursors; len(c) != 1 || c[0] != "ahead" {
		t.Fatalf("a cursor in a segment not yet created: clamped %v", c)
	}
}

// TestLedgerReportsOfGoneRecordsForgotten: at Open, remembered loss
// reports whose record is no longer in the spool (segment gone, or the
// sequence number outside the segment's) are forgotten; the others kept.
func TestLedgerReportsOfGoneRecordsForgotten(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	s := mustOpen(t, o)
	for i := uint64(0); i < 3; i++ {
		s.Append(context.Background(), payload(i*10, 10, 100), 10)
	}
	s.mu.Lock()
	s.ledger.Reports = []reportRec{
		{Segment: 1, Seq: 0, Events: 1}, {Segment: 1, Seq: 29, Events: 1}, // kept: first and last seq of the segment
		{Segment: 1, Seq: 30, Events: 1}, // the segment's end: gone
		{Segment: 9, Seq: 5, Events: 1},  // no such segment
	}
	if err := s.writeLedger(); err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	s.Close()
	s = mustOpen(t, o)
	defer s.Close()
	var seqs []uint64
	for _, r := range s.ledger.Reports {
		seqs = append(seqs, r.Seq)
	}
	if len(seqs) != 2 || seqs[0] != 0 || seqs[1] != 29 {
		t.Fatalf("reports kept at %v, want [0 29]", seqs)
	}
}

// TestCleanOpenWritesNoLedger: a start that loses nothing writes no
// losses.json.
func TestCleanOpenWritesNoLedger(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	s.Append(context.Background(), payload(0, 1, 10), 1)
	s.Close()
	s = mustOpen(t, testOpts(dir))
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, ledgerFile)); !os.IsNotExist(err) {
		t.Fatalf("losses.json after clean starts: %v", err)
	}
}

// TestNewestSegmentOnlyABadHeader: a newest segment exactly a header long
// whose header is damaged is quarantined (corruption), not removed as a
// torn empty segment; a shorter one is a torn tail.
func TestNewestSegmentOnlyABadHeader(t *testing.T) {
	for _, c := range []struct {
		size       int64
		quarantine bool
	}{{segHeaderSize, true}, {segHeaderSize - 1, false}} {
		dir := t.TempDir()
		o := testOpts(dir)
		s := mustOpen(t, o)
		s.Append(context.Background(), payload(0, 1, 10), 1)
		s.Close()
		b := make([]byte, segHeaderSize)
		putSegHeader(b, segVersion, 1)
		b = b[:c.size]
		b[9] ^= 1
		os.WriteFile(filepath.Join(dir, segName(2)), b, 0o600)
		s = mustOpen(t, o)
		rec := s.Recovery()
		s.Close()
		if got := len(rec.Quarantined) == 1 && rec.TornTails == 0; got != c.quarantine || (!c.quarantine && rec.TornTails != 1) {
			t.Fatalf("%d bytes: recovery %+v", c.size, rec)
		}
	}
}

// TestRepairLogsTheBytes: the torn-tail and damaged-records log lines give
// the damaged span's length.
func TestRepairLogsTheBytes(t *testing.T) {
	o, _ := corruptFixture(t, 12)
	idxs, _ := listSegments(o.Dir)
	mid := filepath.Join(o.Dir, segName(idxs[1]))
	rec := scanFile(t, mid).records[1]
	flip(t, mid, rec.off+recHeaderSize+10)
	last := filepath.Join(o.Dir, segName(idxs[len(idxs)-1]))
	lr := scanFile(t, last).records
	tl := lr[len(lr)-1]
	os.Truncate(last, tl.off+tl.size-7)
	var logs bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := mustOpen(t, o)
	s.Close()
	for _, want := range []string{
		"msg=\"spool: truncating torn tail\"", "bytes=" + itoa(tl.size-7),
		"msg=\"spool: damaged records\"", "bytes=" + itoa(rec.size), "repaired=true",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestForgedCursorsAheadAreClamped: a cursor whose sequence number is past
// the data is trusted (kept at the end, numbering going on after it) only
// when its position is past the end of the newest segment, as after a torn
// tail; anywhere else it is damaged or forged and is clamped to the oldest
// data.
func TestForgedCursorsAheadAreClamped(t *testing.T) {
	for _, c := range []struct {
		name  string
		pos   func(first, last *segment) Position
		clamp bool
	}{
		{"earlier", func(f, _ *segment) Position { return Position{f.idx, segHeaderSize, 1000} }, true},
		{"mid-last", func(_, l *segment) Position { return Position{l.idx, segHeaderSize, 1000} }, true},
		{"end-last", func(_, l *segment) Position { return Position{l.idx, l.size, 1000} }, true},
		{"past-last", func(_, l *segment) Position { return Position{l.idx, l.size + 10, 1000} }, false}, // a torn tail it had read
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(dir)
			o.SegmentBytes = 4096
			s := mustOpen(t, o)
			for i := uint64(0); i < 6; i++ {
				s.Append(context.Background(), payload(i*10, 10, 1800), 10)
			}
			first, last := *s.segs[0], *s.segs[len(s.segs)-1]
			s.Close()
			if err := writeCursor(dir, "c", c.pos(&first, &last), false); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, o)
			defer s.Close()
			if got := len(s.Recovery().ClampedCursors) == 1; got != c.clamp {
				t.Fatalf("clamped %v, want %v", s.Recovery().ClampedCursors, c.clamp)
			}
		})
	}
}

// TestOnlySegmentBadHeaderWithCursor: a spool whose only segment has a bad
// header, with a cursor, opens (the segment quarantined, a new one begun).
func TestOnlySegmentBadHeaderWithCursor(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	s := mustOpen(t, o)
	s.Append(context.Background(), payload(0, 10, 100), 10)
	r, _ := s.Reader("c")
	r.Close()
	s.Close()
	flip(t, filepath.Join(dir, segName(1)), 10)
	var corrupt uint64
	o.OnCorrupt = func(n uint64) { corrupt += n }
	s = mustOpen(t, o)
	defer s.Close()
	// The lost segment's events are not counted: nothing says how many
	// there were (the newest segment's header held the last word on the
	// sequence numbers). A known gap, see docs/spool.md.
	if rec := s.Recovery(); len(rec.Quarantined) != 1 {
		t.Fatalf("recovery %+v, corrupt %d", rec, corrupt)
	}
	if err := s.Append(context.Background(), payload(10, 1, 1), 1); err != nil {
		t.Fatal(err)
	}
}

// TestQuarantineKeepsTheNewest: quarantine/ keeps the 8 newest damaged
// segments by the time in their names, whatever the directory order.
func TestQuarantineKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	for _, ts := range []int64{900, 5, 1000000000000, 70, 3, 800000, 60, 1, 20, 4000} {
		os.WriteFile(filepath.Join(dir, segName(uint64(ts%7+1))+"."+itoa(ts)+".corrupt"), nil, 0o600)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600)
	if err := pruneQuarantine(dir, 8); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	all := strings.Join(left, " ")
	if len(left) != 9 || strings.Contains(all, ".1.corrupt") || strings.Contains(all, ".3.corrupt") || !strings.Contains(all, ".5.corrupt") || !strings.Contains(all, "notes.txt") {
		t.Fatalf("left %v: want the 8 newest and notes.txt", left)
	}
	if got := quarantineTime("x.123.corrupt"); got != "00000000000000000123" {
		t.Errorf("quarantineTime = %q", got)
	}
	if got := quarantineTime("a.b"); got != "a.b" {
		t.Errorf("quarantineTime of a short name = %q", got)
	}
}

// TestInspectLostEvents: Inspect counts the events a damaged record loses
// as recovery would: after the slowest cursor, not those already counted
// in losses.json; it lists the cursors by name and the quarantined files.
func TestInspectLostEvents(t *testing.T) {
	o, _ := corruptFixture(t, 12)
	for _, n := range []string{"zeta", "alpha"} {
		if err := writeCursor(o.Dir, n, Position{1, segHeaderSize, 0}, false); err != nil {
			t.Fatal(err)
		}
	}
	idxs, _ := listSegments(o.Dir)
	path := filepath.Join(o.Dir, segName(idxs[1]))
	rec := scanFile(t, path).records[1]
	flip(t, path, rec.off+recHeaderSize+10)
	inspect := func() *Report {
		t.Helper()
		rep, err := Inspect(o.Dir, true)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := inspect()
	var names []string
	for _, c := range rep.Cursors {
		names = append(names, c.Name)
	}
	if !rep.Corrupt() || rep.LostEvents != 10 || rep.LostUnknown || strings.Join(names, ",") != "alpha,sink,zeta" {
		t.Fatalf("lost %d (unknown %v), cursors %v", rep.LostEvents, rep.LostUnknown, names)
	}
	// Every cursor past the damaged record: nothing lost.
	for _, n := range []string{"zeta", "alpha", "sink"} {
		writeCursor(o.Dir, n, Position{idxs[1], rec.off + rec.size, rec.seq + 10}, false)
	}
	if rep := inspect(); !rep.Corrupt() || rep.LostEvents != 0 {
		t.Fatalf("cursors past the damage: lost %d", rep.LostEvents)
	}
	// Every cursor at the very end (its sequence number is the next one):
	// nothing lost either.
	last := filepath.Join(o.Dir, segName(idxs[len(idxs)-1]))
	lr := scanFile(t, last).records
	end := lr[len(lr)-1]
	for _, n := range []string{"zeta", "alpha", "sink"} {
		writeCursor(o.Dir, n, Position{idxs[len(idxs)-1], end.off + end.size, end.seq + uint64(end.events)}, false)
	}
	if rep := inspect(); !rep.Corrupt() || rep.LostEvents != 0 {
		t.Fatalf("cursors at the end: lost %d", rep.LostEvents)
	}
	// A damaged cursor file restarts its sink at the oldest data.
	os.WriteFile(filepath.Join(o.Dir, cursorDir, "zeta"+cursorSuffix), []byte("junk"), 0o600)
	if rep := inspect(); rep.LostEvents != 10 {
		t.Fatalf("with a damaged cursor: lost %d, want 10", rep.LostEvents)
	}
	// Already counted by an earlier start: not lost again.
	os.WriteFile(filepath.Join(o.Dir, ledgerFile), []byte(`{"corrupt":[{"from":`+itoa(int64(rec.seq))+`,"to":`+itoa(int64(rec.seq+10))+`}]}`), 0o600)
	if rep := inspect(); rep.LostEvents != 0 {
		t.Fatalf("with the range counted in losses.json: lost %d", rep.LostEvents)
	}
	os.Remove(filepath.Join(o.Dir, ledgerFile))
	s := mustOpen(t, o) // quarantines the segment
	s.Close()
	if rep := inspect(); len(rep.Quarantined) != 1 || rep.Corrupt() {
		t.Fatalf("after repair: quarantined %v, damage %+v", rep.Quarantined, rep.Damage)
	}
}
