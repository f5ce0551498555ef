package ship_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
)

func spoolOpts(dir string) spool.Options {
	return spool.Options{Dir: dir, MaxBytes: 4 << 20, SegmentBytes: 64 << 10, Fsync: spool.FsyncNever}
}

func TestPartialRetryAndDeadLetter(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	sink := newMemSink()
	// Call 1: index 1 retryable, index 2 permanent. Call 2 (only the old
	// index 1) succeeds.
	sink.hook = func(call int, b *sinks.Batch) (sinks.Result, error) {
		if call == 1 {
			return sinks.Result{Failures: []sinks.Failure{
				{Index: 1, Err: errors.New("429 too many requests")},
				{Index: 2, Err: sinks.Permanent(errors.New("400 mapper_parsing_exception"))},
			}}, nil
		}
		return sinks.Result{}, nil
	}
	var rejected uint64
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	dl := t.TempDir()
	r := start(t, ship.Options{Name: "siem", Sink: sink, Spool: s, DeadLetterDir: dl, Registerer: reg,
		OnRejected: func(n uint64) { mu.Lock(); rejected += n; mu.Unlock() }})
	if err := s.Append(context.Background(), batch(0, 4, 10), 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return sink.count() == 3 })
	r.drain(t, 5*time.Second)

	if got := strings.Join(sink.calls[1], ","); got != id(1) {
		t.Fatalf("retry sent %q, want only %s", got, id(1))
	}
	if len(sink.calls) != 2 {
		t.Fatalf("%d sends, want 2: %v", len(sink.calls), sink.calls)
	}
	if got := sink.received(); strings.Join(got, ",") != strings.Join([]string{id(0), id(3), id(1)}, ",") {
		t.Fatalf("received %v", got)
	}
	mu.Lock()
	if rejected != 1 {
		t.Fatalf("OnRejected total %d, want 1", rejected)
	}
	mu.Unlock()
	f, err := os.Open(filepath.Join(dl, "siem.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("dead-letter line is not JSON: %v: %s", err, sc.Bytes())
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 || lines[0]["event_id"] != id(2) || !strings.Contains(lines[0]["error"].(string), "mapper_parsing_exception") {
		t.Fatalf("dead-letter lines: %v", lines)
	}
	doc := lines[0]["document"].(map[string]any)
	if doc["event"].(map[string]any)["id"] != id(2) {
		t.Fatalf("dead-letter document: %v", doc)
	}
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range mf {
		switch m.GetName() {
		case "fileward_sink_events_acked_total":
			seen++
			if v := m.Metric[0].Counter.GetValue(); v != 3 {
				t.Fatalf("acked = %v, want 3", v)
			}
		case "fileward_sink_lag_events":
			seen++
			if v := m.Metric[0].Gauge.GetValue(); v != 0 {
				t.Fatalf("lag = %v, want 0", v)
			}
		}
	}
	if seen != 2 {
		t.Fatal("acked or lag metric missing")
	}
}

func TestWholeBatchPermanentDeadLettersAll(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	sink := newMemSink()
	sink.hook = func(call int, b *sinks.Batch) (sinks.Result, error) {
		if call == 1 {
			return sinks.Result{}, sinks.Permanent(errors.New("message too large"))
		}
		return sinks.Result{}, nil
	}
	var rejected uint64
	dl := t.TempDir()
	r := start(t, ship.Options{Name: "k", Sink: sink, Spool: s, DeadLetterDir: dl,
		OnRejected: func(n uint64) { rejected += n }})
	s.Append(context.Background(), batch(0, 5, 10), 5)
	s.Append(context.Background(), batch(5, 5, 10), 5)
	waitFor(t, 5*time.Second, "second batch", func() bool { return sink.count() == 5 })
	r.drain(t, 5*time.Second)
	if rejected != 5 {
		t.Fatalf("rejected %d, want 5", rejected)
	}
	b, _ := os.ReadFile(filepath.Join(dl, "k.ndjson"))
	if n := strings.Count(string(b), "\n"); n != 5 || !strings.Contains(string(b), "message too large") {
		t.Fatalf("dead-letter file has %d lines:\n%s", n, b)
	}
	if got := sink.received(); got[0] != id(5) {
		t.Fatalf("received %v", got)
	}
}

// fakeClock records the waits it is asked for and fires them at once.
type fakeClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func TestBackoffGrowsAndHealth(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	sink := newMemSink()
	gate := make(chan struct{})
	var once sync.Once
	sink.hook = func(call int, b *sinks.Batch) (sinks.Result, error) {
		if call <= 6 {
			return sinks.Result{}, errors.New("503 unavailable")
		}
		once.Do(func() { <-gate }) // hold call 7 so the test can look at Healthy
		return sinks.Result{}, nil
	}
	clk := &fakeClock{}
	r := start(t, ship.Options{Name: "b", Sink: sink, Spool: s, Clock: clk,
		Backoff: ship.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0}})
	s.Append(context.Background(), batch(0, 1, 10), 1)
	waitFor(t, 5*time.Second, "six failures", func() bool { clk.mu.Lock(); defer clk.mu.Unlock(); return len(clk.waits) == 6 })
	if r.sh.Healthy() {
		t.Fatal("Healthy while backing off")
	}
	close(gate)
	waitFor(t, 5*time.Second, "delivery", func() bool { return sink.count() == 1 })
	waitFor(t, 5*time.Second, "healthy", r.sh.Healthy)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if clk.waits[i] != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v (all: %v)", i, clk.waits[i], w*time.Millisecond, clk.waits)
		}
	}
}

func TestDrainReturnsAtEndAndCancelLeavesSpooled(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, spoolOpts(dir))
	sink := newMemSink()
	r := start(t, ship.Options{Name: "d", Sink: sink, Spool: s})
	for i := 0; i < 20; i++ {
		s.Append(context.Background(), batch(i*10, 10, 100), 10)
	}
	r.drain(t, 5*time.Second)
	if sink.count() != 200 {
		t.Fatalf("drained with %d of 200 delivered", sink.count())
	}
	// A dead sink: Drain does not end the retries; cancelling ctx does,
	// and the batch stays in the spool for the next start.
	down := newMemSink()
	down.down.Store(true)
	r2 := start(t, ship.Options{Name: "d2", Sink: down, Spool: s})
	r2.sh.Drain()
	select {
	case <-r2.done:
		t.Fatal("Run returned while data was undelivered")
	case <-time.After(100 * time.Millisecond):
	}
	r2.stop()
	if err := <-r2.done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	r2.done <- nil
	if l, _ := s.Lag("d2"); l.Events != 200 {
		t.Fatalf("lag of the cancelled shipper = %d, want 200", l.Events)
	}
	s.Close()
	s = openSpool(t, spoolOpts(dir))
	defer s.Close()
	up := newMemSink()
	start(t, ship.Options{Name: "d2", Sink: up, Spool: s}).drain(t, 5*time.Second)
	if up.count() != 200 {
		t.Fatalf("after restart delivered %d, want 200", up.count())
	}
}

func TestIndependence(t *testing.T) {
	s := openSpool(t, spool.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, SegmentBytes: 1 << 20, Fsync: spool.FsyncInterval,
		FsyncInterval: 50 * time.Millisecond})
	defer s.Close()
	healthy, dead := newMemSink(), newMemSink()
	dead.down.Store(true)
	rh := start(t, ship.Options{Name: "healthy", Sink: healthy, Spool: s})
	rd := start(t, ship.Options{Name: "dead", Sink: dead, Spool: s,
		Backoff: ship.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2}})
	const batches, per = 400, 50
	t0 := time.Now()
	for i := 0; i < batches; i++ {
		if err := s.Append(context.Background(), batch(i*per, per, 200), per); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "healthy sink", func() bool { return healthy.count() == batches*per })
	elapsed := time.Since(t0)
	t.Logf("healthy sink got %d events in %v while the other was down", batches*per, elapsed)
	if dead.count() != 0 {
		t.Fatal("dead sink received events")
	}
	if rd.sh.Healthy() || !rh.sh.Healthy() {
		t.Fatalf("health: dead %v healthy %v", rd.sh.Healthy(), rh.sh.Healthy())
	}
	dead.down.Store(false)
	rd.drain(t, 20*time.Second)
	rh.drain(t, 5*time.Second)
	for _, m := range []*memSink{healthy, dead} {
		got := m.received()
		if len(got) != batches*per {
			t.Fatalf("got %d events, want %d", len(got), batches*per)
		}
		for i, g := range got {
			if g != id(i) {
				t.Fatalf("event %d = %s, want %s", i, g, id(i))
			}
		}
	}
}

// The shipper reads the next record while a Send is in flight and reuses
// the memory of completed batches. Every document must still arrive once,
// in order, byte for byte, with batches of different sizes (a reused
// buffer grows or is sliced) and retries of partly failed batches (a batch
// is retried from memory the shipper must not have handed to the next).
func TestReadAheadKeepsDocumentsIntact(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	var mu sync.Mutex
	var docs []string
	sink := newMemSink()
	sink.hook = func(call int, b *sinks.Batch) (sinks.Result, error) {
		time.Sleep(200 * time.Microsecond) // a Send takes a while: the next record is read meanwhile
		var res sinks.Result
		if call%5 == 0 && len(b.Events) > 1 {
			res.Failures = append(res.Failures, sinks.Failure{Index: len(b.Events) - 1, Err: errDown})
		}
		mu.Lock()
		for i, ev := range b.Events {
			if len(res.Failures) == 0 || i != res.Failures[0].Index {
				docs = append(docs, ev.ID+" "+string(ev.Doc))
			}
		}
		mu.Unlock()
		return res, nil
	}
	r := start(t, ship.Options{Name: "ahead", Sink: sink, Spool: s})
	var want []string
	next := 0
	for i := 0; i < 60; i++ {
		n, size := 1+(i*7)%23, 10+(i*37)%400
		s.Append(context.Background(), batch(next, n, size), n)
		for k := next; k < next+n; k++ {
			want = append(want, id(k)+" "+string(fmt.Appendf(nil, `{"event":{"id":%q},"pad":"%s"}`, id(k), strings.Repeat("x", size))))
		}
		next += n
	}
	r.drain(t, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	// One batch at a time (Kafka's window), and the retried event is the
	// last of its batch: the documents arrive exactly in spool order.
	if len(docs) != len(want) {
		t.Fatalf("%d documents arrived, want %d", len(docs), len(want))
	}
	for i := range want {
		if docs[i] != want[i] {
			t.Fatalf("document %d is %.80q…, want %.80q…", i, docs[i], want[i])
		}
	}
}
