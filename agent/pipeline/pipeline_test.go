package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// memOutput keeps every batch the pipeline appends; refuse makes it act as a
// full spool. It stands in for agent/spool, which has its own tests.
type memOutput struct {
	mu      sync.Mutex
	batches [][]sinks.Event
	refuse  bool
	refused int
}

func (m *memOutput) Append(_ context.Context, p []byte, events int) error {
	var b sinks.Batch
	if err := sinks.DecodeBatch(p, &b); err != nil {
		return err
	}
	if len(b.Events) != events {
		return fmt.Errorf("events = %d, batch holds %d", events, len(b.Events))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse {
		m.refused += events
		return errors.New("full")
	}
	cp := make([]sinks.Event, len(b.Events))
	for i, e := range b.Events {
		cp[i] = sinks.Event{ID: e.ID, Key: e.Key, Doc: append([]byte(nil), e.Doc...)}
	}
	m.batches = append(m.batches, cp)
	return nil
}

func (m *memOutput) docs(t *testing.T) []map[string]any {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]any
	for _, b := range m.batches {
		for _, e := range b {
			var d map[string]any
			if err := json.Unmarshal(e.Doc, &d); err != nil {
				t.Fatalf("invalid JSON %s: %v", e.Doc, err)
			}
			out = append(out, d)
		}
	}
	return out
}

func field(d map[string]any, path ...string) any {
	var cur any = d
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

type rig struct {
	ring  *capture.Ring
	drops *capture.Drops
	out   *memOutput
	p     *Pipeline
}

func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	drops := &capture.Drops{}
	r := &rig{ring: capture.NewRing(16384, drops), drops: drops, out: &memOutput{}}
	o := Options{
		Ring: r.ring, Drops: drops, Output: r.out,
		Encoder:     schema.NewEncoder(schema.Meta{HostID: "host-1", HostName: "h", OSType: "linux", AgentID: "a", AgentVersion: "test"}),
		BatchEvents: 100, BatchBytes: 1 << 20, BatchWait: 50 * time.Millisecond, Tick: 5 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return r
}

// run runs the pipeline until every pushed event is handled, then stops it
// (which drains and flushes).
func (r *rig) run(t *testing.T, during func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.p.Run(ctx) }()
	if during != nil {
		during()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func fileEvent(seq uint64, pid int32, action schema.Action, path string) capture.Event {
	return capture.Event{
		TimeNS: 1700000000000000000 + int64(seq), CreatedNS: 1700000000000000000 + int64(seq),
		Action: action, Provider: schema.ProviderFanotify, Seq: seq, Path: path,
		Process: schema.Process{PID: pid, Executable: "/usr/bin/cat"},
	}
}

func TestFilterRules(t *testing.T) {
	f := newFilter(Rules{
		ExcludePaths:       []string{"/proc/", "/etc/hosts"},
		ExcludeExecutables: []string{"/usr/bin/noisy", "/opt/scanner/"},
		ExcludeSigningIDs:  []string{"com.apple.mds"},
		MutePIDs:           []int32{42},
		MutePaths:          []string{"/var/lib/fileward"},
	})
	inc := newFilter(Rules{IncludePaths: []string{"/home/"}})
	cases := []struct {
		name string
		f    *filter
		ev   schema.Event
		keep bool
	}{
		{"plain", f, schema.Event{Path: "/etc/passwd"}, true},
		{"excluded prefix", f, schema.Event{Path: "/proc/1/stat"}, false},
		{"prefix needs the slash", f, schema.Event{Path: "/procfoo"}, true},
		{"excluded exact", f, schema.Event{Path: "/etc/hosts"}, false},
		{"exact is not a prefix", f, schema.Event{Path: "/etc/hosts.allow"}, true},
		{"excluded executable", f, schema.Event{Path: "/a", Process: schema.Process{Executable: "/usr/bin/noisy"}}, false},
		{"excluded executable prefix", f, schema.Event{Path: "/a", Process: schema.Process{Executable: "/opt/scanner/bin/x"}}, false},
		{"signing id", f, schema.Event{Path: "/a", Process: schema.Process{SigningID: "com.apple.mds"}}, false},
		{"own pid", f, schema.Event{Path: "/a", Process: schema.Process{PID: 42}}, false},
		{"own data dir", f, schema.Event{Path: "/var/lib/fileward/spool/00001.seg"}, false},
		{"own data dir itself", f, schema.Event{Path: "/var/lib/fileward"}, false},
		{"neighbour of data dir", f, schema.Event{Path: "/var/lib/fileward2/x"}, true},
		{"rename out of excluded", f, schema.Event{Path: "/home/x", OrigPath: "/proc/x"}, true},
		{"rename within excluded", f, schema.Event{Path: "/proc/y", OrigPath: "/proc/x"}, false},
		{"include match", inc, schema.Event{Path: "/home/a/b"}, true},
		{"include miss", inc, schema.Event{Path: "/etc/a"}, false},
		{"include by old path", inc, schema.Event{Path: "/tmp/a", OrigPath: "/home/a"}, true},
	}
	for _, c := range cases {
		if got := c.f.keep(&c.ev); got != c.keep {
			t.Errorf("%s: keep(%q) = %v, want %v", c.name, c.ev.Path, got, c.keep)
		}
	}
}

func TestAggregationFoldsRepeats(t *testing.T) {
	r := newRig(t, func(o *Options) { o.AggregateWindow = time.Hour; o.BatchEvents = 2048 })
	for i := 0; i < 10000; i++ {
		ev := fileEvent(uint64(i), 7, schema.ActionOpen, "/etc/ld.so.cache")
		ev.Access = schema.AccessRead
		if !r.ring.TryPush(&ev) {
			t.Fatal("ring full")
		}
	}
	other := fileEvent(20000, 8, schema.ActionOpen, "/etc/ld.so.cache") // another process
	r.ring.TryPush(&other)
	r.run(t, nil)
	docs := r.out.docs(t)
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2", len(docs))
	}
	if c := field(docs[0], "fileward", "count"); c != float64(10000) {
		t.Errorf("fileward.count = %v, want 10000", c)
	}
	if c := field(docs[1], "fileward", "count"); c != nil {
		t.Errorf("single event has fileward.count %v", c)
	}
	if pid := field(docs[1], "process", "pid"); pid != float64(8) {
		t.Errorf("second doc pid = %v", pid)
	}
}

// TestSourceAggregatedNotHeld: actions the source already aggregates (eBPF's
// kernel counts) pass through the window without being folded or held,
// each with its own count; other actions still fold.
func TestSourceAggregatedNotHeld(t *testing.T) {
	r := newRig(t, func(o *Options) {
		o.AggregateWindow = time.Hour
		o.BatchEvents = 2048
		o.SourceAggregated = []schema.Action{schema.ActionOpen, schema.ActionClose}
	})
	for i := 0; i < 3; i++ {
		ev := fileEvent(uint64(i), 7, schema.ActionOpen, "/etc/hosts")
		ev.Count = uint32(10 * (i + 1)) // the kernel's counts: 10, 20, 30
		if !r.ring.TryPush(&ev) {
			t.Fatal("ring full")
		}
	}
	for i := 0; i < 5; i++ {
		ev := fileEvent(uint64(100+i), 7, schema.ActionCreation, "/tmp/x")
		if !r.ring.TryPush(&ev) {
			t.Fatal("ring full")
		}
	}
	r.run(t, nil)
	docs := r.out.docs(t)
	var opens []any
	var creations []any
	for _, d := range docs {
		switch field(d, "event", "action") {
		case "open":
			opens = append(opens, field(d, "fileward", "count"))
		case "creation":
			creations = append(creations, field(d, "fileward", "count"))
		}
	}
	if fmt.Sprint(opens) != "[10 20 30]" {
		t.Errorf("open documents' counts %v, want [10 20 30] (not folded)", opens)
	}
	if fmt.Sprint(creations) != "[5]" {
		t.Errorf("creation documents' counts %v, want [5] (folded)", creations)
	}
}

func TestAggregationWindowExpiresInOrder(t *testing.T) {
	clock := time.Unix(1000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	r := newRig(t, func(o *Options) { o.AggregateWindow = time.Second; o.Now = now; o.BatchWait = time.Millisecond })
	r.run(t, func() {
		for i := 0; i < 3; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionModification, "/a")
			r.ring.TryPush(&ev)
		}
		ev := fileEvent(3, 1, schema.ActionDeletion, "/b")
		r.ring.TryPush(&ev)
		waitFor(t, func() bool { return r.ring.Len() == 0 })
		time.Sleep(20 * time.Millisecond)
		if n := len(r.out.docs(t)); n != 0 {
			t.Errorf("%d documents left before the window closed", n)
		}
		advance(1100 * time.Millisecond)
		// The batch wait runs on the same clock: nudge it until the batch goes out.
		waitFor(t, func() bool { advance(time.Millisecond); return len(r.out.docs(t)) == 2 })
		// After the window the same key starts a new event.
		ev = fileEvent(4, 1, schema.ActionModification, "/a")
		r.ring.TryPush(&ev)
		waitFor(t, func() bool { return r.ring.Len() == 0 })
	})
	docs := r.out.docs(t)
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3", len(docs))
	}
	if field(docs[0], "file", "path") != "/a" || field(docs[0], "fileward", "count") != float64(3) {
		t.Errorf("first = %v count %v", field(docs[0], "file", "path"), field(docs[0], "fileward", "count"))
	}
	if field(docs[1], "file", "path") != "/b" || field(docs[2], "file", "path") != "/a" {
		t.Errorf("order: %v %v", field(docs[1], "file", "path"), field(docs[2], "file", "path"))
	}
}

func TestAggregationBoundEmitsOldestEarly(t *testing.T) {
	r := newRig(t, func(o *Options) {
		o.AggregateWindow = time.Hour
		o.AggregateMax = 10
		o.BatchEvents = 5
		o.BatchWait = time.Hour
	})
	r.run(t, func() {
		for i := 0; i < 25; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d", i))
			r.ring.TryPush(&ev)
		}
		// With the window an hour away, only the bound can push events out:
		// 15 of the 25, in three full batches.
		waitFor(t, func() bool { return batches(r.out) == 3 })
	})
	if n := r.p.agg.len(); n != 0 {
		t.Errorf("aggregator holds %d keys after the drain", n)
	}
	docs := r.out.docs(t)
	if len(docs) != 25 {
		t.Fatalf("got %d documents, want 25", len(docs))
	}
	for i, d := range docs {
		if want := fmt.Sprintf("/f%d", i); field(d, "file", "path") != want {
			t.Fatalf("doc %d path %v, want %s", i, field(d, "file", "path"), want)
		}
	}
}

func TestBatchingByEventsBytesAndTime(t *testing.T) {
	t.Run("events", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.BatchEvents = 10; o.BatchWait = time.Hour })
		for i := 0; i < 35; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d", i))
			r.ring.TryPush(&ev)
		}
		r.run(t, func() { waitFor(t, func() bool { return batches(r.out) == 3 }) })
		sizes := batchSizes(r.out)
		if fmt.Sprint(sizes) != "[10 10 10 5]" {
			t.Errorf("batch sizes %v", sizes)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.BatchBytes = 4096; o.BatchWait = time.Hour })
		for i := 0; i < 50; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d", i))
			r.ring.TryPush(&ev)
		}
		r.run(t, nil)
		r.out.mu.Lock()
		defer r.out.mu.Unlock()
		total := 0
		for _, b := range r.out.batches {
			total += len(b)
			if enc := len(sinks.AppendBatch(nil, b)); enc > 4096 {
				t.Errorf("batch of %d bytes exceeds 4096", enc)
			}
		}
		if total != 50 || len(r.out.batches) < 2 {
			t.Errorf("%d events in %d batches", total, len(r.out.batches))
		}
	})
	t.Run("time", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.BatchEvents = 1000; o.BatchWait = 20 * time.Millisecond })
		r.run(t, func() {
			ev := fileEvent(1, 1, schema.ActionOpen, "/x")
			r.ring.TryPush(&ev)
			waitFor(t, func() bool { return batches(r.out) == 1 })
		})
	})
}

func TestLossEventsCarryExactCounts(t *testing.T) {
	r := newRig(t, nil)
	r.run(t, func() {
		r.drops.Add(schema.LossSeqGap, 5)
		r.drops.Add(schema.LossKernelOverflow, 2)
		waitFor(t, func() bool { return len(r.out.docs(t)) == 2 })
		r.drops.Add(schema.LossSeqGap, 3)
		waitFor(t, func() bool { return len(r.out.docs(t)) == 3 })
	})
	got := map[string]float64{}
	for _, d := range r.out.docs(t) {
		if field(d, "event", "action") != "events_lost" || field(d, "event", "kind") != "pipeline_error" {
			t.Fatalf("not a loss event: %v", d)
		}
		got[field(d, "fileward", "lost", "reason").(string)] += field(d, "fileward", "lost", "count").(float64)
	}
	if got["seq_gap"] != 8 || got["kernel_overflow"] != 2 || len(got) != 2 {
		t.Errorf("loss totals %v", got)
	}
}

func TestLossReportRetriedWhenSpoolRefuses(t *testing.T) {
	r := newRig(t, nil)
	r.out.refuse = true
	r.run(t, func() {
		r.drops.Add(schema.LossRingFull, 4)
		waitFor(t, func() bool { r.out.mu.Lock(); defer r.out.mu.Unlock(); return r.out.refused > 0 })
		r.drops.Add(schema.LossRingFull, 6)
		r.out.mu.Lock()
		r.out.refuse = false
		r.out.mu.Unlock()
		waitFor(t, func() bool { return len(r.out.docs(t)) >= 1 })
	})
	var total float64
	for _, d := range r.out.docs(t) {
		total += field(d, "fileward", "lost", "count").(float64)
	}
	if total != 10 {
		t.Errorf("delivered loss count %v, want 10", total)
	}
}

func TestHeartbeat(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Heartbeat = 10 * time.Millisecond; o.BatchWait = 5 * time.Millisecond })
	r.run(t, func() { waitFor(t, func() bool { return len(r.out.docs(t)) >= 2 }) })
	d := r.out.docs(t)[0]
	if field(d, "event", "action") != "heartbeat" || field(d, "event", "kind") != "metric" {
		t.Errorf("heartbeat doc %v", d)
	}
}

func TestDrainFlushesEverythingOnStop(t *testing.T) {
	r := newRig(t, func(o *Options) { o.AggregateWindow = time.Hour; o.BatchWait = time.Hour; o.BatchEvents = 1 << 20 })
	for i := 0; i < 5000; i++ {
		ev := fileEvent(uint64(i), int32(i), schema.ActionCreation, "/x")
		r.ring.TryPush(&ev)
	}
	r.run(t, nil)
	if n := len(r.out.docs(t)); n != 5000 {
		t.Fatalf("after stop %d documents, want 5000", n)
	}
	ids := map[string]bool{}
	for _, b := range r.out.batches {
		for _, e := range b {
			if ids[e.ID] {
				t.Fatalf("duplicate id %s", e.ID)
			}
			ids[e.ID] = true
			if e.Key != "host-1" {
				t.Fatalf("key %q", e.Key)
			}
		}
	}
}

func TestEnrichAndUnresolved(t *testing.T) {
	calls := 0
	r := newRig(t, func(o *Options) {
		o.Enrich = func(ev *schema.Event) bool {
			calls++
			if ev.Process.PID == 99 {
				return false
			}
			ev.Process.Executable = "/bin/enriched"
			return true
		}
	})
	a := capture.Event{Action: schema.ActionOpen, Path: "/a", Seq: 1, Process: schema.Process{PID: 5}}
	b := capture.Event{Action: schema.ActionOpen, Path: "/b", Seq: 2, Process: schema.Process{PID: 99}}
	r.ring.TryPush(&a)
	r.ring.TryPush(&b)
	r.run(t, nil)
	docs := r.out.docs(t)
	if len(docs) != 2 || field(docs[0], "process", "executable") != "/bin/enriched" {
		t.Fatalf("docs %v", docs)
	}
	if pid := field(docs[1], "process", "pid"); pid != float64(99) {
		t.Errorf("unresolved process lost its pid: %v", pid)
	}
	if calls != 2 {
		t.Errorf("enrich called %d times", calls)
	}
}

func batches(m *memOutput) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.batches)
}

func batchSizes(m *memOutput) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, b := range m.batches {
		out = append(out, len(b))
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestExecOutsideIncludeFeedsEnrich: an exec event the path rules drop is
// still shown to Enrich (the exec cache), before it is filtered out.
func TestExecOutsideIncludeFeedsEnrich(t *testing.T) {
	var seen []string
	r := newRig(t, func(o *Options) {
		o.Rules = Rules{IncludePaths: []string{"/tmp/"}}
		o.Enrich = func(ev *schema.Event) bool {
			seen = append(seen, ev.Action.String()+" "+ev.Path)
			return true
		}
	})
	x := capture.Event{Action: schema.ActionExec, Path: "/usr/bin/cat", Seq: 1, Process: schema.Process{PID: 7, Executable: "/usr/bin/cat"}}
	o := capture.Event{Action: schema.ActionOpen, Path: "/usr/lib/libc.so", Seq: 2, Process: schema.Process{PID: 7}}
	r.ring.TryPush(&x)
	r.ring.TryPush(&o)
	r.run(t, nil)
	if len(seen) != 1 || seen[0] != schema.ActionExec.String()+" /usr/bin/cat" {
		t.Errorf("Enrich saw %v, want only the exec", seen)
	}
	if docs := r.out.docs(t); len(docs) != 0 {
		t.Errorf("%d documents outside include_paths", len(docs))
	}
}

// TestReconfigure: rules and the aggregation window change while Run runs;
// events handled after the change follow the new rules.
func TestReconfigure(t *testing.T) {
	r := newRig(t, func(o *Options) { o.AggregateWindow = time.Hour })
	r.run(t, func() {
		a := capture.Event{Action: schema.ActionOpen, Path: "/a/1", Seq: 1, Process: schema.Process{PID: 5, Executable: "/x"}}
		r.ring.TryPush(&a)
		a.Seq = 2
		r.ring.TryPush(&a) // folds into the first under the hour-long window
		waitFor(t, func() bool { return r.ring.Len() == 0 })
		r.p.Reconfigure(Rules{ExcludePaths: []string{"/a/"}}, 0)
		// The held aggregate is emitted when the window changes.
		waitFor(t, func() bool { return batches(r.out) > 0 || len(r.out.docs(t)) > 0 })
		b := capture.Event{Action: schema.ActionOpen, Path: "/a/2", Seq: 3, Process: schema.Process{PID: 5, Executable: "/x"}}
		c := capture.Event{Action: schema.ActionOpen, Path: "/b/1", Seq: 4, Process: schema.Process{PID: 5, Executable: "/x"}}
		r.ring.TryPush(&b)
		r.ring.TryPush(&c)
	})
	docs := r.out.docs(t)
	var paths []string
	for _, d := range docs {
		paths = append(paths, field(d, "file", "path").(string))
	}
	if strings.Join(paths, ",") != "/a/1,/b/1" {
		t.Errorf("paths %v, want /a/1 (aggregated, emitted at the change) and /b/1 (/a/2 excluded by the new rules)", paths)
	}
}

// ledgerOutput is a memOutput that keeps loss reports as the spool does.
type ledgerOutput struct {
	*memOutput
	base    map[string]uint64
	reports []map[string]uint64 // counts of each AppendReport
	totals  map[string]uint64   // of the last AppendReport
}

func (l *ledgerOutput) AppendReport(ctx context.Context, p []byte, events int, counts, totals map[string]uint64) error {
	if err := l.memOutput.Append(ctx, p, events); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, counts)
	l.totals = totals
	return nil
}

func (l *ledgerOutput) LossTotals() map[string]uint64 { return l.base }

// TestLossTotalsAndReturnedCounts: loss documents carry the cumulative
// totals (earlier runs' from the ledger plus this run's), and counts handed
// back (a report dropped unread) are reported again without moving the
// totals.
func TestLossTotalsAndReturnedCounts(t *testing.T) {
	out := &ledgerOutput{memOutput: &memOutput{}, base: map[string]uint64{"spool_full": 100, "corrupt": 7}}
	returned := &capture.Drops{}
	r := newRig(t, func(o *Options) { o.Output = out; o.Returned = returned })
	r.out = out.memOutput
	r.run(t, func() {
		r.drops.Add(schema.LossSpoolFull, 5)
		waitFor(t, func() bool { return len(r.out.docs(t)) == 1 })
		returned.Add(schema.LossSpoolFull, 5) // that report was dropped unread
		waitFor(t, func() bool { return len(r.out.docs(t)) == 2 })
	})
	docs := r.out.docs(t)
	for i, d := range docs {
		if c := field(d, "fileward", "lost", "count"); c != float64(5) {
			t.Errorf("report %d count %v, want 5", i, c)
		}
		if tot := field(d, "fileward", "lost", "total", "spool_full"); tot != float64(105) {
			t.Errorf("report %d total.spool_full %v, want 105", i, tot)
		}
		if tot := field(d, "fileward", "lost", "total", "corrupt"); tot != float64(7) {
			t.Errorf("report %d total.corrupt %v, want 7", i, tot)
		}
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.reports) != 2 || out.reports[0]["spool_full"] != 5 || out.totals["spool_full"] != 105 {
		t.Errorf("ledger got reports %v, totals %v", out.reports, out.totals)
	}
}
