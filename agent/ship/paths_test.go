package ship_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/file"
)

// The branches of Run and of the dead-letter writer that only a real spool
// or a real file system can reach: a damaged record, an undecodable one, a
// segment that cannot be opened, a cursor that cannot be persisted, a
// dead-letter directory that cannot be written, a spool closed under the
// shipper. Each test uses agent/spool and real files.

// logBuf is a slog destination safe for the shipper's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// sinkErrors reads fileward_sink_errors_total{kind} from reg.
func sinkErrors(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	return metric(t, reg, "fileward_sink_errors_total", kind)
}

// metric reads a counter from reg; kind selects the series of a vector.
func metric(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			match := kind == ""
			for _, l := range m.Label {
				if l.GetName() == "kind" && l.GetValue() == kind {
					match = true
				}
			}
			if match {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("metric %s{kind=%q} not registered", name, kind)
	return 0
}

// deadLetterLines reads and decodes <dir>/<name>.ndjson.
func deadLetterLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("dead-letter line is not JSON: %v: %s", err, l)
		}
		out = append(out, m)
	}
	return out
}

// fileSink is the real NDJSON file sink writing to a fresh directory;
// ids reads the event.id of every document it wrote, in order.
func fileSink(t *testing.T) (sinks.Sink, func() []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out", "events.ndjson")
	fs, err := file.New(file.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close(context.Background()) })
	return fs, func() []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			var d struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("output line %q: %v", l, err)
			}
			ids = append(ids, d.Event.ID)
		}
		return ids
	}
}

// segments lists the spool's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return segs
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	full := ship.Options{Name: "n", Sink: newMemSink(), Spool: s, DeadLetterDir: t.TempDir()}
	cases := []struct {
		mod  func(*ship.Options)
		want string
	}{
		{func(o *ship.Options) { o.Name = "" }, "ship: Name is empty"},
		{func(o *ship.Options) { o.Sink = nil }, "ship: Sink is nil"},
		{func(o *ship.Options) { o.Spool = nil }, "ship: Spool is nil"},
		{func(o *ship.Options) { o.DeadLetterDir = "" }, "ship: DeadLetterDir is empty"},
	}
	for _, c := range cases {
		o := full
		c.mod(&o)
		if _, err := ship.New(o); err == nil || err.Error() != c.want {
			t.Errorf("New: %v, want %q", err, c.want)
		}
	}
	// The same sink name twice on one registry: the second registration
	// fails and New says so.
	reg := prometheus.NewRegistry()
	o := full
	o.Registerer = reg
	if _, err := ship.New(o); err != nil {
		t.Fatal(err)
	}
	if _, err := ship.New(o); err == nil || !strings.Contains(err.Error(), "ship n: register metrics") {
		t.Errorf("second New on one registry: %v, want a registration error", err)
	}
	// Every error kind is a series from the start, at zero, and the
	// dead-letter rotation counter is registered.
	for _, k := range []string{"send", "retry", "rejected", "decode", "corrupt", "read", "deadletter", "cursor"} {
		if v := sinkErrors(t, reg, k); v != 0 {
			t.Errorf("fileward_sink_errors_total{kind=%q} = %v at start", k, v)
		}
	}
	if v := metric(t, reg, "fileward_dead_letter_discarded_events_total", ""); v != 0 {
		t.Errorf("fileward_dead_letter_discarded_events_total = %v at start", v)
	}
	// Healthy before Run: nothing is backing off.
	sh, err := ship.New(full)
	if err != nil {
		t.Fatal(err)
	}
	if !sh.Healthy() {
		t.Error("Healthy is false before Run")
	}
}

func TestRunRefusesSecondCallAndBadCursor(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	sink := newMemSink()
	r := start(t, ship.Options{Name: "once", Sink: sink, Spool: s})
	// Once the first Run delivers, it is running.
	s.Append(context.Background(), batch(0, 1, 10), 1)
	waitFor(t, 10*time.Second, "delivery", func() bool { return sink.count() == 1 })
	if err := r.sh.Run(context.Background()); err == nil || err.Error() != "ship: Run called twice" {
		t.Errorf("second Run: %v", err)
	}
	// A name the spool refuses as a cursor name.
	sh, err := ship.New(ship.Options{Name: "no spaces", Sink: newMemSink(), Spool: s, DeadLetterDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "ship no spaces: spool: cursor name") {
		t.Errorf("Run with a bad cursor name: %v", err)
	}
	// A closed spool.
	s2 := openSpool(t, spoolOpts(t.TempDir()))
	s2.Close()
	sh, err = ship.New(ship.Options{Name: "c", Sink: newMemSink(), Spool: s2, DeadLetterDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Run(context.Background()); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Run on a closed spool: %v, want ErrClosed", err)
	}
}

// TestSpoolClosedUnderTheShipper: Run returns ErrClosed, not nil, when the
// spool closes while it waits for data, and when it closes while a batch is
// in flight (the cursor cannot move past it).
func TestSpoolClosedUnderTheShipper(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		s := openSpool(t, spoolOpts(t.TempDir()))
		sink := newMemSink()
		r := start(t, ship.Options{Name: "idle", Sink: sink, Spool: s})
		s.Append(context.Background(), batch(0, 2, 10), 2)
		waitFor(t, 5*time.Second, "delivery", func() bool { return sink.count() == 2 })
		s.Close()
		select {
		case err := <-r.done:
			if !errors.Is(err, spool.ErrClosed) || !strings.HasPrefix(err.Error(), "ship idle: ") {
				t.Errorf("Run: %v, want ship idle: ... ErrClosed", err)
			}
			r.done <- nil
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after the spool closed")
		}
	})
	t.Run("in flight", func(t *testing.T) {
		s := openSpool(t, spoolOpts(t.TempDir()))
		sink := &holdSink{entered: make(chan struct{}), release: make(chan struct{})}
		r := start(t, ship.Options{Name: "flight", Sink: sink, Spool: s})
		s.Append(context.Background(), batch(0, 2, 10), 2)
		select {
		case <-sink.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("no Send")
		}
		s.Close()
		close(sink.release)
		select {
		case err := <-r.done:
			if !errors.Is(err, spool.ErrClosed) {
				t.Errorf("Run: %v, want ErrClosed", err)
			}
			r.done <- nil
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after the spool closed")
		}
	})
}

// holdSink accepts every batch, but its first Send returns only when
// release closes; entered closes when that Send starts.
type holdSink struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (h *holdSink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	h.once.Do(func() {
		close(h.entered)
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	})
	return sinks.Result{}, ctx.Err()
}

func (h *holdSink) Close(context.Context) error { return nil }

// TestCorruptRecordSkippedAndCounted: a record damaged on disk after it was
// appended (one payload byte flipped) is found by the shipper's reader (the
// sink is the real NDJSON file sink):
// counted as corrupt exactly (the spool's OnCorrupt gets its events, the
// sink's errors kind "corrupt" one), skipped, and the records around it
// arrive in order. The cursor reaches the end.
func TestCorruptRecordSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	var corrupt atomic.Uint64
	o := spoolOpts(dir)
	o.OnCorrupt = func(n uint64) { corrupt.Add(n) }
	s := openSpool(t, o)
	defer s.Close()
	var lens []int
	for i := 0; i < 3; i++ {
		p := batch(i*5, 5, 40)
		lens = append(lens, len(p))
		if err := s.Append(context.Background(), p, 5); err != nil {
			t.Fatal(err)
		}
	}
	// Segment header 20 bytes, record header 28: flip a byte in the
	// middle of the second record's payload.
	seg := segments(t, dir)[0]
	off := int64(20 + 28 + lens[0] + 28 + lens[1]/2)
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	f.Close()

	sink, received := fileSink(t)
	reg := prometheus.NewRegistry()
	var logs logBuf
	r := start(t, ship.Options{Name: "c", Sink: sink, Spool: s, Registerer: reg, Logger: logs.logger()})
	r.drain(t, 10*time.Second)
	var want []string
	for _, i := range []int{0, 1, 2, 3, 4, 10, 11, 12, 13, 14} {
		want = append(want, id(i))
	}
	if got := received(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("received %v, want the first and third records %v", got, want)
	}
	if n := corrupt.Load(); n != 5 {
		t.Errorf("OnCorrupt total %d, want the damaged record's 5 events", n)
	}
	if v := sinkErrors(t, reg, "corrupt"); v != 1 {
		t.Errorf("sink errors kind corrupt = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "ship: skipping damaged spool data") {
		t.Errorf("no log line about the damage:\n%s", logs.String())
	}
	if l, _ := s.Lag("c"); l.Events != 0 {
		t.Errorf("lag %d after the drain, want 0", l.Events)
	}
}

// TestUndecodableRecordDeadLettered: a spool record that is not a sinks
// batch is dead-lettered as it is (its sequence number and payload in
// base64), its events are counted as rejected, and the records around it
// are delivered in order (to the real NDJSON file sink).
func TestUndecodableRecordDeadLettered(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	garbage := []byte("not a batch at all")
	s.Append(context.Background(), batch(0, 4, 10), 4)
	if err := s.Append(context.Background(), garbage, 3); err != nil {
		t.Fatal(err)
	}
	s.Append(context.Background(), batch(4, 4, 10), 4)
	sink, received := fileSink(t)
	reg := prometheus.NewRegistry()
	dl := t.TempDir()
	var rejected atomic.Uint64
	var logs logBuf
	r := start(t, ship.Options{Name: "u", Sink: sink, Spool: s, Registerer: reg, DeadLetterDir: dl, Logger: logs.logger(),
		OnRejected: func(n uint64) { rejected.Add(n) }})
	r.drain(t, 10*time.Second)
	if got := received(); strings.Join(got, ",") != strings.Join([]string{id(0), id(1), id(2), id(3), id(4), id(5), id(6), id(7)}, ",") {
		t.Errorf("received %v", got)
	}
	if n := rejected.Load(); n != 3 {
		t.Errorf("OnRejected total %d, want the record's 3 events", n)
	}
	if d, rj := sinkErrors(t, reg, "decode"), sinkErrors(t, reg, "rejected"); d != 1 || rj != 3 {
		t.Errorf("sink errors decode %v rejected %v, want 1 and 3", d, rj)
	}
	lines := deadLetterLines(t, filepath.Join(dl, "u.ndjson"))
	if len(lines) != 1 {
		t.Fatalf("%d dead-letter lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["record_seq"] != float64(4) || l["payload_base64"] != base64.StdEncoding.EncodeToString(garbage) || l["sink"] != "u" {
		t.Errorf("dead-letter line %v: want record_seq 4, the payload in base64, sink u", l)
	}
	if e, _ := l["error"].(string); e == "" || l["document"] != nil || l["event_id"] != nil {
		t.Errorf("dead-letter line %v: want the decode error and no document", l)
	}
	if ts, _ := l["@timestamp"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("@timestamp %q is not UTC", ts)
	}
	if !strings.Contains(logs.String(), "ship: undecodable spool record, dead-lettered") {
		t.Errorf("no log line about the record:\n%s", logs.String())
	}
	// A clean run otherwise: the cursor persisted every time, no loss
	// report among the rejected.
	if v := sinkErrors(t, reg, "cursor"); v != 0 {
		t.Errorf("sink errors kind cursor = %v in a clean run", v)
	}
	for _, bad := range []string{"ship: persist cursor", "loss reports rejected"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("logged %q in a clean run:\n%s", bad, logs.String())
		}
	}
	if l, _ := s.Lag("u"); l.Events != 0 {
		t.Errorf("lag %d, want 0", l.Events)
	}
}

// TestDeadLetterWriteError: the dead-letter directory cannot be created (a
// regular file is in its place). The rejected event still counts as
// rejected, the failure is logged and counted (kind "deadletter"), and the
// sink goes on: later batches are delivered and the cursor moves. Once the
// directory can be made, the next rejection is written.
func TestDeadLetterWriteError(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	blocker := filepath.Join(t.TempDir(), "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(blocker, "dead-letter")
	sink := newMemSink()
	// The second event of every batch is refused for good.
	sink.hook = func(_ int, b *sinks.Batch) (sinks.Result, error) {
		return sinks.Result{Failures: []sinks.Failure{{Index: 1, Err: sinks.Permanent(errors.New("400 refused"))}}}, nil
	}
	reg := prometheus.NewRegistry()
	var rejected atomic.Uint64
	var logs logBuf
	r := start(t, ship.Options{Name: "w", Sink: sink, Spool: s, Registerer: reg, DeadLetterDir: dl, Logger: logs.logger(),
		OnRejected: func(n uint64) { rejected.Add(n) }})
	s.Append(context.Background(), batch(0, 3, 10), 3)
	waitFor(t, 10*time.Second, "the failed dead-letter write", func() bool { return sinkErrors(t, reg, "deadletter") == 1 })
	waitFor(t, 10*time.Second, "the first batch", func() bool { l, ok := s.Lag("w"); return ok && l.Events == 0 })
	if n := rejected.Load(); n != 1 {
		t.Errorf("OnRejected total %d, want 1 although the file could not be written", n)
	}
	if v := sinkErrors(t, reg, "deadletter"); v != 1 {
		t.Errorf("sink errors kind deadletter = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "ship: write dead-letter file") || !strings.Contains(logs.String(), "not a directory") {
		t.Errorf("the write error is not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "events rejected by the sink, dead-lettered") {
		t.Errorf("a failed write is logged as dead-lettered:\n%s", logs.String())
	}
	// The directory can be made now: the next rejection lands in it.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Append(context.Background(), batch(3, 3, 10), 3)
	r.drain(t, 10*time.Second)
	if got := sink.received(); strings.Join(got, ",") != strings.Join([]string{id(0), id(2), id(3), id(5)}, ",") {
		t.Errorf("received %v", got)
	}
	lines := deadLetterLines(t, filepath.Join(dl, "w.ndjson"))
	if len(lines) != 1 || lines[0]["event_id"] != id(4) {
		t.Errorf("dead-letter lines %v, want only %s", lines, id(4))
	}
	if st, err := os.Stat(dl); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dead-letter directory: %v, mode %v, want 0700", err, st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Join(dl, "w.ndjson")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("dead-letter file: %v, want mode 0600", err)
	}
	if n, v := rejected.Load(), sinkErrors(t, reg, "deadletter"); n != 2 || v != 1 {
		t.Errorf("OnRejected %d, deadletter errors %v; want 2 and still 1", n, v)
	}
}

// TestDeadLetterDocumentsAndLossReports: a document that is not valid JSON
// is kept as text; a rejected loss report is dead-lettered and counted in
// the sink's rejected errors, but not given to OnRejected (it would become a
// new loss report, rejected in turn, forever).
func TestDeadLetterDocumentsAndLossReports(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	evs := []sinks.Event{
		{ID: "bad-json", Key: "h", Doc: []byte(`{"not json`)},
		{ID: "report", Key: "h", Doc: []byte(`{"@timestamp":"x","event":{"kind":"pipeline_error","action":"events_lost","id":"r"}}`)},
		{ID: "fine", Key: "h", Doc: []byte(`{"event":{"kind":"event"}}`)},
	}
	s.Append(context.Background(), sinks.AppendBatch(nil, evs), len(evs))
	sink := newMemSink()
	sink.hook = func(_ int, b *sinks.Batch) (sinks.Result, error) {
		return sinks.Result{}, sinks.Permanent(errors.New("400 everything refused"))
	}
	reg := prometheus.NewRegistry()
	dl := t.TempDir()
	var rejected atomic.Uint64
	var logs logBuf
	start(t, ship.Options{Name: "r", Sink: sink, Spool: s, Registerer: reg, DeadLetterDir: dl, Logger: logs.logger(),
		OnRejected: func(n uint64) { rejected.Add(n) }}).drain(t, 10*time.Second)
	if n := rejected.Load(); n != 2 {
		t.Errorf("OnRejected total %d, want 2 (the loss report is not counted)", n)
	}
	if v := sinkErrors(t, reg, "rejected"); v != 3 {
		t.Errorf("sink errors kind rejected = %v, want 3 (the report too)", v)
	}
	lines := deadLetterLines(t, filepath.Join(dl, "r.ndjson"))
	if len(lines) != 3 {
		t.Fatalf("%d dead-letter lines, want 3", len(lines))
	}
	if lines[0]["document_text"] != `{"not json` || lines[0]["document"] != nil {
		t.Errorf("invalid JSON kept as %v", lines[0])
	}
	for _, l := range lines[1:] {
		if _, ok := l["document"].(map[string]any); !ok || l["document_text"] != nil {
			t.Errorf("valid JSON kept as %v", l)
		}
	}
	for _, l := range lines {
		if l["error"] != "400 everything refused" || l["key"] != "h" {
			t.Errorf("line %v: want the sink's error and the key", l)
		}
	}
	if !strings.Contains(logs.String(), "loss reports rejected by the sink") || !strings.Contains(logs.String(), "reports=1") {
		t.Errorf("the rejected report is not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "events rejected by the sink, dead-lettered") || !strings.Contains(logs.String(), "events=3") {
		t.Errorf("the dead-lettering is not logged with the events:\n%s", logs.String())
	}
}

// stepClock records the shipper's waits and fires the first free of them at
// once; later ones fire only when release closes.
type stepClock struct {
	mu      sync.Mutex
	waits   []time.Duration
	free    int
	release chan struct{}
}

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	if len(c.waits) <= c.free {
		ch <- time.Now()
		return ch
	}
	go func() { <-c.release; ch <- time.Now() }()
	return ch
}

func (c *stepClock) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waits)
}

func (c *stepClock) got() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// unreadable appends one batch and moves the segment file away: the
// reader's open fails with ENOENT (not a damage: an I/O error), until put
// back.
func unreadable(t *testing.T) (s *spool.Spool, putBack func()) {
	t.Helper()
	dir := t.TempDir()
	s = openSpool(t, spoolOpts(dir))
	if err := s.Append(context.Background(), batch(0, 2, 10), 2); err != nil {
		t.Fatal(err)
	}
	seg := segments(t, dir)[0]
	if err := os.Rename(seg, seg+".away"); err != nil {
		t.Fatal(err)
	}
	return s, func() {
		if err := os.Rename(seg+".away", seg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadErrorBacksOff: a segment that cannot be opened is a read error:
// counted (kind "read"), logged, and retried after the shipper's own
// backoff, whose defaults (500ms, 30s, 2) stand in for zero or invalid
// fields. Delivery resumes once the file is back; cancelling during the
// wait returns nil.
func TestReadErrorBacksOff(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		b    ship.Backoff
		want []time.Duration
	}{
		{"defaults", ship.Backoff{Multiplier: 0.5},
			[]time.Duration{500 * ms, 1000 * ms, 2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 30000 * ms, 30000 * ms}},
		{"negative", ship.Backoff{Initial: -1, Max: -1, Multiplier: -1},
			[]time.Duration{500 * ms, 1000 * ms, 2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 30000 * ms, 30000 * ms}},
		{"multiplier 1 kept", ship.Backoff{Initial: 100 * ms, Max: time.Second, Multiplier: 1},
			[]time.Duration{100 * ms, 100 * ms, 100 * ms, 100 * ms}},
		{"given", ship.Backoff{Initial: 10 * ms, Max: 50 * ms, Multiplier: 3},
			[]time.Duration{10 * ms, 30 * ms, 50 * ms, 50 * ms}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, putBack := unreadable(t)
			defer s.Close()
			clk := &stepClock{free: len(c.want), release: make(chan struct{})}
			reg := prometheus.NewRegistry()
			sink := newMemSink()
			var logs logBuf
			sh, err := ship.New(ship.Options{Name: "rd", Sink: sink, Spool: s, DeadLetterDir: t.TempDir(),
				Backoff: c.b, Clock: clk, Registerer: reg, Logger: logs.logger()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- sh.Run(ctx) }()
			waitFor(t, 10*time.Second, "the waits", func() bool { return clk.n() > len(c.want) })
			got := clk.got()[:len(c.want)]
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Fatalf("waits %v, want %v", got, c.want)
				}
			}
			if v := sinkErrors(t, reg, "read"); v != float64(len(c.want)+1) {
				t.Errorf("sink errors kind read = %v, want %d", v, len(c.want)+1)
			}
			if !strings.Contains(logs.String(), "ship: read spool") {
				t.Errorf("the read error is not logged:\n%s", logs.String())
			}
			if sink.count() != 0 {
				t.Fatal("delivered from a segment that cannot be read")
			}
			putBack()
			close(clk.release)
			waitFor(t, 10*time.Second, "delivery after the file came back", func() bool { return sink.count() == 2 })
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Run("cancel while waiting", func(t *testing.T) {
		s, _ := unreadable(t)
		defer s.Close()
		clk := &stepClock{release: make(chan struct{})}
		sh, err := ship.New(ship.Options{Name: "rd", Sink: newMemSink(), Spool: s, DeadLetterDir: t.TempDir(), Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx) }()
		waitFor(t, 10*time.Second, "the first wait", func() bool { return clk.n() == 1 })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return when cancelled during its backoff")
		}
	})
}

// TestReadBackoffJitter: the shipper's backoff keeps a jitter of 1 and
// replaces one outside 0..1 by 0.5. With 40 waits of nominal 100ms, a jitter
// of 1 puts at least one outside [50ms, 150ms] (all inside has probability
// 2^-40); 0.5 keeps every one inside.
func TestReadBackoffJitter(t *testing.T) {
	const n = 40
	for _, c := range []struct {
		jitter  float64
		outside bool
	}{{1, true}, {2, false}, {-0.5, false}} {
		s, _ := unreadable(t)
		clk := &stepClock{free: n, release: make(chan struct{})}
		sh, err := ship.New(ship.Options{Name: "j", Sink: newMemSink(), Spool: s, DeadLetterDir: t.TempDir(), Clock: clk,
			Backoff: ship.Backoff{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 1, Jitter: c.jitter}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx) }()
		waitFor(t, 10*time.Second, "the waits", func() bool { return clk.n() > n })
		cancel()
		<-done
		s.Close()
		outside := 0
		for _, w := range clk.got()[:n] {
			if w < 50*time.Millisecond || w > 150*time.Millisecond {
				outside++
			}
		}
		if (outside > 0) != c.outside {
			t.Errorf("jitter %v: %d of %d waits outside [50ms, 150ms]: %v", c.jitter, outside, n, clk.got()[:n])
		}
	}
}

// TestCursorPersistFailure: the cursor file cannot be replaced (a directory
// is in its place). Delivery goes on, each failed persist is counted (kind
// "cursor") and logged, and the shipper backs off instead of spinning; once
// the path is free the cursor is persisted, and a reopened spool starts
// after the delivered data.
func TestCursorPersistFailure(t *testing.T) {
	dir := t.TempDir()
	o := spoolOpts(dir)
	o.Fsync = spool.FsyncAlways
	s := openSpool(t, o)
	// Create the cursor, then put a non-empty directory where it lives.
	rd, err := s.Reader("cur")
	if err != nil {
		t.Fatal(err)
	}
	rd.Close()
	cpath := filepath.Join(dir, "cursors", "cur.cursor")
	if err := os.Remove(cpath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cpath, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	clk := &stepClock{free: 3, release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	sink := newMemSink()
	var logs logBuf
	sh, err := ship.New(ship.Options{Name: "cur", Sink: sink, Spool: s, DeadLetterDir: t.TempDir(), Clock: clk,
		Backoff: ship.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2}, Registerer: reg, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	s.Append(context.Background(), batch(0, 3, 10), 3)
	waitFor(t, 10*time.Second, "delivery", func() bool { return sink.count() == 3 })
	waitFor(t, 10*time.Second, "the backoff waits", func() bool { return clk.n() > 3 })
	// One failure from the ack, one per wait from the persist before
	// waiting for data.
	if v := sinkErrors(t, reg, "cursor"); v < 4 {
		t.Errorf("sink errors kind cursor = %v, want at least 4", v)
	}
	if w := clk.got()[:3]; w[0] != 10*time.Millisecond || w[1] != 20*time.Millisecond || w[2] != 40*time.Millisecond {
		t.Errorf("waits %v, want 10ms 20ms 40ms", w)
	}
	if !strings.Contains(logs.String(), "ship: persist cursor") {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
	// Cancelled during its backoff, Run returns nil.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when cancelled during its backoff")
	}
	// Every counted failure is logged, and so is the last persist, when
	// Run returns.
	if n, v := strings.Count(logs.String(), "ship: persist cursor"), sinkErrors(t, reg, "cursor"); float64(n) != v+1 {
		t.Errorf("%d log lines about the cursor, %v counted failures: want the counted ones and the final persist", n, v)
	}
	// The path is free: a new shipper persists the cursor past the data.
	if err := os.RemoveAll(cpath); err != nil {
		t.Fatal(err)
	}
	s.Append(context.Background(), batch(3, 1, 10), 1)
	start(t, ship.Options{Name: "cur", Sink: sink, Spool: s}).drain(t, 10*time.Second)
	s.Close()
	s = openSpool(t, o)
	defer s.Close()
	if l, ok := s.Lag("cur"); !ok || l.Events != 0 {
		t.Errorf("after reopening: lag %d (%v), want 0", l.Events, ok)
	}
	if got := sink.received(); len(got) != 4 {
		t.Errorf("received %v, want 4 events once each", got)
	}
}

// TestDeadLetterRotationThroughShipper: the shipper rotates its dead-letter
// file at DeadLetterMaxBytes and counts the events of a file rotated away
// in fileward_dead_letter_discarded_events_total; lines kept plus events
// discarded are every rejected event. A negative keep is 0.
func TestDeadLetterRotationThroughShipper(t *testing.T) {
	for _, keep := range []int{1, -1} {
		s := openSpool(t, spoolOpts(t.TempDir()))
		sink := newMemSink()
		sink.hook = func(_ int, b *sinks.Batch) (sinks.Result, error) {
			return sinks.Result{}, sinks.Permanent(errors.New("400 refused"))
		}
		for i := 0; i < 10; i++ {
			s.Append(context.Background(), batch(i*5, 5, 200), 5)
		}
		reg := prometheus.NewRegistry()
		dl := t.TempDir()
		var logs logBuf
		start(t, ship.Options{Name: "rot", Sink: sink, Spool: s, Registerer: reg, DeadLetterDir: dl, Logger: logs.logger(),
			DeadLetterMaxBytes: 4096, DeadLetterKeep: keep}).drain(t, 10*time.Second)
		s.Close()
		files, _ := filepath.Glob(filepath.Join(dl, "rot.ndjson*"))
		var kept int
		for _, f := range files {
			kept += len(deadLetterLines(t, f))
		}
		gone := metric(t, reg, "fileward_dead_letter_discarded_events_total", "")
		if wantFiles := max(keep, 0) + 1; len(files) != wantFiles {
			t.Errorf("keep %d: files %v, want %d", keep, files, wantFiles)
		}
		if gone == 0 || float64(kept)+gone != 50 {
			t.Errorf("keep %d: %d lines kept + %v discarded, want 50 with some discarded", keep, kept, gone)
		}
		if !strings.Contains(logs.String(), "dead-letter file rotated away") {
			t.Errorf("keep %d: the discarded events are not logged", keep)
		}
	}
}

// TestOnlyLossReportsRejected: a batch holding only a loss report that the
// sink refuses is dead-lettered and counted in the sink's errors, and
// OnRejected is not called at all.
func TestOnlyLossReportsRejected(t *testing.T) {
	s := openSpool(t, spoolOpts(t.TempDir()))
	defer s.Close()
	doc := []byte(`{"event":{"kind":"pipeline_error","action":"events_lost","id":"r"}}`)
	s.Append(context.Background(), sinks.AppendBatch(nil, []sinks.Event{{ID: "r", Doc: doc}}), 1)
	sink := newMemSink()
	sink.hook = func(_ int, b *sinks.Batch) (sinks.Result, error) {
		return sinks.Result{}, sinks.Permanent(errors.New("400 refused"))
	}
	reg := prometheus.NewRegistry()
	var calls atomic.Int32
	start(t, ship.Options{Name: "lr", Sink: sink, Spool: s, Registerer: reg,
		OnRejected: func(uint64) { calls.Add(1) }}).drain(t, 10*time.Second)
	if n := calls.Load(); n != 0 {
		t.Errorf("OnRejected called %d times for a rejected loss report, want never", n)
	}
	if v := sinkErrors(t, reg, "rejected"); v != 1 {
		t.Errorf("sink errors kind rejected = %v, want 1", v)
	}
}
