package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestOptionDefaults: zero options get docs/configuration.md's defaults,
// and each bound is inclusive.
func TestOptionDefaults(t *testing.T) {
	o := Options{Dir: "x"}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.MaxBytes != 1<<30 || o.SegmentBytes != 16<<20 || o.WhenFull != DropOldest || o.Fsync != FsyncInterval ||
		o.FsyncInterval != time.Second || o.Compression != CompressionNone || o.Logger == nil {
		t.Fatalf("defaults %+v", o)
	}
	o.OnDrop(1)
	o.OnCorrupt(1)
	o.OnReportDropped(nil)
	for _, c := range []struct {
		o   Options
		err string
	}{
		{Options{Dir: "x", SegmentBytes: 4096, MaxBytes: 8192}, ""},
		{Options{Dir: "x", SegmentBytes: 4095, MaxBytes: 8192}, "below 4096"},
		{Options{Dir: "x", SegmentBytes: 4096, MaxBytes: 8191}, "at least twice"},
		{Options{Dir: "x", FsyncInterval: -1}, ""},
		{Options{Dir: "x", WhenFull: "drop_all"}, "when_full"},
		{Options{Dir: "x", Fsync: "sometimes"}, "fsync"},
		{Options{}, "Dir is empty"},
	} {
		err := c.o.setDefaults()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.err)
		}
	}
	neg := Options{Dir: "x", FsyncInterval: -1}
	neg.setDefaults()
	if neg.FsyncInterval != time.Second {
		t.Errorf("a negative fsync interval became %v", neg.FsyncInterval)
	}
	kept := Options{Dir: "x", MaxBytes: 1 << 20, SegmentBytes: 8192, WhenFull: DropNewest, Fsync: FsyncNever, FsyncInterval: time.Minute, Compression: CompressionLZ4}
	want := kept
	kept.setDefaults()
	if kept.MaxBytes != want.MaxBytes || kept.SegmentBytes != want.SegmentBytes || kept.WhenFull != want.WhenFull || kept.Fsync != want.Fsync ||
		kept.FsyncInterval != want.FsyncInterval || kept.Compression != want.Compression {
		t.Errorf("set options changed: %+v", kept)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason != "" && !hasLabel(m, "reason", reason) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, reason)
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestExactFits: a record that fills a segment exactly stays in it, one
// byte more rolls; a frame of exactly segment_bytes-20 is accepted, one
// byte more is ErrTooLarge; a spool filled exactly to max_bytes accepts
// the record, one byte more is full. The metrics follow.
func TestExactFits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	var dropped uint64
	o := Options{Dir: dir, MaxBytes: 3 * 4096, SegmentBytes: 4096, WhenFull: DropNewest, Fsync: FsyncNever, Registerer: reg,
		OnDrop: func(n uint64) { dropped += n }}
	s := mustOpen(t, o)
	defer s.Close()
	room := int(o.SegmentBytes) - segHeaderSize - recHeaderSize // the largest payload
	if err := s.Append(ctx, make([]byte, room+1), 3); !errors.Is(err, ErrTooLarge) || dropped != 3 {
		t.Fatalf("payload of room+1: %v, dropped %d", err, dropped)
	}
	if got := gauge(t, reg, "fileward_spool_dropped_events_total", reasonTooLarge); got != 3 {
		t.Fatalf("too_large counted %v", got)
	}
	if err := s.Append(ctx, make([]byte, room), 1); err != nil {
		t.Fatalf("payload of exactly the room: %v", err)
	}
	if n := len(s.segs); n != 1 || s.Bytes() != o.SegmentBytes {
		t.Fatalf("%d segments, %d bytes after filling the first exactly", n, s.Bytes())
	}
	// Two records that fill the second segment exactly.
	half := (int(o.SegmentBytes)-segHeaderSize)/2 - recHeaderSize
	for i := 0; i < 2; i++ {
		if err := s.Append(ctx, make([]byte, half), 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.segs); n != 2 || s.Bytes() != 2*o.SegmentBytes {
		t.Fatalf("%d segments, %d bytes after two halves", n, s.Bytes())
	}
	// The third segment: exactly max_bytes fits; then the spool is full.
	if err := s.Append(ctx, make([]byte, room), 1); err != nil {
		t.Fatalf("the record that fills max_bytes exactly: %v", err)
	}
	if s.Bytes() != o.MaxBytes {
		t.Fatalf("%d bytes, want max_bytes %d", s.Bytes(), o.MaxBytes)
	}
	if err := s.Append(ctx, nil, 2); !errors.Is(err, ErrFull) || dropped != 5 {
		t.Fatalf("append to a full spool: %v, dropped %d", err, dropped)
	}
	if got := gauge(t, reg, "fileward_spool_bytes", ""); got != float64(o.MaxBytes) {
		t.Errorf("fileward_spool_bytes %v", got)
	}
	if got := gauge(t, reg, "fileward_events_spooled_total", ""); got != 4 {
		t.Errorf("fileward_events_spooled_total %v, want 4", got)
	}
	if got := gauge(t, reg, "fileward_spool_dropped_events_total", reasonFull); got != 2 {
		t.Errorf("full counted %v, want 2", got)
	}
	if err := s.Append(ctx, nil, -1); err == nil {
		t.Error("a negative event count was accepted")
	}
}

// TestDropOldestCountsUnread: drop_oldest deletes the oldest segments to
// make room and counts exactly the events the slowest cursor had not
// acknowledged; events every cursor had read are not counted.
func TestDropOldestCountsUnread(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var dropped uint64
	o := Options{Dir: dir, MaxBytes: 3 * 4096, SegmentBytes: 4096, Fsync: FsyncNever, OnDrop: func(n uint64) { dropped += n }}
	s := mustOpen(t, o)
	defer s.Close()
	r, _ := s.Reader("slow")
	defer r.Close()
	fast, _ := s.Reader("fast")
	defer fast.Close()
	rec := func(i uint64) []byte { return payload(i*10, 10, 1800) } // 2 records per segment
	for i := uint64(0); i < 6; i++ {
		if err := s.Append(ctx, rec(i), 10); err != nil {
			t.Fatal(err)
		}
	}
	// slow acknowledges 15 events: the first record and half... records
	// are whole: it acknowledges the first record (10 events).
	r.Next()
	r.Ack()
	for fast.Next() {
		fast.Ack()
	}
	if err := s.Append(ctx, rec(6), 10); err != nil {
		t.Fatal(err)
	}
	// The first segment (events 0…19) went; slow had read 10 of them.
	if dropped != 10 {
		t.Fatalf("dropped %d, want the 10 the slow cursor had not read", dropped)
	}
	if l, _ := s.Lag("slow"); l.Events != 50 {
		t.Fatalf("slow lag %d events, want 50", l.Events)
	}
	for r.Next() {
		if r.Record().Seq < 20 {
			t.Fatalf("read seq %d from a dropped segment", r.Record().Seq)
		}
		r.Ack()
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}

// TestSyncAndClose: Sync under each policy, Close twice, and operations
// after Close.
func TestSyncAndClose(t *testing.T) {
	for _, fs := range []string{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(fs, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: fs, FsyncInterval: 10 * time.Millisecond}
			s := mustOpen(t, o)
			for i := uint64(0); i < 5; i++ {
				if err := s.Append(context.Background(), payload(i, 1, 2000), 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			r, _ := s.Reader("r")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
			if err := s.Sync(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Sync after Close: %v", err)
			}
			if r.Next() || !errors.Is(r.Err(), ErrClosed) {
				t.Fatalf("Next after Close: %v", r.Err())
			}
			if _, err := s.Reader("x"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Reader after Close: %v", err)
			}
			if err := s.RemoveCursor("r"); !errors.Is(err, ErrClosed) {
				t.Fatalf("RemoveCursor after Close: %v", err)
			}
			r.Close()
			s = mustOpen(t, o)
			defer s.Close()
			got := readAll(t, s, "again", 1)
			checkSeq(t, got, 0, 5)
		})
	}
}

// TestDropOldestExactFit: under drop_oldest, deleting the oldest segment
// that makes room for a record exactly (total + record = max_bytes) is
// enough: the record is taken, and only that one segment goes.
func TestDropOldestExactFit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var dropped uint64
	o := Options{Dir: dir, MaxBytes: 3 * 4096, SegmentBytes: 4096, WhenFull: DropOldest, Fsync: FsyncNever,
		OnDrop: func(n uint64) { dropped += n }}
	s := mustOpen(t, o)
	defer s.Close()
	room := int(o.SegmentBytes) - segHeaderSize - recHeaderSize // one record fills a segment
	first := s.segs[0].idx
	for i := 0; i < 3; i++ {
		if err := s.Append(ctx, make([]byte, room), 1); err != nil {
			t.Fatal(err)
		}
	}
	if s.Bytes() != o.MaxBytes || len(s.segs) != 3 {
		t.Fatalf("%d bytes in %d segments, want max_bytes %d in 3", s.Bytes(), len(s.segs), o.MaxBytes)
	}
	// A fourth needs a new segment: dropping the oldest leaves exactly room.
	if err := s.Append(ctx, make([]byte, room), 1); err != nil {
		t.Fatalf("append after dropping the oldest segment: %v", err)
	}
	if dropped != 1 {
		t.Fatalf("dropped %d events, want the 1 of the oldest segment", dropped)
	}
	if s.Bytes() != o.MaxBytes || len(s.segs) != 3 {
		t.Fatalf("%d bytes in %d segments, want max_bytes %d in 3", s.Bytes(), len(s.segs), o.MaxBytes)
	}
	for idx := first; idx < first+4; idx++ {
		_, err := os.Stat(filepath.Join(dir, segName(idx)))
		if gone := errors.Is(err, os.ErrNotExist); gone != (idx == first) {
			t.Errorf("segment %d: %v", idx, err)
		}
	}
	r, err := s.Reader("r")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var seqs []uint64
	for r.Next() {
		seqs = append(seqs, r.Record().Seq)
	}
	if r.Err() != nil || len(seqs) != 3 || seqs[0] != 1 || seqs[2] != 3 {
		t.Fatalf("read seqs %v (%v), want 1, 2, 3", seqs, r.Err())
	}
}

// TestGCRemovesPassedSegments: a sealed segment is deleted once every
// cursor has persisted a position past it, and not before.
func TestGCRemovesPassedSegments(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncAlways}
	s := mustOpen(t, o)
	defer s.Close()
	slow, err := s.Reader("slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for i := uint64(0); i < 5; i++ { // two records a segment: segments 0, 1, 2
		if err := s.Append(context.Background(), payload(i, 1, 1800), 1); err != nil {
			t.Fatal(err)
		}
	}
	segFiles := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if n := len(segFiles()); n != 3 {
		t.Fatalf("%d segment files, want 3", n)
	}
	checkSeq(t, readAll(t, s, "fast", 1), 0, 5)
	// slow has read nothing: every segment stays.
	if n, m := len(s.segs), len(segFiles()); n != 3 || m != 3 {
		t.Fatalf("%d segments, %d files while a cursor is at the start, want 3", n, m)
	}
	// slow passes the first segment only.
	for i := 0; i < 2; i++ {
		if !slow.Next() {
			t.Fatal(slow.Err())
		}
		if err := slow.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := len(s.segs), len(segFiles()); n != 2 || m != 2 {
		t.Fatalf("%d segments, %d files after both cursors passed the first, want 2", n, m)
	}
	for slow.Next() {
		if err := slow.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if slow.Err() != nil {
		t.Fatal(slow.Err())
	}
	if n, m := len(s.segs), len(segFiles()); n != 1 || m != 1 {
		t.Fatalf("%d segments, %d files after both cursors read everything, want 1 (the active one)", n, m)
	}
	if s.Bytes() != s.segs[0].size {
		t.Fatalf("%d bytes, want the active segment's %d", s.Bytes(), s.segs[0].size)
	}
}
