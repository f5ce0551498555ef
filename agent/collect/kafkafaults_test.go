package collect

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := counterIf(t, reg, name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return v
}

// counterIf is the counter's value, and false while it is not registered.
func counterIf(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func committedSum(h *harness, partitions int) int64 {
	var sum int64
	for _, off := range h.committed(partitions) {
		sum += max(off, 0)
	}
	return sum
}

// TestCommitFailureRetried: while the coordinator refuses every
// OffsetCommit, the collector delivers everything but commits nothing, and
// its lag stays at the whole backlog; once commits are accepted again it
// commits the offsets it could not, without any new message, and its lag
// falls to 0. Nothing is delivered twice.
func TestCommitFailureRetried(t *testing.T) {
	h := newHarness(t, 3)
	reg := prometheus.NewRegistry()
	ids := produce(t, h.cluster.ListenAddrs(), 0, 3000)
	fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: "fileward-collector", Err: kerr.CoordinatorNotAvailable, Count: -1})
	defer fault.Remove()
	stop := sync.OnceFunc(h.start(reg))
	defer stop()
	h.waitCount(len(ids), 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 3); err != nil { // the batches' commits and at least one retry
		t.Fatalf("fewer than 3 OffsetCommits refused: %v", err)
	}
	if sum := committedSum(h, 3); sum != 0 {
		t.Fatalf("offsets summing to %d committed while every commit was refused", sum)
	}
	if got := counterValue(t, reg, "fileward_collector_batches_committed_total"); got != 0 {
		t.Fatalf("batches_committed_total %v while every commit was refused", got)
	}
	if !waitFor(15*time.Second, func() bool { return gaugeValue(t, reg, "fileward_collector_lag_messages") == float64(len(ids)) }) {
		t.Fatalf("lag %v while nothing is committed, want the whole backlog %d", gaugeValue(t, reg, "fileward_collector_lag_messages"), len(ids))
	}
	// With everything delivered and nothing new to fetch, the collector
	// keeps retrying the refused commit (every 5 s, 3 attempts each).
	if !waitFor(30*time.Second, func() bool { return counterValue(t, reg, "fileward_collector_events_acked_total") == float64(len(ids)) }) {
		t.Fatal("not every event acknowledged")
	}
	hits := fault.Hits()
	if !waitFor(60*time.Second, func() bool { return fault.Hits() >= hits+6 }) {
		t.Fatalf("%d OffsetCommits refused after the last acknowledgement, want the retries to go on (6 or more)", fault.Hits()-hits)
	}
	fault.Remove()
	if !waitFor(30*time.Second, func() bool { return committedSum(h, 3) == int64(len(ids)) }) {
		t.Fatalf("committed offsets %v after commits were accepted again, want them to sum to %d", h.committed(3), len(ids))
	}
	if n := h.logs.count("collect: offsets committed after earlier failures"); n == 0 {
		t.Fatal("no \"offsets committed after earlier failures\" line once commits were accepted again")
	}
	if !waitFor(15*time.Second, func() bool { return gaugeValue(t, reg, "fileward_collector_lag_messages") == 0 }) {
		t.Fatalf("lag %v after everything was committed", gaugeValue(t, reg, "fileward_collector_lag_messages"))
	}
	if got := counterValue(t, reg, "fileward_collector_events_acked_total"); got != float64(len(ids)) {
		t.Fatalf("acked %v, want %d (nothing delivered twice)", got, len(ids))
	}
	// Once made good, nothing is left to retry: no commit while idle
	// (retries come every 5 s).
	idle := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: "fileward-collector", Observe: true, Count: -1})
	defer idle.Remove()
	time.Sleep(7 * time.Second)
	if n := idle.Hits(); n != 0 {
		t.Fatalf("%d OffsetCommits while idle after the offsets were committed", n)
	}
	stop()
	h.expectExactly(ids)
}

// TestFetchErrorRetried: while the broker fails every Fetch of the topic
// (KAFKA_STORAGE_ERROR), nothing new is delivered and the collector keeps
// trying; once Fetch is served again, the messages produced meanwhile are
// delivered, each once.
func TestFetchErrorRetried(t *testing.T) {
	h := newHarness(t, 3)
	reg := prometheus.NewRegistry()
	ids := produce(t, h.cluster.ListenAddrs(), 0, 1000)
	stop := sync.OnceFunc(h.start(reg))
	defer stop()
	h.waitCount(len(ids), 30*time.Second)
	fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: topic, Err: kerr.KafkaStorageError, Count: -1})
	defer fault.Remove()
	ids = append(ids, produce(t, h.cluster.ListenAddrs(), 1000, 1000)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 9); err != nil { // three partitions, each retried
		t.Fatalf("fewer than 9 Fetches refused: %v", err)
	}
	if n := h.bulk.Count(ds); n != 1000 {
		t.Fatalf("%d indexed while every Fetch failed, want the 1000 of before", n)
	}
	fault.Remove()
	h.waitCount(len(ids), 30*time.Second)
	stop()
	h.expectExactly(ids)
}

// TestJoinErrorRetried: the coordinator refuses the first JoinGroups
// (COORDINATOR_NOT_AVAILABLE); the collector keeps trying and, once it is
// in the group, delivers every message once.
func TestJoinErrorRetried(t *testing.T) {
	h := newHarness(t, 2)
	ids := produce(t, h.cluster.ListenAddrs(), 0, 1000)
	fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Group: "fileward-collector", Err: kerr.CoordinatorNotAvailable, Count: 2})
	defer fault.Remove()
	stop := sync.OnceFunc(h.start(prometheus.NewRegistry()))
	defer stop()
	h.waitCount(len(ids), 60*time.Second)
	if n := fault.Hits(); n != 2 {
		t.Fatalf("%d JoinGroups refused, want 2", n)
	}
	stop()
	h.expectExactly(ids)
}

// TestGiveUpCountsRedelivered: stopped while Elasticsearch refuses
// everything, the collector gives up its batches after the grace (half the
// session timeout), commits nothing, and counts every message it fetched as
// left for re-delivery; started again with Elasticsearch back, it delivers
// them, each once.
func TestGiveUpCountsRedelivered(t *testing.T) {
	h := newHarness(t, 1)
	ids := produce(t, h.cluster.ListenAddrs(), 0, 1000)
	h.bulk.SetRequestFaults(1, 0) // 429 to every bulk request
	reg := prometheus.NewRegistry()
	stop := sync.OnceFunc(h.start(reg))
	defer stop()
	if !waitFor(30*time.Second, func() bool { n, _ := h.bulk.BulkRequests(); return n >= 4 }) {
		t.Fatal("fewer than 4 bulk requests while Elasticsearch refused everything")
	}
	stop()
	if got := counterValue(t, reg, "fileward_collector_revoked_messages_redelivered_total"); got != float64(len(ids)) {
		t.Fatalf("revoked_messages_redelivered_total %v, want the %d messages in flight", got, len(ids))
	}
	if sum := committedSum(h, 1); sum != 0 {
		t.Fatalf("offsets summing to %d committed with nothing acknowledged", sum)
	}
	if n := h.bulk.Count(ds); n != 0 {
		t.Fatalf("%d indexed while every request was refused", n)
	}
	h.bulk.SetRequestFaults(0, 0)
	stop2 := sync.OnceFunc(h.start(prometheus.NewRegistry()))
	defer stop2()
	h.waitCount(len(ids), 30*time.Second)
	stop2()
	h.expectExactly(ids)
}
