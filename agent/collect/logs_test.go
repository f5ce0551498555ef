package collect

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// logRecorder is a slog.Handler that keeps every record at or above level
// and passes those at Error and above to the test log.
type logRecorder struct {
	t     *testing.T
	level slog.Level
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

func newLogRecorder(t *testing.T, level slog.Level) *logRecorder {
	return &logRecorder{t: t, level: level, mu: &sync.Mutex{}, recs: &[]slog.Record{}}
}

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	*r.recs = append(*r.recs, rec)
	r.mu.Unlock()
	if rec.Level >= slog.LevelError {
		return slog.NewTextHandler(testWriter{r.t}, nil).Handle(context.Background(), rec)
	}
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr{}, r.attrs...), as...)
	return &c
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// count returns how many records have message msg.
func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range *r.recs {
		if rec.Message == msg {
			n++
		}
	}
	return n
}

// TestWatchEndsLogsFailure: a ListOffsets that fails while the collector
// runs (no broker at the address) is logged at debug, and no lag is
// published from it.
func TestWatchEndsLogsFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := newLogRecorder(t, slog.LevelDebug)
	o := Options{Brokers: []string{dead}, Topic: topic}
	c := &collector{o: o, m: m, log: slog.New(rec), lagEvery: 50 * time.Millisecond, admin: adminClient(o, nil, nil)}
	ps := &partState{}
	ps.hwm.Store(-1)
	ps.committed.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.watchEnds(ctx, map[int]*partState{0: ps}) }()
	defer func() { cancel(); <-done }()
	const msg = "collect: list offsets for the lag gauges"
	if !waitFor(20*time.Second, func() bool { return rec.count(msg) >= 2 }) {
		t.Fatalf("%d %q lines while ListOffsets failed, want 2 or more", rec.count(msg), msg)
	}
	if got := ps.hwm.Load(); got != -1 {
		t.Fatalf("log end %d from a failed ListOffsets, want -1 (unknown)", got)
	}
	if n := countSeries(m.partLag); n != 0 {
		t.Fatalf("%d lag series from a failed ListOffsets, want none", n)
	}
}
