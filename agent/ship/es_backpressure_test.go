package ship_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// TestElasticsearchBackPressureExactlyOnce: 50,000 events from a real spool
// through the Elasticsearch sink to the in-repo bulktest server, which
// answers 30% of bulk items 429 (es_rejected_execution_exception) and 10% of
// bulk requests 503, with the default backoff and elasticsearch.workers 2.
// Every event arrives exactly once and the cursor reaches the end. (The
// rate against a fault-free run is measured by `make bench`, not asserted.)
func TestElasticsearchBackPressureExactlyOnce(t *testing.T) {
	const n, per = 50000, 2048
	s := openSpool(t, spool.Options{Dir: t.TempDir(), MaxBytes: 256 << 20, SegmentBytes: 16 << 20, Fsync: spool.FsyncNever})
	defer s.Close()
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		if err := s.Append(context.Background(), ecsBatch(i, k), k); err != nil {
			t.Fatal(err)
		}
	}
	srv := bulktest.New(5)
	defer srv.Close()
	srv.SetItemFaults(0.3, 0)
	srv.SetRequestFaults(0, 0.1)
	const ds = "logs-fwtest.backpressure-default"
	es, err := elasticsearch.New(context.Background(), elasticsearch.Options{Addresses: []string{srv.URL}, DataStream: ds})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close(context.Background())
	var rejected uint64
	r := start(t, ship.Options{Name: "es", Sink: es, Spool: s, Workers: 2,
		Backoff:    ship.Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.5},
		OnRejected: func(k uint64) { rejected += k }})
	t0 := time.Now()
	r.drain(t, 5*time.Minute)
	el := time.Since(t0)
	ids := srv.IDs(ds)
	if len(ids) != n || rejected != 0 {
		t.Fatalf("%d distinct ids stored, %d rejected; want %d and 0", len(ids), rejected, n)
	}
	for i := 0; i < n; i++ {
		if c := ids[id(i)]; c != 1 {
			t.Fatalf("%s stored %d times", id(i), c)
		}
	}
	if l, _ := s.Lag("es"); l.Events != 0 {
		t.Errorf("cursor lag %d after drain", l.Events)
	}
	reqs, _ := srv.BulkRequests()
	t.Logf("50,000 events exactly once in %v (%.0f events/s), %d bulk requests", el, float64(n)/el.Seconds(), reqs)
}

// ecsBatch encodes events first..first+n-1 as documents a data stream
// accepts (they have @timestamp).
func ecsBatch(first, n int) []byte {
	evs := make([]sinks.Event, n)
	for i := range evs {
		evs[i] = sinks.Event{ID: id(first + i), Key: "host-1",
			Doc: fmt.Appendf(nil, `{"@timestamp":"2026-12-02T04:00:00.000Z","event":{"id":%q,"kind":"event"},"file":{"path":"/tmp/f%d"}}`, id(first+i), first+i)}
	}
	return sinks.AppendBatch(nil, evs)
}

// TestConcurrentSendsKeepCursorOrder: with several batches in flight and
// completing out of order, the cursor never passes a batch that is not
// complete: a sink that holds the first record's batch keeps the lag at
// everything, although later records were delivered.
func TestConcurrentSendsKeepCursorOrder(t *testing.T) {
	s := openSpool(t, spool.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, SegmentBytes: 1 << 20, Fsync: spool.FsyncNever})
	defer s.Close()
	for i := 0; i < 10; i++ {
		s.Append(context.Background(), batch(i*10, 10, 50), 10)
	}
	mem := newMemSink()
	release := make(chan struct{})
	sink := &gateSink{memSink: mem, hold: id(0), release: release}
	r := start(t, ship.Options{Name: "o", Sink: sink, Spool: s, Workers: 2})
	waitFor(t, 5*time.Second, "the other records", func() bool { return mem.count() == 90 })
	time.Sleep(50 * time.Millisecond)
	if l, _ := s.Lag("o"); l.Events != 100 {
		t.Fatalf("lag %d while the first record is in flight, want 100", l.Events)
	}
	close(release)
	r.drain(t, 5*time.Second)
	if l, _ := s.Lag("o"); l.Events != 0 || mem.count() != 100 {
		t.Fatalf("lag %d, delivered %d after the first record completed", l.Events, mem.count())
	}
}

// gateSink holds the Send whose first event is hold until release closes.
type gateSink struct {
	*memSink
	hold    string
	release chan struct{}
}

func (g *gateSink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	if b.Events[0].ID == g.hold {
		select {
		case <-g.release:
		case <-ctx.Done():
			return sinks.Result{}, ctx.Err()
		}
	}
	return g.memSink.Send(ctx, b)
}
