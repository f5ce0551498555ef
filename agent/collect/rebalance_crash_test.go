//go:build !mutation

package collect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks"
	kafkasink "github.com/fileward/fileward/sinks/kafka"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestRebalanceAndCrash is the scale-out scenario: three `fileward collect`
// processes (real children built from this tree) share a 6-partition topic
// as one consumer group while the agent's Kafka sink produces 100,000
// events. One member is SIGKILLed, another joins, a third leaves with
// SIGTERM. Throughout, a sampler compares the group's committed offsets
// (OffsetFetch through franz-go) with what bulktest has acknowledged: every
// message below a committed offset must already be indexed. At the end every
// event is indexed exactly once, the survivors' /metrics name disjoint
// partition sets covering the topic, and their per-partition lag is 0.
//
// Under -race the test process (kfake, bulktest, the producer) is far slower,
// so the run moves 20,000 events; `make test` (no -race) moves 100,000.
func TestRebalanceAndCrash(t *testing.T) {
	total := 100_000
	if raceEnabled {
		total = 20_000
	}
	bin := buildFileward(t)
	h := newHarness(t, rbPartitions)
	brokers := h.cluster.ListenAddrs()
	dir := t.TempDir()
	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0).Round(10 * time.Millisecond) }

	topicIdx := newTopicIndex(t, brokers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go topicIdx.run(ctx)

	members := map[string]*member{}
	defer func() {
		for _, m := range members {
			m.kill()
		}
		if t.Failed() {
			for _, name := range sortedKeys(members) {
				members[name].dumpLog(t)
			}
		}
	}()
	start := func(name string) *member {
		m := startMember(t, bin, dir, name, brokers[0], h.bulk.URL)
		members[name] = m
		t.Logf("%v: %s started (metrics %s)", since(), name, m.metrics)
		return m
	}

	// The agent side: the Kafka sink, keyed by host.id over 60 hosts, at
	// a steady rate so that the membership changes happen mid-flow.
	ks, err := kafkasink.New(kafkasink.Options{Brokers: brokers, Topic: topic, Compression: "snappy", BatchEvents: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close(context.Background())
	events := sinktest.Events("rb", total, 60)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		const chunk = 1000
		tick := time.NewTicker(20 * time.Second / time.Duration(total/chunk)) // over ~20s
		defer tick.Stop()
		for evs := events; len(evs) > 0; {
			k := min(len(evs), chunk)
			res, err := ks.Send(ctx, &sinks.Batch{Events: evs[:k]})
			if err != nil || len(res.Failures) > 0 {
				t.Errorf("kafka sink: %v %v", err, res.Failures)
				return
			}
			evs = evs[k:]
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()

	smp := &sampler{t: t, h: h, idx: topicIdx, brokers: brokers}
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); smp.run(ctx, 250*time.Millisecond) }()

	a, b, c := start("a"), start("b"), start("c")
	indexed := func() int { return h.bulk.Count(ds) }
	waitIndexed := func(n int, within time.Duration) {
		t.Helper()
		if !waitFor(within, func() bool { return indexed() >= n }) {
			t.Fatalf("%v: index holds %d documents, want %d", since(), indexed(), n)
		}
	}

	// 1. A member crashes: its partitions wait out the session timeout.
	waitIndexed(total*15/100, 90*time.Second)
	a.kill()
	t.Logf("%v: a SIGKILLed with %d indexed", since(), indexed())

	// 2. A member joins.
	waitIndexed(total*35/100, 90*time.Second)
	d := start("d")
	if !waitFor(60*time.Second, func() bool { return d.gauge(t, "fileward_collector_assigned_partitions") > 0 }) {
		t.Fatalf("%v: d was assigned no partition", since())
	}
	t.Logf("%v: d owns %v partitions, %d indexed", since(), d.gauge(t, "fileward_collector_assigned_partitions"), indexed())

	// 3. A member leaves cleanly.
	waitIndexed(total*55/100, 90*time.Second)
	if err := b.stop(20 * time.Second); err != nil {
		t.Fatalf("b after SIGTERM: %v", err)
	}
	t.Logf("%v: b left (SIGTERM) with %d indexed", since(), indexed())

	<-produced
	waitIndexed(total, 120*time.Second)
	t.Logf("%v: all %d indexed", since(), total)

	// The survivors commit everything: committed offset = partition end.
	var ends map[int32]int64
	if !waitFor(30*time.Second, func() bool {
		com, err := committedOffsets(ctx, brokers)
		if err != nil {
			return false
		}
		ends = topicIdx.lengths()
		for p := range int32(rbPartitions) {
			if com[p] != ends[p] {
				return false
			}
		}
		return true
	}) {
		com, _ := committedOffsets(ctx, brokers)
		t.Fatalf("committed %v, partition ends %v", com, ends)
	}
	var sum int64
	for _, n := range ends {
		sum += n
	}
	if sum < int64(total) {
		t.Fatalf("the topic holds %d messages, fewer than the %d produced", sum, total)
	}

	// /metrics of the survivors: disjoint partition sets that cover the
	// topic, and per-partition lag 0 once everything is committed.
	// The group may still be rebalancing after b left: wait for it.
	var owner map[string]string
	if !waitFor(40*time.Second, func() bool {
		owner = map[string]string{}
		for _, m := range []*member{c, d} {
			for _, p := range m.labelled(t, "fileward_collector_partition_assigned") {
				if prev, ok := owner[p]; ok {
					t.Fatalf("partition %s assigned to both %s and %s", p, prev, m.name)
				}
				owner[p] = m.name
			}
		}
		return len(owner) == rbPartitions
	}) {
		t.Fatalf("survivors' /metrics assign %v, want all %d partitions", owner, rbPartitions)
	}
	if !waitFor(15*time.Second, func() bool {
		n := 0
		for _, m := range []*member{c, d} {
			for _, v := range m.labelledValues(t, "fileward_collector_partition_lag_messages") {
				if v != 0 {
					return false
				}
				n++
			}
		}
		return n == rbPartitions
	}) {
		t.Fatalf("per-partition lag not 0 on all %d partitions: c %v, d %v", rbPartitions,
			c.labelledValues(t, "fileward_collector_partition_lag_messages"), d.labelledValues(t, "fileward_collector_partition_lag_messages"))
	}
	t.Logf("owners at the end: %v; generations joined: c %v, d %v", owner,
		c.gauge(t, "fileward_collector_rebalances_total"), d.gauge(t, "fileward_collector_rebalances_total"))

	for _, m := range []*member{c, d} {
		if err := m.stop(20 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v", m.name, err)
		}
	}

	// A last sample now that all is committed, then stop the sampler.
	smp.check(ctx)
	cancel()
	<-samplerDone
	smp.mu.Lock()
	viol, samples, verified := smp.violations, smp.samples, smp.verified
	smp.mu.Unlock()
	t.Logf("sampler: %d samples, %d offsets verified below a committed offset", samples, verified)
	if len(viol) > 0 {
		t.Fatalf("%d violations (committed offsets ahead of an acknowledged document or moving back), e.g. %v", len(viol), viol[:min(len(viol), 5)])
	}
	if verified < int64(total) {
		t.Fatalf("the sampler verified %d offsets, want all %d", verified, total)
	}
	sinktest.ExpectExactly(t, h.bulk.IDs(ds), events)
	for name := range members {
		if b, err := os.ReadFile(filepath.Join(dir, name, "dead-letter.ndjson")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			t.Fatalf("%s: unexpected dead-letter records:\n%.1000s", name, b)
		}
	}
}
