package ship_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
)

var errDown = errors.New("connection refused")

// memSink is a destination in memory that can be taken down. Its optional
// hook decides each Send's outcome instead.
type memSink struct {
	mu    sync.Mutex
	down  atomic.Bool
	ids   []string
	seen  map[string]int
	sends int
	hook  func(call int, b *sinks.Batch) (sinks.Result, error)
	calls [][]string // ids of every Send, in order
}

func newMemSink() *memSink { return &memSink{seen: map[string]int{}} }

func (m *memSink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sends++
	var call []string
	for _, e := range b.Events {
		call = append(call, e.ID)
	}
	m.calls = append(m.calls, call)
	if m.down.Load() {
		return sinks.Result{}, errDown
	}
	res, err := sinks.Result{}, error(nil)
	if m.hook != nil {
		res, err = m.hook(m.sends, b)
	}
	if err != nil {
		return res, err
	}
	failed := map[int]bool{}
	for _, f := range res.Failures {
		failed[f.Index] = true
	}
	for i, e := range b.Events {
		if !failed[i] {
			m.ids = append(m.ids, e.ID)
			m.seen[e.ID]++
		}
	}
	return res, nil
}

func (m *memSink) Close(context.Context) error { return nil }

func (m *memSink) received() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.ids...)
}

func (m *memSink) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

func id(n int) string { return fmt.Sprintf("ev-%08d", n) }

// batch encodes events first..first+n-1 with documents of docBytes bytes.
func batch(first, n, docBytes int) []byte {
	evs := make([]sinks.Event, n)
	pad := make([]byte, docBytes)
	for i := range pad {
		pad[i] = 'x'
	}
	for i := range evs {
		evs[i] = sinks.Event{ID: id(first + i), Key: "host-1",
			Doc: fmt.Appendf(nil, `{"event":{"id":%q},"pad":"%s"}`, id(first+i), pad)}
	}
	return sinks.AppendBatch(nil, evs)
}

func openSpool(t *testing.T, o spool.Options) *spool.Spool {
	t.Helper()
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	s, err := spool.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var fastBackoff = ship.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Jitter: 0.2}

// running is a Shipper started in a goroutine.
type running struct {
	sh   *ship.Shipper
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, o ship.Options) *running {
	t.Helper()
	if o.Backoff == (ship.Backoff{}) {
		o.Backoff = fastBackoff
	}
	if o.DeadLetterDir == "" {
		o.DeadLetterDir = t.TempDir()
	}
	sh, err := ship.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sh: sh, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- sh.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// drain asks the shipper to finish and waits for Run to return.
func (r *running) drain(t *testing.T, timeout time.Duration) {
	t.Helper()
	r.sh.Drain()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(timeout):
		t.Fatalf("shipper did not drain within %v", timeout)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
