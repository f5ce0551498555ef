package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// payload makes a record payload holding the given event ids (8 bytes each).
func payload(first uint64, n int, pad int) []byte {
	b := make([]byte, 0, n*8+pad)
	for i := 0; i < n; i++ {
		b = binary.LittleEndian.AppendUint64(b, first+uint64(i))
	}
	return append(b, make([]byte, pad)...)
}

func ids(p []byte, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(p[i*8:])
	}
	return out
}

func testOpts(dir string) Options {
	return Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Fsync: FsyncNever, Registerer: prometheus.NewRegistry()}
}

func mustOpen(t *testing.T, o Options) *Spool {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readAll reads every record from cursor name and acks it; it returns the ids.
func readAll(t *testing.T, s *Spool, name string, evPer int) []uint64 {
	t.Helper()
	r, err := s.Reader(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []uint64
	for r.Next() {
		rec := r.Record()
		if rec.Events != evPer {
			t.Fatalf("record events = %d, want %d", rec.Events, evPer)
		}
		out = append(out, ids(rec.Payload, rec.Events)...)
		if err := r.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkSeq(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from {
		t.Fatalf("got %d ids, want %d (%d..%d)", len(got), to-from, from, to)
	}
	for i, id := range got {
		if id != from+uint64(i) {
			t.Fatalf("id[%d] = %d, want %d", i, id, from+uint64(i))
		}
	}
}

func TestAppendReadReopen(t *testing.T) {
	for _, fs := range []string{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(fs, func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(dir)
			o.Fsync = fs
			o.FsyncInterval = 5 * time.Millisecond
			s := mustOpen(t, o)
			var id uint64
			for i := 0; i < 100; i++ { // ~ 100 × 4 KiB: several segments
				if err := s.Append(context.Background(), payload(id, 10, 4000), 10); err != nil {
					t.Fatal(err)
				}
				id += 10
			}
			checkSeq(t, readAll(t, s, "a", 10), 0, id)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, o)
			defer s.Close()
			// "a" is at the end; "b" is new and starts at the oldest data,
			// but the segments "a" passed are gone.
			if got := readAll(t, s, "a", 10); len(got) != 0 {
				t.Fatalf("reopened cursor re-read %d events", len(got))
			}
			if len(s.segs) != 1 {
				t.Fatalf("consumed segments not deleted: %d left", len(s.segs))
			}
			if err := s.Append(context.Background(), payload(id, 10, 0), 10); err != nil {
				t.Fatal(err)
			}
			checkSeq(t, readAll(t, s, "a", 10), id, id+10)
			if l, _ := s.Lag("a"); l.Events != 0 || l.Bytes != 0 {
				t.Fatalf("lag after reading all = %+v", l)
			}
		})
	}
}

func TestNewCursorStartsAtOldestAndPins(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	defer s.Close()
	if _, err := s.Reader("slow"); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 50; i++ {
		if err := s.Append(context.Background(), payload(i*10, 10, 4000), 10); err != nil {
			t.Fatal(err)
		}
	}
	checkSeq(t, readAll(t, s, "fast", 10), 0, 500)
	if len(s.segs) < 2 {
		t.Fatalf("want several segments, got %d", len(s.segs))
	}
	l, ok := s.Lag("slow")
	if !ok || l.Events != 500 {
		t.Fatalf("slow lag = %+v %v, want 500 events", l, ok)
	}
	if err := s.RemoveCursor("slow"); err == nil {
		t.Fatal("RemoveCursor of an open reader succeeded")
	}
	if got := s.Cursors(); fmt.Sprint(got) != "[fast slow]" {
		t.Fatalf("Cursors = %v", got)
	}
}

func TestRemoveCursorUnpins(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	r, _ := s.Reader("gone")
	r.Close()
	for i := uint64(0); i < 50; i++ {
		if err := s.Append(context.Background(), payload(i*10, 10, 4000), 10); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, s, "kept", 10)
	if len(s.segs) < 2 {
		t.Fatal("segments should be pinned by cursor gone")
	}
	if err := s.RemoveCursor("gone"); err != nil {
		t.Fatal(err)
	}
	if len(s.segs) != 1 {
		t.Fatalf("after RemoveCursor %d segments remain", len(s.segs))
	}
	s.Close()
	s = mustOpen(t, testOpts(dir))
	defer s.Close()
	if got := s.Cursors(); fmt.Sprint(got) != "[kept]" {
		t.Fatalf("Cursors after reopen = %v", got)
	}
}

func TestLockedAndOptions(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	defer s.Close()
	if _, err := Open(context.Background(), testOpts(dir)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if rep, err := Inspect(dir, true); err != nil || !rep.InUse {
		t.Fatalf("Inspect on a locked spool: %v %+v", err, rep)
	}
	bad := testOpts(t.TempDir())
	bad.MaxBytes = bad.SegmentBytes
	if _, err := Open(context.Background(), bad); err == nil {
		t.Fatal("MaxBytes < 2×SegmentBytes accepted")
	}
	var dropped uint64
	o := testOpts(t.TempDir())
	o.OnDrop = func(n uint64) { dropped += n }
	s2 := mustOpen(t, o)
	defer s2.Close()
	if err := s2.Append(context.Background(), make([]byte, 64<<10), 7); !errors.Is(err, ErrTooLarge) || dropped != 7 {
		t.Fatalf("oversized append: %v, dropped %d", err, dropped)
	}
	s2.Close()
	if err := s2.Append(context.Background(), nil, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWaitsForTheLock: Open retries a busy lock for up to a second
// (an Inspect probe holds it briefly), and gives up at once when its
// context is done.
func TestOpenWaitsForTheLock(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOpts(dir))
	go func() {
		time.Sleep(200 * time.Millisecond)
		s.Close()
	}()
	s2, err := Open(context.Background(), testOpts(dir))
	if err != nil {
		t.Fatalf("Open while the lock was released 200 ms later: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, testOpts(dir)); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open with a cancelled context on a held lock: %v", err)
	}
	s2.Close()
}
