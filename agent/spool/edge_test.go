package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Edge cases of the spool's small pure functions and of paths the
// end-to-end tests do not reach; each test names what it pins down.

func TestAddRange(t *testing.T) {
	for _, c := range []struct {
		name     string
		set      []seqRange
		from, to uint64
		want     []seqRange
		fresh    uint64
	}{
		{"empty range adds nothing", []seqRange{{1, 3}}, 7, 7, []seqRange{{1, 3}}, 0},
		{"reversed range adds nothing", []seqRange{{1, 3}}, 9, 7, []seqRange{{1, 3}}, 0},
		{"before the set, sorted in front", []seqRange{{10, 20}}, 1, 5, []seqRange{{1, 5}, {10, 20}}, 4},
		{"adjacent ranges merge", []seqRange{{1, 5}}, 5, 8, []seqRange{{1, 8}}, 3},
		{"touching on the left merges", []seqRange{{5, 8}}, 1, 5, []seqRange{{1, 8}}, 4},
		{"overlap counts only the new part", []seqRange{{1, 5}, {10, 12}}, 3, 11, []seqRange{{1, 12}}, 5},
		{"inside adds nothing new", []seqRange{{1, 10}}, 2, 4, []seqRange{{1, 10}}, 0},
		{"into an empty set", nil, 4, 6, []seqRange{{4, 6}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, fresh := addRange(append([]seqRange(nil), c.set...), c.from, c.to)
			if !reflect.DeepEqual(got, c.want) || fresh != c.fresh {
				t.Fatalf("addRange(%v, %d, %d) = %v, %d; want %v, %d", c.set, c.from, c.to, got, fresh, c.want, c.fresh)
			}
		})
	}
}

func TestGaps(t *testing.T) {
	r := func(seq, end uint64) recoveredRecord { return recoveredRecord{seq, end} }
	for _, c := range []struct {
		name      string
		recs      []recoveredRecord
		low, high uint64
		want      []seqRange
	}{
		{"contiguous: none", []recoveredRecord{r(0, 5), r(5, 10)}, 0, 10, nil},
		{"ends at high: none", []recoveredRecord{r(0, 10), r(12, 15)}, 0, 10, nil},
		{"exactly covered: none", []recoveredRecord{r(0, 10)}, 0, 10, nil},
		{"hole in the middle", []recoveredRecord{r(0, 5), r(8, 10)}, 0, 10, []seqRange{{5, 8}}},
		{"hole at the front", []recoveredRecord{r(3, 10)}, 0, 10, []seqRange{{0, 3}}},
		{"hole at the end", []recoveredRecord{r(0, 4)}, 0, 10, []seqRange{{4, 10}}},
		{"records before low are ignored", []recoveredRecord{r(0, 5), r(5, 7), r(9, 12)}, 7, 12, []seqRange{{7, 9}}},
		{"a hole past high is cut at high", []recoveredRecord{r(0, 4), r(20, 30)}, 0, 10, []seqRange{{4, 10}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := gaps(c.recs, c.low, c.high); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("gaps = %v, want %v", got, c.want)
			}
		})
	}
	if n := uncounted([]seqRange{{0, 10}, {20, 30}}, []seqRange{{5, 25}}); n != 10 {
		t.Errorf("uncounted = %d, want 10", n)
	}
}

func TestLagOf(t *testing.T) {
	segs := []*segment{
		{idx: 3, baseSeq: 100, endSeq: 150, size: 1000},
		{idx: 4, baseSeq: 150, endSeq: 180, size: 600},
	}
	for _, c := range []struct {
		name string
		p    Position
		want Lag
	}{
		{"at the start", Position{3, segHeaderSize, 100}, Lag{80, 1000 - segHeaderSize + 600 - segHeaderSize}},
		{"mid first segment", Position{3, 400, 120}, Lag{60, 600 + 600 - segHeaderSize}},
		{"start of the second", Position{4, segHeaderSize, 150}, Lag{30, 600 - segHeaderSize}},
		{"at the end", Position{4, 600, 180}, Lag{0, 0}},
		{"before the oldest segment", Position{1, 300, 20}, Lag{80, 1000 - segHeaderSize + 600 - segHeaderSize}},
		{"offset inside the header counts from the header's end", Position{4, 0, 150}, Lag{30, 600 - segHeaderSize}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lagOf(segs, 180, c.p); got != c.want {
				t.Fatalf("lagOf(%+v) = %+v, want %+v", c.p, got, c.want)
			}
		})
	}
	if got := lagOf(nil, 5, Position{}); got != (Lag{}) {
		t.Errorf("lagOf of no segments = %+v", got)
	}
}

func TestDecodeCursor(t *testing.T) {
	good := encodeCursor(Position{Segment: 7, Offset: 99, Seq: 1234})
	if p, err := decodeCursor(good); err != nil || p != (Position{7, 99, 1234}) {
		t.Fatalf("decode = %+v, %v", p, err)
	}
	var ve *VersionError
	newer := bytes.Clone(good)
	newer[4] = cursorVersion + 1
	if _, err := decodeCursor(newer); !errors.As(err, &ve) || ve.Found != cursorVersion+1 || ve.Supported != cursorVersion {
		t.Errorf("a newer cursor: %v, want a *VersionError", err)
	}
	if _, err := decodeCursor([]byte(cursorMagic + "\x02")); !errors.As(err, &ve) {
		t.Errorf("a newer cursor's first 5 bytes: %v, want a *VersionError", err)
	}
	other := bytes.Clone(newer)
	copy(other, "XXXX")
	if _, err := decodeCursor(other); err == nil || errors.As(err, &ve) {
		t.Errorf("another magic with a high version byte: %v, want damage, not a version", err)
	}
	bad := bytes.Clone(good)
	bad[20] ^= 1
	if _, err := decodeCursor(bad); err == nil || !strings.Contains(err.Error(), "crc") {
		t.Errorf("a flipped bit: %v", err)
	}
	for _, b := range [][]byte{nil, good[:35], append(bytes.Clone(good), 0), []byte(cursorMagic + "\x00")} {
		if _, err := decodeCursor(b); err == nil || errors.As(err, &ve) {
			t.Errorf("decode(%d bytes): %v, want damage", len(b), err)
		}
	}
}

// TestEmptyLastRecord: a record with an empty payload that ends exactly at
// the end of the segment is a record, not a torn header, for the scan, the
// recovery and the reader.
func TestEmptyLastRecord(t *testing.T) {
	for _, c := range codecNames {
		t.Run(c, func(t *testing.T) {
			dir := t.TempDir()
			o := codecOpts(dir, c)
			s := mustOpen(t, o)
			s.Append(context.Background(), jsonPayload(0, 3), 3)
			s.Append(context.Background(), nil, 0)
			s.Close()
			res := scanFile(t, filepath.Join(dir, segName(1)))
			if len(res.records) != 2 || len(res.bad) != 0 {
				t.Fatalf("scan: %d records, bad %v (%v)", len(res.records), res.bad, res.bad[0].err)
			}
			s = mustOpen(t, o)
			defer s.Close()
			if rec := s.Recovery(); rec.TornTails != 0 {
				t.Fatalf("recovery truncated an empty last record: %+v", rec)
			}
			r, _ := s.Reader("r")
			defer r.Close()
			n := 0
			for r.Next() {
				n++
			}
			if n != 2 || r.Err() != nil {
				t.Fatalf("read %d records: %v", n, r.Err())
			}
		})
	}
}

// TestReaderBadLengthAtRuntime: a length field damaged after Open (so past
// the recovery scan) is reported as errBadLength, not as a failed read.
func TestReaderBadLengthAtRuntime(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	defer s.Close()
	for i := uint64(0); i < 3; i++ {
		s.Append(context.Background(), payload(i*10, 10, 100), 10)
	}
	path := filepath.Join(dir, segName(1))
	res := scanFile(t, path)
	b, _ := os.ReadFile(path)
	// One byte more than the segment holds after the header.
	off := res.records[1].off
	binary.LittleEndian.PutUint32(b[off:], uint32(int64(len(b))-off-recHeaderSize+1))
	os.WriteFile(path, b, 0o600)
	r, _ := s.Reader("r")
	defer r.Close()
	if !r.Next() || r.Next() || !errors.Is(r.Err(), errBadLength) {
		t.Fatalf("Err = %v, want errBadLength", r.Err())
	}
}

// TestReaderMissingSegmentFile: a segment file removed behind the spool's
// back is an error from Next after a few attempts, not a hang.
func TestReaderMissingSegmentFile(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	defer s.Close()
	s.Append(context.Background(), payload(0, 10, 100), 10)
	os.Remove(filepath.Join(dir, segName(1)))
	r, _ := s.Reader("r")
	defer r.Close()
	done := make(chan bool, 1)
	go func() { done <- r.Next() }()
	select {
	case ok := <-done:
		if ok || r.Err() == nil || !errors.Is(r.Err(), os.ErrNotExist) {
			t.Fatalf("Next = %v, Err = %v; want false and a not-exist error", ok, r.Err())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Next did not return on a missing segment file")
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestReaderHoldsOneFile: a reader going through many segments keeps one
// file open, and Close releases it.
func TestReaderHoldsOneFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 4096
	s := mustOpen(t, o)
	defer s.Close()
	r, _ := s.Reader("r") // pins every segment
	for i := uint64(0); i < 40; i++ {
		if err := s.Append(context.Background(), payload(i*10, 10, 1500), 10); err != nil {
			t.Fatal(err)
		}
	}
	before := openFDs(t)
	n := 0
	for r.Next() {
		n++
	}
	during := openFDs(t)
	r.Close()
	after := openFDs(t)
	if n != 40 || during > before+1 || after > before {
		t.Fatalf("read %d records; open files %d before, %d while reading, %d after Close", n, before, during, after)
	}
}

// TestAckPersistsOncePerInterval: under fsync interval, Ack writes the
// cursor at most once per interval; Flush writes the rest.
func TestAckPersistsOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.Fsync, o.FsyncInterval = FsyncInterval, time.Hour
	s := mustOpen(t, o)
	defer s.Close()
	for i := uint64(0); i < 3; i++ {
		s.Append(context.Background(), payload(i*10, 10, 10), 10)
	}
	r, _ := s.Reader("r")
	defer r.Close()
	onDisk := func() uint64 {
		b, err := os.ReadFile(filepath.Join(dir, cursorDir, "r"+cursorSuffix))
		if err != nil {
			t.Fatal(err)
		}
		p, err := decodeCursor(b)
		if err != nil {
			t.Fatal(err)
		}
		return p.Seq
	}
	r.Next()
	r.Ack() // the first is written at once
	r.Next()
	r.Ack() // within the interval: in memory only
	if got := onDisk(); got != 10 {
		t.Fatalf("cursor on disk at seq %d after two Acks within the interval, want 10", got)
	}
	r.Next()
	r.AckTo(r.Record().End)
	if got := onDisk(); got != 10 {
		t.Fatalf("cursor on disk at seq %d after AckTo within the interval, want 10", got)
	}
	if err := r.Flush(); err != nil || onDisk() != 30 {
		t.Fatalf("after Flush: %v, cursor at %d", err, onDisk())
	}
}

// TestVersionCheckBeforeAnyRepair: with a newer segment or cursor in the
// spool, a damaged older segment is not repaired either: Open refuses
// before it changes anything.
func TestVersionCheckBeforeAnyRepair(t *testing.T) {
	for _, c := range []struct {
		name, file string
		crcEnd     int
		v          byte
	}{
		{"segment", "00000000000000000006.seg", 16, segVersion + 1},
		{"cursor", "cursors/kafka.cursor", 32, cursorVersion + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, "testdata/spool-format1")
			setVersion(t, filepath.Join(dir, c.file), c.v, c.crcEnd)
			seg3 := filepath.Join(dir, "00000000000000000003.seg")
			flip(t, seg3, scanFile(t, seg3).records[0].off+recHeaderSizeV1+10) // needs a repair
			before := treeSum(t, dir)
			_, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
			var ve *VersionError
			if !errors.As(err, &ve) || ve.File != c.file {
				t.Fatalf("open: %v, want a *VersionError for %s", err, c.file)
			}
			if treeSum(t, dir) != before {
				t.Fatal("the refused open repaired a segment")
			}
			if _, err := Inspect(dir, true); !errors.As(err, &ve) {
				t.Fatalf("inspect: %v", err)
			}
		})
	}
}

// TestInspectLag: Inspect reports each cursor's lag in events and bytes
// from the segments as scanned.
func TestInspectLag(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	r, _ := s.Reader("slow")
	r.Close()
	for i := uint64(0); i < 4; i++ {
		s.Append(context.Background(), payload(i*10, 10, 100), 10)
	}
	r, _ = s.Reader("slow")
	r.Next()
	r.Ack()
	r.Close()
	s.Close()
	rep, err := Inspect(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	frame := int64(recHeaderSize + 10*8 + 100)
	if len(rep.Cursors) != 1 || rep.Cursors[0].Lag != (Lag{30, 3 * frame}) {
		t.Fatalf("cursors %+v, want lag 30 events, %d bytes", rep.Cursors, 3*frame)
	}
}

// TestCountCorruptEdges: a damaged span holding only a loss report hands
// its counts back and counts nothing (OnCorrupt is not called with 0), and
// counted ranges below the oldest data are forgotten.
func TestCountCorruptEdges(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	var calls []uint64
	var back []LossCounts
	o.OnCorrupt = func(n uint64) { calls = append(calls, n) }
	o.OnReportDropped = func(c LossCounts) { back = append(back, c) }
	s := mustOpen(t, o)
	defer s.Close()
	s.mu.Lock()
	s.ledger.Reports = []reportRec{{Segment: 1, Seq: 5, Events: 2, Counts: LossCounts{"ring_full": 9}},
		{Segment: 1, Seq: 7, Events: 1, Counts: LossCounts{"corrupt": 4}}}
	n := s.countCorrupt(5, 7)
	s.mu.Unlock()
	if n != 0 || len(calls) != 0 || len(back) != 1 || back[0]["ring_full"] != 9 {
		t.Fatalf("counted %d, OnCorrupt calls %v, reports back %v", n, calls, back)
	}
	// The report starting at 7 is after the damaged range: kept.
	if len(s.ledger.Reports) != 1 || s.ledger.Reports[0].Seq != 7 {
		t.Fatalf("reports kept %+v", s.ledger.Reports)
	}
	s.mu.Lock()
	s.segs[0].baseSeq = 10
	s.ledger.Corrupt = []seqRange{{0, 5}, {5, 10}, {8, 12}, {20, 30}}
	s.pruneCorrupt()
	got := append([]seqRange(nil), s.ledger.Corrupt...)
	s.mu.Unlock()
	if want := []seqRange{{8, 12}, {20, 30}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after pruning below 10: %v, want %v", got, want)
	}
}

// TestSecondStartLogsNoLoss: a start that finds only ranges already counted
// logs no loss line.
func TestSecondStartLogsNoLoss(t *testing.T) {
	o, _ := corruptFixture(t, 12)
	idxs, _ := listSegments(o.Dir)
	path := filepath.Join(o.Dir, segName(idxs[1]))
	flip(t, path, scanFile(t, path).records[1].off+recHeaderSize+100)
	// Both starts leave the cursor where it was (nothing is read), so the
	// second start sees the same gap, already counted.
	var logs bytes.Buffer
	var corrupt uint64
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	o.OnCorrupt = func(n uint64) { corrupt += n }
	s := mustOpen(t, o)
	s.Close()
	if corrupt != 10 || strings.Count(logs.String(), "counted as corrupt") != 1 {
		t.Fatalf("first start: corrupt %d, log:\n%s", corrupt, logs.String())
	}
	var logs2 bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs2, nil))
	s = mustOpen(t, o)
	s.Close()
	if corrupt != 10 || strings.Contains(logs2.String(), "counted as corrupt") {
		t.Fatalf("the second start logged a loss again:\n%s", logs2.String())
	}
}

// TestRuntimeDamageLoggedOnce: damage found by two readers is logged once.
func TestRuntimeDamageLoggedOnce(t *testing.T) {
	o, _ := corruptFixture(t, 6)
	var logs bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := mustOpen(t, o)
	defer s.Close()
	if r, err := s.Reader("other"); err == nil {
		r.Close()
	}
	path := filepath.Join(o.Dir, segName(1))
	flip(t, path, scanFile(t, path).records[1].off+recHeaderSize+50)
	for _, name := range []string{"sink", "other"} {
		r, _ := s.Reader(name)
		for r.Next() || r.Err() != nil {
			if r.Err() != nil {
				r.SkipDamaged()
			}
		}
		r.Close()
	}
	if n := strings.Count(logs.String(), "events lost to a damaged record"); n != 1 || !strings.Contains(logs.String(), "sink=sink") {
		t.Fatalf("logged the damage %d times (want once, by the first reader, sink):\n%s", n, logs.String())
	}
}

// TestInspectReport pins down the per-segment figures of Inspect and the
// damage it reports for bad segment headers.
func TestInspectReport(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SegmentBytes = 4096
	s := mustOpen(t, o)
	t0 := time.Now()
	for i := uint64(0); i < 5; i++ {
		if err := s.Append(context.Background(), payload(i*10, 10, 1500), 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.Close()
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Segments) != 3 || rep.Records != 5 || rep.Events != 50 || len(rep.Damage) != 0 {
		t.Fatalf("report %+v", rep)
	}
	first, last := rep.Segments[0], rep.Segments[2]
	if first.Records != 2 || first.Events != 20 || first.FirstSeq != 0 || first.EndSeq != 20 || last.FirstSeq != 40 || last.EndSeq != 50 {
		t.Fatalf("segments %+v", rep.Segments)
	}
	if first.Oldest.Before(t0) || !first.Newest.After(first.Oldest) || !last.Newest.After(first.Newest) {
		t.Fatalf("times: first %v…%v, last …%v (start %v)", first.Oldest, first.Newest, last.Newest, t0)
	}

	// The oldest segment's header is damaged and no cursor says where the
	// data began: the loss cannot be counted.
	hdr := func(idx uint64) string { return filepath.Join(dir, segName(idx)) }
	flip(t, hdr(1), 10)
	rep, err = Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 1 || rep.Damage[0].Torn || !rep.LostUnknown || len(rep.Segments) != 2 {
		t.Fatalf("bad oldest header: damage %+v, lost unknown %v", rep.Damage, rep.LostUnknown)
	}
	// The newest segment is only a header, and a damaged one: corruption,
	// not a torn tail.
	os.Truncate(hdr(3), segHeaderSize)
	flip(t, hdr(3), 9)
	rep, err = Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 2 || rep.Damage[1].Torn || !rep.LostUnknown {
		t.Fatalf("bad newest header: damage %+v", rep.Damage)
	}
	// No good segment at all.
	flip(t, hdr(2), 9)
	rep, err = Inspect(dir, true)
	if err != nil || len(rep.Segments) != 0 || len(rep.Damage) != 3 || rep.Events != 0 {
		t.Fatalf("no good segment: %v %+v", err, rep)
	}
}

// TestScanSpanErrors: the scan tells a header cut short (fewer bytes than a
// record header left) and a length field running past the end (by one
// byte) apart from a read error.
func TestScanSpanErrors(t *testing.T) {
	good := segmentBytes(3)
	short := append(bytes.Clone(good), make([]byte, recHeaderSize-1)...)
	res := scanSegment(bytes.NewReader(short), int64(len(short)), true)
	if len(res.records) != 3 || len(res.bad) != 1 || !errors.Is(res.bad[0].err, errShortHeader) || !res.tailBad {
		t.Fatalf("trailing partial header: %d records, bad %+v", len(res.records), res.bad)
	}
	long := bytes.Clone(good)
	last := scanSegment(bytes.NewReader(good), int64(len(good)), true).records[2]
	binary.LittleEndian.PutUint32(long[last.off:], uint32(last.size-recHeaderSize+1))
	for _, verify := range []bool{true, false} {
		res = scanSegment(bytes.NewReader(long), int64(len(long)), verify)
		if len(res.records) != 2 || len(res.bad) != 1 || !errors.Is(res.bad[0].err, errBadLength) {
			t.Fatalf("verify %v: length one past the end: %d records, bad %+v", verify, len(res.records), res.bad)
		}
	}
	// The same length exactly fitting is a record (with a bad CRC).
	fits := bytes.Clone(good)
	binary.LittleEndian.PutUint32(fits[last.off:], uint32(last.size-recHeaderSize))
	binary.LittleEndian.PutUint64(fits[last.off+8:], 1) // a different seq: the CRC fails
	res = scanSegment(bytes.NewReader(fits), int64(len(fits)), true)
	if len(res.bad) != 1 || !errors.Is(res.bad[0].err, errBadCRC) {
		t.Fatalf("bad CRC on the last record: %+v", res.bad)
	}
}
