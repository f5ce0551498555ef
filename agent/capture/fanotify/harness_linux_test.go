//go:build linux

package fanotify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
)

// needRoot skips with a reason when the test cannot use fanotify.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
}

// collector drains a ring into a slice.
type collector struct {
	mu  sync.Mutex
	evs []schema.Event
}

func (c *collector) snapshot() []schema.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]schema.Event(nil), c.evs...)
}

// running is a Source being run by a test.
type running struct {
	src   *Source
	ring  *capture.Ring
	drops *capture.Drops
	col   *collector
	stop  func() error
}

// start runs a Source. With drain, a goroutine pops the ring into col.
func start(t testing.TB, o Options, ringCap int, drain bool) *running {
	t.Helper()
	src, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return startSource(t, src, ringCap, drain)
}

func startSource(t testing.TB, src *Source, ringCap int, drain bool) *running {
	t.Helper()
	drops := &capture.Drops{}
	ring := capture.NewRing(ringCap, drops)
	ctx, cancel := context.WithCancel(context.Background())
	col := &collector{}
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx, ring, drops) }()
	var wg sync.WaitGroup
	if drain {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev schema.Event
			for ring.Pop(ctx, &ev) {
				col.mu.Lock()
				col.evs = append(col.evs, ev)
				col.mu.Unlock()
			}
		}()
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-runErr:
			case <-time.After(5 * time.Second):
				err = fmt.Errorf("Run did not return 5s after cancel")
			}
			wg.Wait()
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{src: src, ring: ring, drops: drops, col: col, stop: stop}
}

// waitFor polls the collected events until ok returns true or d passes.
func (r *running) waitFor(d time.Duration, ok func([]schema.Event) bool) ([]schema.Event, bool) {
	deadline := time.Now().Add(d)
	for {
		evs := r.col.snapshot()
		if ok(evs) {
			return evs, true
		}
		if time.Now().After(deadline) {
			return evs, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dump(evs []schema.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-24s pid=%-7d %s", e.Action, e.Process.PID, e.Path)
		if e.OrigPath != "" {
			fmt.Fprintf(&b, " (from %s)", e.OrigPath)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
