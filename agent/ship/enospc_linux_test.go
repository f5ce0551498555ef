package ship_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/internal/testtool"
)

// TestENOSPC fills a 2 MiB tmpfs under the spool: appends fail fast with
// ErrNoSpace and are counted, the agent keeps running, and the shipper keeps
// delivering what was spooled even though it cannot persist its cursor;
// after space is freed, appending and shipping resume without a restart,
// with no event lost or sent twice.
func TestENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestENOSPC mounts a tmpfs and needs root (CI runs as root)")
	}
	mnt := testtool.Tmpfs(t, "2m")
	var dropped atomic.Uint64
	s := openSpool(t, spool.Options{Dir: filepath.Join(mnt, "spool"), MaxBytes: 64 << 20, SegmentBytes: 256 << 10,
		Fsync: spool.FsyncInterval, FsyncInterval: 10 * time.Millisecond, OnDrop: func(n uint64) { dropped.Add(n) }})
	defer s.Close()
	sink := newMemSink()
	r := start(t, ship.Options{Name: "s", Sink: sink, Spool: s, DeadLetterDir: filepath.Join(mnt, "dead-letter")})

	const per = 10
	next := 0
	var stored []int // first id of every stored batch
	appendOne := func() error {
		err := s.Append(context.Background(), batch(next, per, 300), per)
		if err == nil {
			stored = append(stored, next)
		}
		next += per
		return err
	}
	for i := 0; i < 20; i++ {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "first batches", func() bool { return sink.count() == 20*per })

	// Some batches stay undelivered, then the file system fills up.
	sink.down.Store(true)
	for i := 0; i < 10; i++ {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	filler := filepath.Join(mnt, "filler")
	testtool.FillDisk(t, filler) // to the last byte
	var nospace, ok int
	var slowest time.Duration
	for i := 0; i < 200; i++ {
		t0 := time.Now()
		err := appendOne()
		if d := time.Since(t0); d > slowest {
			slowest = d
		}
		switch {
		case err == nil:
			ok++
		case errors.Is(err, spool.ErrNoSpace):
			nospace++
		default:
			t.Fatalf("append on a full disk: %v", err)
		}
	}
	t.Logf("full disk: %d appends refused with ErrNoSpace, %d fitted in slack, slowest %v", nospace, ok, slowest)
	// Appends that still fit in the last allocated page succeed; every
	// other one is refused, and each refused event is counted exactly. An
	// append that waited for space would never return (nothing frees it
	// here), so the slowest one is a figure, not a threshold.
	if nospace == 0 || ok+nospace != 200 || dropped.Load() != uint64(nospace*per) {
		t.Fatalf("refused %d, fitted %d, OnDrop total %d, want every refused event (%d) counted", nospace, ok, dropped.Load(), nospace*per)
	}

	// The sink comes back while the disk is still full: the shipper
	// delivers the spooled batches even though it cannot persist its cursor.
	sink.down.Store(false)
	waitFor(t, 10*time.Second, "delivery on a full disk", func() bool { return sink.count() == 30*per })

	// Free the space: no restart, the same Spool and Shipper go on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if err := appendOne(); err != nil {
			t.Fatalf("append after freeing space: %v", err)
		}
	}
	r.drain(t, 10*time.Second)
	got := sink.received()
	want := 0
	for _, first := range stored {
		for k := 0; k < per; k++ {
			if want >= len(got) || got[want] != id(first+k) {
				t.Fatalf("delivery %d: got %v, want %s", want, got[min(want, len(got)-1)], id(first+k))
			}
			want++
		}
	}
	if len(got) != want {
		t.Fatalf("delivered %d events, stored %d", len(got), want)
	}
	if uint64(len(got))+dropped.Load() != uint64(next) {
		t.Fatalf("delivered %d + dropped %d != fed %d", len(got), dropped.Load(), next)
	}
}
