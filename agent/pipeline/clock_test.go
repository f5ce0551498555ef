package pipeline

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// The tests here pin the pipeline's limits and intervals at their exact
// boundaries with a clock the test moves. A negative check ("nothing yet")
// is made after settle, which proves Run has gone through housekeeping with
// the clock as it is now: no sleeping, no timing.

// fakeClock is the pipeline's Now, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// settle returns once Run has completed at least one housekeeping pass that
// started after the call: Run applies a Reconfigure when its wait returns
// (a tick, with an empty ring) and housekeeps in the same pass; the second
// Reconfigure is applied only in a later pass. rules and window must be
// the rig's, so that nothing changes.
func settle(t *testing.T, p *Pipeline, rules Rules, window time.Duration) {
	t.Helper()
	for i := 0; i < 2; i++ {
		select {
		case <-p.Reconfigure(rules, window):
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not apply a Reconfigure within 10s")
		}
	}
}

// started runs r's pipeline until the test ends, and returns a stop
// function that drains it (idempotent).
func started(t *testing.T, r *rig) (stop func()) {
	t.Helper()
	var once sync.Once
	done := make(chan struct{})
	stopCh := make(chan struct{})
	go func() {
		defer close(done)
		r.run(t, func() { <-stopCh })
	}()
	stop = func() {
		once.Do(func() { close(stopCh) })
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func actions(docs []map[string]any, action string) []map[string]any {
	var out []map[string]any
	for _, d := range docs {
		if field(d, "event", "action") == action {
			out = append(out, d)
		}
	}
	return out
}

func TestDefaultsAtTheirLimits(t *testing.T) {
	t.Run("batch events 1 is kept", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.BatchEvents = 1; o.BatchWait = time.Hour })
		for i := 0; i < 3; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d", i))
			r.ring.TryPush(&ev)
		}
		r.run(t, func() { waitFor(t, func() bool { return batches(r.out) == 3 }) })
		if s := fmt.Sprint(batchSizes(r.out)); s != "[1 1 1]" {
			t.Errorf("batch sizes %s, want [1 1 1]", s)
		}
	})
	t.Run("batch bytes 1024 is kept", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.BatchBytes = 1024; o.BatchWait = time.Hour })
		for i := 0; i < 10; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d/%s", i, strings.Repeat("p", 40)))
			r.ring.TryPush(&ev)
		}
		r.run(t, nil)
		r.out.mu.Lock()
		defer r.out.mu.Unlock()
		for _, b := range r.out.batches {
			if n := len(sinks.AppendBatch(nil, b)); n > 1024 {
				t.Errorf("a batch of %d bytes, over 1024", n)
			}
		}
		if len(r.out.batches) < 3 {
			t.Errorf("%d batches: batch.max_bytes 1024 did not split", len(r.out.batches))
		}
	})
	t.Run("aggregate max 1 is kept", func(t *testing.T) {
		rules := Rules{}
		r := newRig(t, func(o *Options) { o.AggregateWindow = time.Hour; o.AggregateMax = 1; o.BatchEvents = 1 })
		stop := started(t, r)
		a, b := fileEvent(1, 1, schema.ActionOpen, "/a"), fileEvent(2, 1, schema.ActionOpen, "/b")
		r.ring.TryPush(&a)
		r.ring.TryPush(&b)
		settle(t, r.p, rules, time.Hour)
		// One key held at most: /b pushed /a out.
		if docs := r.out.docs(t); len(docs) != 1 || field(docs[0], "file", "path") != "/a" {
			t.Errorf("with aggregate max 1, before the window ends: %v, want /a only", docs)
		}
		stop()
	})
	t.Run("aggregate window 0 is off", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.AggregateWindow = 0; o.BatchWait = time.Hour })
		for i := 0; i < 2; i++ {
			ev := fileEvent(uint64(i), 1, schema.ActionOpen, "/same")
			r.ring.TryPush(&ev)
		}
		r.run(t, nil)
		if n := len(r.out.docs(t)); n != 2 {
			t.Errorf("%d documents for two repeats with aggregation off, want 2", n)
		}
	})
	t.Run("tick 0 is the default", func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.Tick = 0; o.BatchWait = time.Millisecond })
		r.run(t, func() {
			ev := fileEvent(1, 1, schema.ActionOpen, "/x")
			r.ring.TryPush(&ev)
			waitFor(t, func() bool { return batches(r.out) == 1 })
		})
	})
	t.Run("batch wait 0 is one second", func(t *testing.T) {
		clk := newFakeClock()
		r := newRig(t, func(o *Options) { o.BatchWait = 0; o.Now = clk.Now })
		started(t, r)
		ev := fileEvent(1, 1, schema.ActionOpen, "/x")
		r.ring.TryPush(&ev)
		settle(t, r.p, Rules{}, 0) // the batch starts now
		clk.advance(999 * time.Millisecond)
		settle(t, r.p, Rules{}, 0)
		if n := batches(r.out); n != 0 {
			t.Fatalf("%d batches 999ms after the event, want 0 (batch wait 0 means 1s)", n)
		}
		clk.advance(time.Millisecond)
		waitFor(t, func() bool { return batches(r.out) == 1 })
	})
	t.Run("metrics registered once", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		newRig(t, func(o *Options) { o.Registerer = reg })
		drops := &capture.Drops{}
		_, err := New(Options{Ring: capture.NewRing(16, drops), Drops: drops, Output: &memOutput{}, Registerer: reg,
			Encoder: schema.NewEncoder(schema.Meta{HostID: "h"})})
		if err == nil || !strings.HasPrefix(err.Error(), "pipeline: register metrics: ") {
			t.Errorf("second pipeline on one registry: %v", err)
		}
	})
	t.Run("required options", func(t *testing.T) {
		if _, err := New(Options{}); err == nil {
			t.Error("New without Ring, Drops, Encoder and Output: no error")
		}
	})
}

// TestBatchWaitFromTheFirstEvent: a batch goes out batch.max_wait after its
// first event, exactly, not after its last.
func TestBatchWaitFromTheFirstEvent(t *testing.T) {
	clk := newFakeClock()
	r := newRig(t, func(o *Options) { o.BatchWait = 50 * time.Millisecond; o.Now = clk.Now })
	started(t, r)
	a := fileEvent(1, 1, schema.ActionOpen, "/a")
	r.ring.TryPush(&a)
	settle(t, r.p, Rules{}, 0)
	clk.advance(40 * time.Millisecond)
	b := fileEvent(2, 1, schema.ActionOpen, "/b")
	r.ring.TryPush(&b)
	clk.advance(9 * time.Millisecond)
	settle(t, r.p, Rules{}, 0)
	if n := batches(r.out); n != 0 {
		t.Fatalf("%d batches 49ms after the first event, want 0", n)
	}
	clk.advance(time.Millisecond)
	waitFor(t, func() bool { return batches(r.out) == 1 })
	if s := fmt.Sprint(batchSizes(r.out)); s != "[2]" {
		t.Errorf("batch sizes %s, want [2]", s)
	}
}

// TestBatchBytesBoundary: a second event that brings the batch's estimate
// (size, document, id and 16 bytes of framing) to exactly batch.max_bytes
// joins the batch; one byte less and it starts a new one.
func TestBatchBytesBoundary(t *testing.T) {
	a := fileEvent(1, 1, schema.ActionOpen, "/a/"+strings.Repeat("x", 600))
	b := fileEvent(2, 1, schema.ActionOpen, "/b/"+strings.Repeat("y", 600))
	enc := schema.NewEncoder(schema.Meta{HostID: "host-1", HostName: "h", OSType: "linux", AgentID: "a", AgentVersion: "test"})
	var w sinks.BatchWriter
	w.Reset("host-1")
	w.Add(enc.AppendID(nil, &a), enc.Append(nil, &a))
	exact := w.Size() + len(enc.Append(nil, &b)) + len(enc.AppendID(nil, &b)) + 16
	for _, c := range []struct {
		max  int
		want string
	}{{exact, "[2]"}, {exact - 1, "[1 1]"}} {
		r := newRig(t, func(o *Options) { o.BatchBytes = c.max; o.BatchWait = time.Hour })
		a, b := a, b
		r.ring.TryPush(&a)
		r.ring.TryPush(&b)
		r.run(t, nil)
		if s := fmt.Sprint(batchSizes(r.out)); s != c.want {
			t.Errorf("batch.max_bytes %d (the estimate for both is %d): batch sizes %s, want %s", c.max, exact, s, c.want)
		}
	}
}

// TestLossReportInterval: losses are reported at most once a second: not
// 999ms after the last report, exactly at 1s. event.sequence counts the
// loss documents, one per reason that moved.
func TestLossReportInterval(t *testing.T) {
	clk := newFakeClock()
	r := newRig(t, func(o *Options) { o.Now = clk.Now; o.BatchEvents = 1 })
	started(t, r)
	settle(t, r.p, Rules{}, 0) // Run has started: its last report is now
	r.drops.Add(schema.LossSeqGap, 3)
	r.drops.Add(schema.LossCorrupt, 2)
	clk.advance(999 * time.Millisecond)
	settle(t, r.p, Rules{}, 0)
	if n := len(r.out.docs(t)); n != 0 {
		t.Fatalf("%d documents 999ms after start, want no loss report yet", n)
	}
	clk.advance(time.Millisecond)
	waitFor(t, func() bool { return len(r.out.docs(t)) == 2 })
	r.drops.Add(schema.LossSeqGap, 1)
	clk.advance(999 * time.Millisecond)
	settle(t, r.p, Rules{}, 0)
	if n := len(r.out.docs(t)); n != 2 {
		t.Fatalf("%d documents 999ms after the first report, want still 2", n)
	}
	clk.advance(time.Millisecond)
	waitFor(t, func() bool { return len(r.out.docs(t)) == 3 })
	var got []string
	for _, d := range r.out.docs(t) {
		got = append(got, fmt.Sprintf("%v:%v:%v", field(d, "event", "sequence"), field(d, "fileward", "lost", "reason"), field(d, "fileward", "lost", "count")))
	}
	if s := strings.Join(got, " "); s != "1:seq_gap:3 2:corrupt:2 3:seq_gap:1" {
		t.Errorf("loss documents %s, want 1:seq_gap:3 2:corrupt:2 3:seq_gap:1", s)
	}
}

// TestHeartbeatIntervalAndStats: a heartbeat exactly every agent.heartbeat
// (not a nanosecond before), numbered from 1, with the totals the pipeline
// knows (captured, dropped over every reason, ring depth) and what the
// Stats callback adds (spool_bytes, spooled).
func TestHeartbeatIntervalAndStats(t *testing.T) {
	clk := newFakeClock()
	var mu sync.Mutex
	var seen []schema.Heartbeat
	r := newRig(t, func(o *Options) {
		o.Now = clk.Now
		o.BatchEvents = 1
		o.Heartbeat = 10 * time.Second
		o.Stats = func(h *schema.Heartbeat) {
			mu.Lock()
			seen = append(seen, *h)
			mu.Unlock()
			h.SpoolBytes = 4242
			h.Spooled = 77
		}
	})
	for i := 0; i < 5; i++ {
		ev := fileEvent(uint64(i), 1, schema.ActionOpen, fmt.Sprintf("/f%d", i))
		r.ring.TryPush(&ev)
	}
	r.drops.Add(schema.LossRingFull, 2)
	r.drops.Add(schema.LossCorrupt, 3)
	r.drops.Add(schema.LossSpoolFull, 4)
	started(t, r)
	waitFor(t, func() bool { return len(actions(r.out.docs(t), "open")) == 5 })
	clk.advance(10*time.Second - time.Nanosecond)
	settle(t, r.p, Rules{}, 0)
	if n := len(actions(r.out.docs(t), "heartbeat")); n != 0 {
		t.Fatalf("%d heartbeats a nanosecond before the interval", n)
	}
	clk.advance(time.Nanosecond)
	waitFor(t, func() bool { return len(actions(r.out.docs(t), "heartbeat")) == 1 })
	clk.advance(10 * time.Second)
	waitFor(t, func() bool { return len(actions(r.out.docs(t), "heartbeat")) == 2 })
	hbs := actions(r.out.docs(t), "heartbeat")
	for i, d := range hbs {
		stats := func(k string) any { return field(d, "fileward", "stats", k) }
		if field(d, "event", "sequence") != float64(i+1) {
			t.Errorf("heartbeat %d: event.sequence %v, want %d", i, field(d, "event", "sequence"), i+1)
		}
		if stats("captured") != float64(5) || stats("dropped") != float64(9) || stats("ring_depth") != float64(0) {
			t.Errorf("heartbeat %d: captured %v dropped %v ring_depth %v, want 5, 9 (2+3+4), 0",
				i, stats("captured"), stats("dropped"), stats("ring_depth"))
		}
		if stats("spool_bytes") != float64(4242) || stats("spooled") != float64(77) {
			t.Errorf("heartbeat %d: spool_bytes %v spooled %v, want what Stats set (4242, 77)", i, stats("spool_bytes"), stats("spooled"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Seq != 1 || seen[0].Captured != 5 || seen[0].Dropped != 9 {
		t.Errorf("Stats saw %+v, want two heartbeats, the first seq 1 with captured 5 and dropped 9", seen)
	}
}

// TestEnrichConditions: Enrich is asked only for a process the source
// could not describe (no executable) or an exec, and only with a pid.
func TestEnrichConditions(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	r := newRig(t, func(o *Options) {
		o.Rules = Rules{IncludePaths: []string{"/keep/"}}
		o.Enrich = func(ev *schema.Event) bool {
			mu.Lock()
			asked = append(asked, ev.Path)
			mu.Unlock()
			return true
		}
	})
	evs := []capture.Event{
		{Action: schema.ActionExec, Path: "/usr/bin/pid0", Seq: 1},                                                                // dropped by include, no pid
		{Action: schema.ActionExec, Path: "/usr/bin/dropped", Seq: 2, Process: schema.Process{PID: 9}},                            // dropped, fed to the cache
		{Action: schema.ActionOpen, Path: "/keep/nopid", Seq: 3},                                                                  // no executable, no pid
		{Action: schema.ActionOpen, Path: "/keep/known", Seq: 4, Process: schema.Process{PID: 5, Executable: "/bin/known"}},       // described
		{Action: schema.ActionExec, Path: "/keep/exec", Seq: 5, Process: schema.Process{PID: 6, Executable: "/keep/exec"}},        // exec: always
		{Action: schema.ActionOpen, Path: "/keep/unknown", Seq: 6, Process: schema.Process{PID: 7}},                               // no executable
		{Action: schema.ActionModification, Path: "/keep/neg", Seq: 7, Process: schema.Process{PID: -1, Executable: ""}},          // pid < 0
		{Action: schema.ActionExec, Path: "/other/negexec", Seq: 8, Process: schema.Process{PID: -1, Executable: "/bin/negexec"}}, // dropped, pid < 0
	}
	for i := range evs {
		r.ring.TryPush(&evs[i])
	}
	r.run(t, nil)
	mu.Lock()
	defer mu.Unlock()
	if s := strings.Join(asked, ","); s != "/usr/bin/dropped,/keep/exec,/keep/unknown" {
		t.Errorf("Enrich asked for %s, want /usr/bin/dropped,/keep/exec,/keep/unknown", s)
	}
}

// TestReconfigureWindow: a reload that turns aggregation on (from 0) folds
// repeats; one that turns it off (to 0) emits what was held and folds no
// more. Housekeeping never runs here (an hour's tick), so only the
// aggregator's presence decides.
func TestReconfigureWindow(t *testing.T) {
	// A filtered event is the barrier: events are handled in order, so
	// once the filter has counted it, everything before it is handled.
	rules := Rules{ExcludePaths: []string{"/barrier"}}
	r := newRig(t, func(o *Options) { o.Tick = time.Hour; o.BatchEvents = 1; o.Rules = rules })
	stop := started(t, r)
	seq := uint64(0)
	push := func(path string) {
		seq++
		ev := fileEvent(seq, 1, schema.ActionOpen, path)
		r.ring.TryPush(&ev)
	}
	barriers := 0.0
	barrier := func() {
		push("/barrier")
		barriers++
		waitFor(t, func() bool { return counterOf(r.p.filtered) == barriers })
	}
	wait := func(ch <-chan struct{}) {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("Reconfigure not applied")
		}
	}
	on := r.p.Reconfigure(rules, time.Hour)
	push("/a") // Run applies the change before it handles /a
	wait(on)
	push("/a")
	barrier()
	off := r.p.Reconfigure(rules, 0)
	push("/b")
	wait(off)
	push("/b")
	barrier()
	stop()
	var got []string
	for _, d := range r.out.docs(t) {
		got = append(got, fmt.Sprintf("%v×%v", field(d, "file", "path"), field(d, "fileward", "count")))
	}
	if s := strings.Join(got, " "); s != "/a×2 /b×<nil> /b×<nil>" {
		t.Errorf("documents %s, want /a×2 /b×<nil> /b×<nil>", s)
	}
}

// TestRefusalLogRateLimit: the warning about refused batches is logged at
// most once a second (exactly a second later it is logged again), while
// every refusal is counted.
func TestRefusalLogRateLimit(t *testing.T) {
	clk := newFakeClock()
	var logs bytes.Buffer
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	r := newRig(t, func(o *Options) {
		o.Now = clk.Now
		o.BatchEvents = 1
		o.Registerer = reg
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	})
	r.out.refuse = true
	started(t, r)
	push := func(seq uint64) {
		ev := fileEvent(seq, 1, schema.ActionOpen, "/x")
		r.ring.TryPush(&ev)
		waitFor(t, func() bool { r.out.mu.Lock(); defer r.out.mu.Unlock(); return r.out.refused == int(seq) })
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return strings.Count(logs.String(), "spool refused a batch") }
	push(1)
	clk.advance(999 * time.Millisecond)
	push(2)
	settle(t, r.p, Rules{}, 0) // the second refusal is handled, its log written or not
	if n := count(); n != 1 {
		t.Errorf("%d warnings after two refusals 999ms apart, want 1", n)
	}
	clk.advance(time.Millisecond)
	push(3)
	waitFor(t, func() bool { return count() == 2 }) // a second warning 1s after the first
	if v := counterValue(t, reg, "fileward_pipeline_append_refused_total"); v != 3 {
		t.Errorf("fileward_pipeline_append_refused_total = %v, want 3", v)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric[0].Counter.GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestAggregatorQueueAfterPops: the aggregator's index stays right once the
// queue has slid forward (early emission by the bound, expiry): a repeat
// folds into its own event, not a neighbour, and expiry is exact at the
// window's end.
func TestAggregatorQueueAfterPops(t *testing.T) {
	var out []schema.Event
	emit := func(e *schema.Event) { out = append(out, *e) }
	ev := func(path string) *schema.Event {
		return &schema.Event{Action: schema.ActionOpen, Path: path, Process: schema.Process{PID: 1}}
	}
	a := newAggregator(10, 3)
	a.add(ev("/a"), 0, emit)
	a.add(ev("/b"), 1, emit)
	a.add(ev("/c"), 2, emit)
	a.add(ev("/d"), 3, emit) // the bound pushes /a out
	a.add(ev("/e"), 4, emit) // and /b
	if len(out) != 2 || out[0].Path != "/a" || out[1].Path != "/b" {
		t.Fatalf("emitted early %v, want /a and /b", out)
	}
	// Repeats of the held events fold into each, by position.
	for i, p := range []string{"/e", "/d", "/d", "/c", "/e", "/e"} {
		if !a.add(ev(p), int64(5+i), emit) {
			t.Fatalf("repeat %d of %s did not fold", i, p)
		}
	}
	a.expire(11, emit) // /c was first seen at 2: 2+10 > 11
	if len(out) != 2 {
		t.Fatalf("expired before the window's end: %v", out[2:])
	}
	a.expire(12, emit) // exactly at 2+10
	a.expire(14, emit) // /d (3) and /e (4)
	if a.len() != 0 {
		t.Fatalf("%d keys held after every window ended", a.len())
	}
	var got []string
	for _, e := range out[2:] {
		got = append(got, fmt.Sprintf("%s×%d", e.Path, e.Count))
	}
	if s := strings.Join(got, " "); s != "/c×2 /d×3 /e×4" {
		t.Errorf("expired %s, want /c×2 /d×3 /e×4", s)
	}
	// A new event after the pops goes to the end of the queue, and its
	// repeat folds into it.
	a.add(ev("/f"), 20, emit)
	a.add(ev("/f"), 21, emit)
	a.flush(emit)
	if last := out[len(out)-1]; last.Path != "/f" || last.Count != 2 {
		t.Errorf("last %s×%d, want /f×2", last.Path, last.Count)
	}
}

// TestAggregatorMemoryBounded: however many distinct keys pass through, the
// aggregator never holds more than max slots, and events still come out in
// order of first sight with their repeats folded in (the circular FIFO
// wraps many times).
func TestAggregatorMemoryBounded(t *testing.T) {
	var out []schema.Event
	emit := func(e *schema.Event) { out = append(out, *e) }
	a := newAggregator(1<<62, 100)
	const n = 10000
	for i := 0; i < n; i++ {
		e := &schema.Event{Action: schema.ActionCreation, Path: "/p" + strconv.Itoa(i), Process: schema.Process{PID: 1}}
		a.add(e, int64(i), emit)
		if i%3 == 0 && !a.add(e, int64(i), emit) {
			t.Fatalf("repeat of /p%d did not fold", i)
		}
		if len(a.q) > 100 {
			t.Fatalf("after %d keys the FIFO has %d slots, bound 100", i+1, len(a.q))
		}
	}
	a.flush(emit)
	if len(out) != n {
		t.Fatalf("%d events out, want %d", len(out), n)
	}
	for i, e := range out {
		want := uint32(0)
		if i%3 == 0 {
			want = 2
		}
		if e.Path != "/p"+strconv.Itoa(i) || e.Count != want {
			t.Fatalf("event %d: %s×%d, want /p%d×%d", i, e.Path, e.Count, i, want)
		}
	}
}

// counterOf reads a counter; safe while Run increments it.
func counterOf(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
