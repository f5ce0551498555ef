package spool

import (
	"context"
	"errors"
	"testing"
)

// TestRefusedReportIsNotCountedAsDropped: under drop_newest a full spool
// refuses a record of loss reports as it refuses any record, but does not
// count its documents as dropped events (OnDrop, the dropped metric): the
// reporter keeps the counts and sends them again, so they are not lost.
// A refused record of events is counted, and under drop_oldest the events
// deleted to make room for a report are counted too.
func TestRefusedReportIsNotCountedAsDropped(t *testing.T) {
	ctx := context.Background()
	t.Run("drop_newest", func(t *testing.T) {
		var dropped uint64
		s, err := Open(ctx, Options{Dir: t.TempDir(), MaxBytes: 2 * 4096, SegmentBytes: 4096, Fsync: FsyncNever,
			WhenFull: DropNewest, OnDrop: func(n uint64) { dropped += n }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for s.Append(ctx, make([]byte, 1000), 0) == nil {
		}
		for s.Append(ctx, nil, 0) == nil {
		}
		err = s.AppendReport(ctx, make([]byte, 100), 2, LossCounts{"spool_full": 5}, LossCounts{"spool_full": 5})
		if !errors.Is(err, ErrFull) || dropped != 0 {
			t.Fatalf("AppendReport on a full spool: %v, OnDrop total %d; want ErrFull and 0", err, dropped)
		}
		if err := s.Append(ctx, make([]byte, 100), 3); !errors.Is(err, ErrFull) || dropped != 3 {
			t.Fatalf("Append on a full spool: %v, OnDrop total %d; want ErrFull and 3", err, dropped)
		}
	})
	t.Run("drop_oldest", func(t *testing.T) {
		var dropped uint64
		s, err := Open(ctx, Options{Dir: t.TempDir(), MaxBytes: 2 * 4096, SegmentBytes: 4096, Fsync: FsyncNever,
			OnDrop: func(n uint64) { dropped += n }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Reader("sink"); err != nil { // a cursor that never moves
			t.Fatal(err)
		}
		events := uint64(0)
		for i := 0; i < 7; i++ { // a little under two segments
			if err := s.Append(ctx, make([]byte, 1000), 1); err != nil {
				t.Fatal(err)
			}
			events++
		}
		for i := 0; dropped == 0 && i < 100; i++ {
			if err := s.AppendReport(ctx, make([]byte, 1000), 1, LossCounts{"x": 1}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if dropped == 0 || dropped > events {
			t.Errorf("OnDrop total %d after reports pushed out a segment of %d events: want the deleted events counted", dropped, events)
		}
	})
}
