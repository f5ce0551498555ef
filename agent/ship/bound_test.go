package ship_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
)

// dirSize is the size of every file under dir, tolerating files that
// disappear during the walk.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestBound feeds 10× MaxBytes with the only sink down, under both
// policies, and checks the directory bound throughout, the exact drop count
// and that what arrives afterwards is the newest (drop_oldest) or the oldest
// (drop_newest) events with no gap.
func TestBound(t *testing.T) {
	for _, policy := range []string{spool.DropOldest, spool.DropNewest} {
		t.Run(policy, func(t *testing.T) {
			const maxBytes, segBytes = 256 << 10, 32 << 10
			dir := t.TempDir()
			var dropped atomic.Uint64
			s := openSpool(t, spool.Options{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes, WhenFull: policy,
				Fsync: spool.FsyncInterval, FsyncInterval: 10 * time.Millisecond,
				OnDrop: func(n uint64) { dropped.Add(n) }})
			defer s.Close()
			sink := newMemSink()
			sink.down.Store(true)
			r := start(t, ship.Options{Name: "only", Sink: sink, Spool: s})

			var maxSeen atomic.Int64
			sample := func() {
				if n := dirSize(dir); n > maxSeen.Load() {
					maxSeen.Store(n)
				}
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						sample()
						time.Sleep(time.Millisecond)
					}
				}
			}()
			const per = 10
			var fed, accepted, refused int
			var bytes int64
			for bytes < 10*maxBytes {
				p := batch(fed, per, 250)
				err := s.Append(context.Background(), p, per)
				switch {
				case err == nil:
					accepted += per
				case errors.Is(err, spool.ErrFull) && policy == spool.DropNewest:
					refused += per
				default:
					t.Fatalf("append %d: %v", fed, err)
				}
				fed += per
				bytes += int64(len(p))
				sample()
			}
			close(stop)
			wg.Wait()
			if m := maxSeen.Load(); m > maxBytes+segBytes {
				t.Fatalf("spool directory reached %d bytes, bound %d", m, maxBytes+segBytes)
			} else {
				t.Logf("fed %d bytes (%d events); directory peaked at %d bytes (bound %d); dropped %d events",
					bytes, fed, m, maxBytes+segBytes, dropped.Load())
			}
			if sink.count() != 0 {
				t.Fatal("the down sink received events")
			}
			sink.down.Store(false)
			r.drain(t, 20*time.Second)
			got := sink.received()
			if uint64(len(got))+dropped.Load() != uint64(fed) {
				t.Fatalf("delivered %d + dropped %d != fed %d", len(got), dropped.Load(), fed)
			}
			first := 0
			if policy == spool.DropOldest {
				first = fed - len(got)
			} else if refused != int(dropped.Load()) || len(got) != accepted {
				t.Fatalf("drop_newest: refused %d, OnDrop %d, accepted %d, delivered %d", refused, dropped.Load(), accepted, len(got))
			}
			for i, g := range got {
				if g != id(first+i) {
					t.Fatalf("delivered[%d] = %s, want %s (a gap or a reorder)", i, g, id(first+i))
				}
			}
			if len(got) == 0 || len(got) == fed {
				t.Fatalf("delivered %d of %d: the bound did not bite", len(got), fed)
			}
			// Space came back: the spool accepts again.
			if err := s.Append(context.Background(), batch(fed, per, 250), per); err != nil {
				t.Fatalf("append after draining: %v", err)
			}
		})
	}
}
