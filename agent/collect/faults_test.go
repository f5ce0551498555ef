//go:build !mutation

package collect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// logHas reports whether the member's log holds s.
func (m *member) logHas(s string) bool {
	b, _ := os.ReadFile(m.logPath)
	return strings.Contains(string(b), s)
}

// noStackTrace fails the test when the member's log shows a Go stack trace.
func (m *member) noStackTrace(t *testing.T) {
	t.Helper()
	b, _ := os.ReadFile(m.logPath)
	if strings.Contains(string(b), "goroutine ") || strings.Contains(string(b), "panic:") {
		t.Fatalf("%s: the log shows a stack trace:\n%s", m.name, b)
	}
}

func (m *member) noDeadLetters(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, m.name, "dead-letter.ndjson")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		t.Fatalf("%s: unexpected dead-letter records:\n%.1000s", m.name, b)
	}
}

// TestFetchErrorsProcess: the broker fails every Fetch of the topic mid-run
// (KAFKA_STORAGE_ERROR: its log directory is offline). The real collector
// keeps running, says so in its log (the fetch error, per partition),
// indexes nothing it did not fetch, and once the broker serves again
// delivers everything produced meanwhile; every event is indexed exactly
// once and SIGTERM exits 0.
func TestFetchErrorsProcess(t *testing.T) {
	bin := buildFileward(t)
	h := newHarness(t, 3)
	brokers := h.cluster.ListenAddrs()
	dir := t.TempDir()
	ids := produce(t, brokers, 0, 2000)
	m := startMember(t, bin, dir, "fetch", brokers[0], h.bulk.URL)
	defer func() {
		m.kill()
		if t.Failed() {
			m.dumpLog(t)
		}
	}()
	h.waitCount(len(ids), 60*time.Second)

	fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: topic, Err: kerr.KafkaStorageError, Count: -1})
	ids = append(ids, produce(t, brokers, 2000, 2000)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 5); err != nil {
		fault.Remove()
		t.Fatalf("the collector sent no Fetch while the fault stood: %v", err)
	}
	if !waitFor(30*time.Second, func() bool { return m.logHas(`"msg":"collect: fetch"`) && m.logHas("[56] Kafka Storage Error") }) {
		fault.Remove()
		t.Fatal("no fetch error in the collector's log while every Fetch failed")
	}
	if n := h.bulk.Count(ds); n != 2000 {
		fault.Remove()
		t.Fatalf("%d documents indexed while no Fetch succeeded, want the 2000 of before", n)
	}
	select {
	case err := <-m.exited:
		fault.Remove()
		t.Fatalf("the collector exited on fetch errors: %v", err)
	default:
	}
	fault.Remove()
	h.waitCount(len(ids), 60*time.Second)
	if err := m.stop(20 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	m.noStackTrace(t)
	m.noDeadLetters(t, dir)
	h.expectExactly(ids)
}

// TestCommitRefusedProcess: the coordinator refuses every OffsetCommit
// (COORDINATOR_NOT_AVAILABLE). The real collector still delivers, logs that
// the commit failed and the batches may be re-delivered, commits nothing,
// and exits 0 on SIGTERM. Restarted once commits are accepted again, it
// delivers every message again from the group's (empty) offsets:
// Elasticsearch answers 409 for each id it has, the index holds every event
// exactly once, and the group's committed offsets reach the partitions'
// ends.
func TestCommitRefusedProcess(t *testing.T) {
	bin := buildFileward(t)
	h := newHarness(t, 3)
	brokers := h.cluster.ListenAddrs()
	dir := t.TempDir()
	ids := produce(t, brokers, 0, 3000)

	fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: "fileward-collector", Err: kerr.CoordinatorNotAvailable, Count: -1})
	defer fault.Remove()
	m := startMember(t, bin, dir, "first", brokers[0], h.bulk.URL)
	defer func() {
		m.kill()
		if t.Failed() {
			m.dumpLog(t)
		}
	}()
	h.waitCount(len(ids), 60*time.Second)
	if !waitFor(30*time.Second, func() bool { return m.logHas("commit offsets failed; the batches may be re-delivered") }) {
		t.Fatal("no word of the refused commit in the collector's log")
	}
	if !m.logHas("[15] Group Coordinator Not Available") {
		t.Fatal("the log does not say why the commit failed")
	}
	if fault.Hits() == 0 {
		t.Fatal("the fault saw no OffsetCommit")
	}
	for p, off := range h.committed(3) {
		if off >= 0 {
			t.Fatalf("partition %d: offset %d committed while the coordinator refused every commit", p, off)
		}
	}
	if got := m.gauge(t, "fileward_collector_batches_committed_total"); got != 0 {
		t.Fatalf("batches_committed_total %v with every commit refused", got)
	}
	if err := m.stop(20 * time.Second); err != nil {
		t.Fatalf("after SIGTERM with commits refused: %v", err)
	}
	m.noStackTrace(t)

	// Commits accepted again: the restarted collector re-delivers all.
	fault.Remove()
	again := startMember(t, bin, dir, "second", brokers[0], h.bulk.URL)
	defer func() {
		again.kill()
		if t.Failed() {
			again.dumpLog(t)
		}
	}()
	if !waitFor(60*time.Second, func() bool {
		var sum int64
		for _, off := range h.committed(3) {
			sum += max(off, 0)
		}
		return sum == int64(len(ids))
	}) {
		t.Fatalf("committed offsets %v after the restart, want them to sum to %d", h.committed(3), len(ids))
	}
	if got := again.gauge(t, "fileward_collector_events_acked_total"); got != float64(len(ids)) {
		t.Fatalf("the restarted collector acknowledged %v events, want all %d again (nothing was committed)", got, len(ids))
	}
	if err := again.stop(20 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	again.noStackTrace(t)
	m.noDeadLetters(t, dir)
	again.noDeadLetters(t, dir)
	h.expectExactly(ids)
}
