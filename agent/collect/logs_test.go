package collect

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
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

// TestEmptyPartitionCommittedAtZero: a partition that holds nothing, whose
// group offset is 0 (committed by another tool, say a reset to the
// earliest offset), shows a lag of 0 once its log end is read: the log end
// starts unknown, not at some guess the broker's answer of 0 cannot lower.
func TestEmptyPartitionCommittedAtZero(t *testing.T) {
	h := newHarness(t, 1)
	cl := &kafka.Client{Addr: kafka.TCP(h.cluster.ListenAddrs()...), Timeout: 10 * time.Second}
	res, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "fileward-collector", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 0}}}})
	if err != nil {
		t.Fatalf("commit offset 0: %v", err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("commit offset 0: %v", p.Error)
		}
	}
	if got := h.committed(1)[0]; got != 0 {
		t.Fatalf("group offset %d before the collector starts, want 0", got)
	}
	reg := prometheus.NewRegistry()
	stop := h.start(reg)
	defer stop()
	const lag = "fileward_collector_partition_lag_messages"
	if !waitFor(30*time.Second, func() bool { v, ok := labelled(t, reg, lag)["0"]; return ok && v == 0 }) {
		t.Fatalf("partition lag %v for an empty partition committed at 0, want 0", labelled(t, reg, lag))
	}
	if got := gaugeValue(t, reg, "fileward_collector_lag_messages"); got != 0 {
		t.Fatalf("lag %v, want 0", got)
	}
}
