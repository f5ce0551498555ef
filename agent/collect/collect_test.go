package collect

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fileward/fileward/sinks/elasticsearch"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

const (
	topic = "fileward-events"
	ds    = elasticsearch.DefaultDataStream
)

func newCluster(t testing.TB, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func docFor(id string, i int) []byte {
	return fmt.Appendf(nil, `{"@timestamp":"2026-11-26T02:00:00.%09dZ","event":{"kind":"event","category":["file"],"type":["access"],"action":"open","id":%q,"sequence":%d,"module":"fileward","dataset":"fileward.file"},"file":{"path":"/var/lib/app/data-%d.db","name":"data-%d.db"},"process":{"pid":%d,"executable":"/usr/bin/app"},"host":{"id":"host-%d","name":"web-%d"},"ecs":{"version":"8.11.0"}}`,
		i%1e9, id, i, i, i, 1000+i%5000, i%4, i%4)
}

// produce writes events from..from+n-1 with kafka-go's Writer, the way the
// Kafka sink does: key host.id, header event.id.
func produce(t testing.TB, brokers []string, from, n int, extra ...kafka.Message) []string {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 1000, BatchBytes: 4 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ids := make([]string, 0, n)
	msgs := make([]kafka.Message, 0, n+len(extra))
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("ev-%06d", i)
		ids = append(ids, id)
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "host-%d", i%4), Value: docFor(id, i),
			Headers: []kafka.Header{{Key: "event.id", Value: []byte(id)}, {Key: "ecs.version", Value: []byte("8.11.0")}}})
	}
	msgs = append(msgs, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		k := min(len(msgs), 2000)
		if err := w.WriteMessages(ctx, msgs[:k]...); err != nil {
			t.Fatalf("produce: %v", err)
		}
		msgs = msgs[k:]
	}
	return ids
}

type harness struct {
	t       *testing.T
	cluster *kfake.Cluster
	bulk    *bulktest.Server
	dlPath  string
	// logs records what the collector logs at Info and above.
	logs *logRecorder
	// streams are the data streams the sink may route documents to.
	streams []string
}

func newHarness(t *testing.T, partitions int32) *harness {
	bulk := bulktest.New(3)
	t.Cleanup(bulk.Close)
	return &harness{t: t, cluster: newCluster(t, partitions), bulk: bulk, dlPath: filepath.Join(t.TempDir(), "dl", "collector.ndjson"),
		logs: newLogRecorder(t, slog.LevelInfo)}
}

// start runs a collector until the returned stop is called; stop waits for
// Run to return and fails the test on an error.
func (h *harness) start(reg prometheus.Registerer) (stop func()) {
	h.t.Helper()
	sink, err := elasticsearch.New(context.Background(), elasticsearch.Options{Addresses: []string{h.bulk.URL}, SetupTemplate: true, Streams: h.streams})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Brokers: h.cluster.ListenAddrs(), Topic: topic, GroupID: "fileward-collector",
			Sink: sink, BatchEvents: 500, BatchWait: 50 * time.Millisecond,
			Backoff:        Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.2},
			DeadLetterPath: h.dlPath, SessionTimeout: 6 * time.Second,
			Logger: slog.New(h.logs), Registerer: reg,
		})
	}()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			h.t.Fatal("Run did not return after cancel")
		}
		_ = sink.Close(context.Background())
	}
}

func (h *harness) waitCount(n int, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if h.bulk.Count(ds) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("index holds %d documents after %v, want %d", h.bulk.Count(ds), within, n)
}

func (h *harness) expectExactly(ids []string) {
	h.t.Helper()
	got := h.bulk.IDs(ds)
	if len(got) != len(ids) {
		h.t.Fatalf("index holds %d ids, want %d", len(got), len(ids))
	}
	for _, id := range ids {
		if got[id] != 1 {
			h.t.Fatalf("id %s indexed %d times", id, got[id])
		}
	}
}

// committed returns the group's committed offsets for the topic's
// partitions (-1 when none).
func (h *harness) committed(partitions int) map[int]int64 {
	h.t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(h.cluster.ListenAddrs()...), Timeout: 5 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: "fileward-collector", Topics: map[string][]int{topic: ps}})
	if err != nil {
		h.t.Fatalf("offset fetch: %v", err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func TestDeliversExactlyOnce(t *testing.T) {
	h := newHarness(t, 3)
	reg := prometheus.NewRegistry()
	ids := produce(t, h.cluster.ListenAddrs(), 0, 3000)
	stop := h.start(reg)
	h.waitCount(len(ids), 30*time.Second)
	// Wait for the final commit, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sum int64
		for _, off := range h.committed(3) {
			sum += max(off, 0)
		}
		if sum == int64(len(ids)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets sum to %d, want %d", sum, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	h.expectExactly(ids)
	// A clean run: every partition reader closed without error, and no
	// commit made good after failures, since none failed.
	if n := h.logs.count("collect: close partition reader"); n != 0 {
		t.Fatalf("%d partition readers failed to close in a clean run", n)
	}
	if n, failed := h.logs.count("collect: offsets committed after earlier failures"), h.logs.count("collect: commit offsets failed; the batches may be re-delivered"); n > failed {
		t.Fatalf("%d commits logged as made good after earlier failures, but %d failed", n, failed)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() != nil {
				found[mf.GetName()] += m.GetCounter().GetValue()
			} else if m.GetGauge() != nil {
				found[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	if found["fileward_collector_events_acked_total"] != float64(len(ids)) {
		t.Fatalf("acked metric %v, want %d", found["fileward_collector_events_acked_total"], len(ids))
	}
	if _, ok := found["fileward_collector_lag_messages"]; !ok {
		t.Fatal("no fileward_collector_lag_messages gauge")
	}
}

func TestMalformedAndRejectedAreDeadLettered(t *testing.T) {
	h := newHarness(t, 1)
	h.bulk.SetPoison(func(d []byte) string {
		if strings.Contains(string(d), `"poison"`) {
			return "failed to parse field [file.size] of type [long]"
		}
		return ""
	})
	bad := []kafka.Message{
		{Value: []byte("this is not json")},
		{Value: []byte(`{"@timestamp":"2026-01-01T00:00:00Z","message":"no id anywhere"}`)},
		{Value: []byte(`{"@timestamp":"2026-01-01T00:00:00Z","event":{"id":"from-doc"}}`)}, // id from the document: fine
		{Value: []byte(`{"@timestamp":"2026-01-01T00:00:00Z","file":{"size":"poison"}}`),
			Headers: []kafka.Header{{Key: "event.id", Value: []byte("poisoned")}}},
	}
	ids := produce(t, h.cluster.ListenAddrs(), 0, 200, bad...)
	more := produce(t, h.cluster.ListenAddrs(), 200, 100) // after the bad ones: the collector kept going
	stop := h.start(nil)
	h.waitCount(len(ids)+len(more)+1, 30*time.Second)
	waitCommitted(t, h, 0, int64(len(ids)+len(bad)+len(more)))
	stop()
	if _, ok := h.bulk.Doc(ds, "from-doc"); !ok {
		t.Fatal("event whose id came from the document was not indexed")
	}
	recs := readDeadLetter(t, h.dlPath)
	if len(recs) != 3 {
		t.Fatalf("dead-letter has %d records, want 3: %+v", len(recs), recs)
	}
	reasons := map[string]int{}
	for _, r := range recs {
		reasons[r.Reason]++
	}
	if reasons["malformed"] != 2 || reasons["rejected"] != 1 {
		t.Fatalf("reasons %v", reasons)
	}
	for _, r := range recs {
		if r.Reason == "rejected" && (r.EventID != "poisoned" || !strings.Contains(r.Error, "mapper_parsing_exception")) {
			t.Fatalf("rejected record %+v lacks the id or the error text", r)
		}
		// The Kafka coordinates of the message: the 200 good ones, then
		// the bad ones in order, on the one partition.
		want := map[string][]int64{"malformed": {200, 201}, "rejected": {203}}[r.Reason]
		if r.Topic != topic || r.Partition != 0 || (r.Offset != want[0] && r.Offset != want[len(want)-1]) {
			t.Fatalf("%s record at %s/%d/%d, want %s/0 at offset %v", r.Reason, r.Topic, r.Partition, r.Offset, topic, want)
		}
		if r.Raw == "" && r.Doc == nil {
			t.Fatalf("record %+v lacks the original message", r)
		}
		// A JSON value is kept as the document, anything else as text.
		wantRaw, wantDoc := "", string(bad[r.Offset-200].Value)
		if r.Offset == 200 {
			wantRaw, wantDoc = string(bad[0].Value), ""
		}
		if r.Raw != wantRaw || string(r.Doc) != wantDoc {
			t.Fatalf("record at offset %d keeps raw %q and doc %s, want raw %q and doc %s", r.Offset, r.Raw, r.Doc, wantRaw, wantDoc)
		}
	}
	// Restarting does not dead-letter them again: their offsets were committed.
	stop = h.start(nil)
	time.Sleep(500 * time.Millisecond)
	stop()
	if n := len(readDeadLetter(t, h.dlPath)); n != 3 {
		t.Fatalf("after restart the dead-letter file has %d records", n)
	}
}

func TestNoCommitBeforeAck(t *testing.T) {
	h := newHarness(t, 1)
	h.bulk.SetItemFaults(0, 1) // every item 503
	ids := produce(t, h.cluster.ListenAddrs(), 0, 1000)
	stop := h.start(nil)
	// Let it fail for a while: retries, but nothing may be committed.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if off := h.committed(1)[0]; off > 0 {
			t.Fatalf("offset %d committed while Elasticsearch refused everything", off)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if total, _ := h.bulk.BulkRequests(); total < 3 {
		t.Fatalf("only %d bulk attempts: the collector is not retrying", total)
	}
	stop() // "crash" with nothing acknowledged
	if h.bulk.Count(ds) != 0 {
		t.Fatal("documents indexed despite 100% item failure")
	}
	// Elasticsearch recovers partly (30% 429, 10% 503); a new collector
	// picks up from the last commit: nothing lost, nothing twice.
	h.bulk.SetItemFaults(0.3, 0.1)
	stop = h.start(nil)
	h.waitCount(len(ids), 30*time.Second)
	waitCommitted(t, h, 0, int64(len(ids)))
	stop()
	h.expectExactly(ids)
}

func waitCommitted(t *testing.T, h *harness, partition int, want int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.committed(partition + 1)[partition] == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("partition %d committed offset %d, want %d", partition, h.committed(partition + 1)[partition], want)
}

func readDeadLetter(t *testing.T, path string) []dlRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dlRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r dlRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestToEvent(t *testing.T) {
	for _, tc := range []struct {
		name, val, hdr, want string
		ok                   bool
	}{
		{"header", `{"a":1}`, "h1", "h1", true},
		{"doc nested", `{"event":{"id":"d1"}}`, "", "d1", true},
		{"doc dotted", `{"event.id":"d2"}`, "", "d2", true},
		{"header wins", `{"event":{"id":"d3"}}`, "h3", "h3", true},
		{"no id", `{"event":{}}`, "", "", false},
		{"not json", `nope`, "x", "", false},
		{"array", `[1]`, "x", "", false},
		{"truncated", `{"a":`, "x", "", false},
		{"pretty", "{\n \"event\": {\"id\": \"p\"}\n}", "", "p", true},
	} {
		m := kafka.Message{Value: []byte(tc.val), Key: []byte("k")}
		if tc.hdr != "" {
			m.Headers = []kafka.Header{{Key: "event.id", Value: []byte(tc.hdr)}}
		}
		ev, err := toEvent(&m)
		if (err == nil) != tc.ok || ev.ID != tc.want {
			t.Errorf("%s: %+v %v", tc.name, ev, err)
		}
		if err == nil && strings.ContainsRune(string(ev.Doc), '\n') {
			t.Errorf("%s: doc keeps a newline", tc.name)
		}
	}
}

func FuzzToEvent(f *testing.F) {
	f.Add([]byte(`{"event":{"id":"x"}}`), "")
	f.Add([]byte("{\n}"), "h")
	f.Add([]byte(`not json`), "")
	f.Fuzz(func(t *testing.T, val []byte, hdr string) {
		m := kafka.Message{Value: val}
		if hdr != "" {
			m.Headers = []kafka.Header{{Key: "event.id", Value: []byte(hdr)}}
		}
		ev, err := toEvent(&m)
		if err != nil {
			return
		}
		if ev.ID == "" || !json.Valid(ev.Doc) || strings.ContainsRune(string(ev.Doc), '\n') {
			t.Fatalf("accepted %q as %+v", val, ev)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// labelled gathers metric name from reg as partition label -> value.
func labelled(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var p, tp string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "partition":
					p = l.GetValue()
				case "topic":
					tp = l.GetValue()
				}
			}
			if tp != topic {
				t.Fatalf("%s has topic label %q", name, tp)
			}
			out[p] = m.GetGauge().GetValue()
		}
	}
	return out
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestPartitionMetrics: two collectors in one group split a 4-partition
// topic; each one's registry names its own partitions (disjoint, covering
// the topic) and their lag: while Elasticsearch refuses every item, the
// lags add up to every message produced; once it accepts, they fall to 0.
// When one member leaves, the other owns all four and the leaver shows
// none.
func TestPartitionMetrics(t *testing.T) {
	h := newHarness(t, 4)
	h.bulk.SetItemFaults(0, 1) // every item 503: nothing commits
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	stopA := h.start(regA)
	stopB := h.start(regB)
	defer stopB()
	const assigned = "fileward_collector_partition_assigned"
	const lag = "fileward_collector_partition_lag_messages"
	split := func() bool {
		a, b := labelled(t, regA, assigned), labelled(t, regB, assigned)
		if len(a) == 0 || len(b) == 0 || len(a)+len(b) != 4 {
			return false
		}
		for p := range a {
			if _, dup := b[p]; dup {
				t.Fatalf("partition %s assigned to both collectors", p)
			}
		}
		return gaugeValue(t, regA, "fileward_collector_assigned_partitions") == float64(len(a)) &&
			gaugeValue(t, regB, "fileward_collector_assigned_partitions") == float64(len(b))
	}
	if !waitFor(30*time.Second, split) {
		t.Fatalf("partitions not split: a %v, b %v", labelled(t, regA, assigned), labelled(t, regB, assigned))
	}
	// 40 hosts: every partition gets some.
	w := &kafka.Writer{Addr: kafka.TCP(h.cluster.ListenAddrs()...), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond}
	msgs := make([]kafka.Message, 2000)
	for i := range msgs {
		id := fmt.Sprintf("pm-%d", i)
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "host-%d", i%40), Value: docFor(id, i),
			Headers: []kafka.Header{{Key: "event.id", Value: []byte(id)}}}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	sumLag := func() (float64, int) {
		var s float64
		n := 0
		for _, reg := range []*prometheus.Registry{regA, regB} {
			for _, v := range labelled(t, reg, lag) {
				s += v
				n++
			}
		}
		return s, n
	}
	if !waitFor(30*time.Second, func() bool { s, n := sumLag(); return s == 2000 && n == 4 }) {
		s, n := sumLag()
		t.Fatalf("lag over %d partitions adds up to %v while nothing is acknowledged, want 2000 over 4", n, s)
	}
	if got := gaugeValue(t, regA, "fileward_collector_lag_messages") + gaugeValue(t, regB, "fileward_collector_lag_messages"); got != 2000 {
		t.Fatalf("total lag gauges add up to %v, want 2000", got)
	}
	h.bulk.SetItemFaults(0, 0)
	h.waitCount(2000, 30*time.Second)
	if !waitFor(30*time.Second, func() bool { s, n := sumLag(); return s == 0 && n == 4 }) {
		s, n := sumLag()
		t.Fatalf("lag %v over %d partitions after everything was acknowledged, want 0 over 4", s, n)
	}
	stopA()
	if got := labelled(t, regA, assigned); len(got) != 0 || gaugeValue(t, regA, "fileward_collector_assigned_partitions") != 0 {
		t.Fatalf("stopped collector still shows partitions %v", got)
	}
	if !waitFor(40*time.Second, func() bool { return len(labelled(t, regB, assigned)) == 4 }) {
		t.Fatalf("the remaining collector owns %v, want all 4", labelled(t, regB, assigned))
	}
}

// TestBulkRequestsInFlight: the collector's Elasticsearch writes go through
// agent/deliver's window, so with Workers 3 and a slow cluster several bulk
// requests are in flight at once, and a cluster answering 429 to every
// request slows the collector without losing or duplicating anything.
func TestBulkRequestsInFlight(t *testing.T) {
	h := newHarness(t, 3)
	target, err := url.Parse(h.bulk.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var inFlight, peak atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(50 * time.Millisecond)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()
	sink, err := elasticsearch.New(context.Background(), elasticsearch.Options{Addresses: []string{slow.URL}, SetupTemplate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	h.bulk.FailNext(429, 429, 429, 429) // the first requests are throttled
	ids := produce(t, h.cluster.ListenAddrs(), 0, 6000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Brokers: h.cluster.ListenAddrs(), Topic: topic, GroupID: "fileward-collector",
			Sink: sink, BatchEvents: 200, BatchWait: 20 * time.Millisecond, Workers: 3,
			Backoff:        Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.2},
			DeadLetterPath: h.dlPath, SessionTimeout: 6 * time.Second})
	}()
	h.waitCount(len(ids), 60*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var sum int64
		for _, off := range h.committed(3) {
			sum += max(off, 0)
		}
		if sum == int64(len(ids)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets sum to %d, want %d", sum, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.expectExactly(ids)
	if p := peak.Load(); p < 2 {
		t.Fatalf("at most %d bulk request in flight, want several (Workers 3)", p)
	}
	t.Logf("peak bulk requests in flight: %d", peak.Load())
}
