package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// The pipeline's refusal branch with the real spool as its Output, wired as
// the agent wires it (cmd_run.go): the spool's OnDrop counts refused events
// as spool_full in the pipeline's Drops, and the spool keeps loss reports
// (LossLedger). Nothing reads the spool until the test does.

type spoolRig struct {
	*rig
	sp    *spool.Spool
	reg   *prometheus.Registry
	logs  *lockedBuf
	drops *capture.Drops
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSpoolRig(t *testing.T, so spool.Options) *spoolRig {
	t.Helper()
	drops := &capture.Drops{}
	returned := &capture.Drops{}
	so.OnDrop = func(n uint64) { drops.Add(schema.LossSpoolFull, n) }
	so.OnReportDropped = func(c spool.LossCounts) {
		for name, n := range c {
			if r, ok := schema.ParseLossReason(name); ok {
				returned.Add(r, n)
			}
		}
	}
	if so.Registerer == nil {
		so.Registerer = prometheus.NewRegistry()
	}
	sp, err := spool.Open(context.Background(), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	reg := prometheus.NewRegistry()
	logs := &lockedBuf{}
	r := &rig{ring: capture.NewRing(1<<16, drops), drops: drops, out: &memOutput{}}
	p, err := New(Options{
		Ring: r.ring, Drops: drops, Returned: returned, Output: sp,
		Encoder:     schema.NewEncoder(schema.Meta{HostID: "host-1", HostName: "h", OSType: "linux", AgentID: "a", AgentVersion: "test"}),
		BatchEvents: 16, BatchBytes: 64 << 10, BatchWait: 20 * time.Millisecond, Tick: 5 * time.Millisecond,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return &spoolRig{rig: r, sp: sp, reg: reg, logs: logs, drops: drops}
}

// spooled reads the spool from a fresh cursor up to its end, acknowledging
// what it read (which frees sealed segments), and returns the documents.
type spoolReader struct {
	rd *spool.Reader
}

func (s *spoolRig) reader(t *testing.T) *spoolReader {
	t.Helper()
	rd, err := s.sp.Reader("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &spoolReader{rd: rd}
}

func (r *spoolReader) read(t *testing.T) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for r.rd.Next() {
		var b sinks.Batch
		if err := sinks.DecodeBatch(r.rd.Record().Payload, &b); err != nil {
			t.Fatalf("spool record: %v", err)
		}
		for _, e := range b.Events {
			var d map[string]any
			if err := json.Unmarshal(e.Doc, &d); err != nil {
				t.Fatal(err)
			}
			docs = append(docs, d)
		}
		if err := r.rd.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.rd.Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.rd.Flush(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// account splits documents into file events (their event.sequence) and the
// sum of spool_full loss counts.
func account(docs []map[string]any) (seqs []int, lost uint64) {
	for _, d := range docs {
		switch field(d, "event", "action") {
		case "events_lost":
			if field(d, "fileward", "lost", "reason") == "spool_full" {
				lost += uint64(field(d, "fileward", "lost", "count").(float64))
			}
		case "open":
			seqs = append(seqs, int(field(d, "event", "sequence").(float64)))
		}
	}
	return seqs, lost
}

// pushAll pushes n events numbered 1..n with documents of about 500 bytes.
func pushAll(t *testing.T, r *rig, first, n int) {
	t.Helper()
	pad := strings.Repeat("p", 300)
	for i := first; i < first+n; i++ {
		ev := fileEvent(uint64(i), 1, schema.ActionOpen, "/data/"+pad+"/"+itoa(i))
		for !r.ring.TryPush(&ev) {
			time.Sleep(time.Millisecond) // the ring is large; this only waits for Run
		}
	}
}

// drainAndAccount reads the spool until the loss reports stored account
// for every event counted spool_full, stops the pipeline (stop), reads the
// rest, and checks that the file events stored plus the spool_full count
// reported are every event pushed. It returns the stored events'
// event.sequence values; refused (append refusals) is only logged.
func (s *spoolRig) drainAndAccount(t *testing.T, stop func(), pushed uint64, refused float64) []int {
	t.Helper()
	rd := s.reader(t)
	var docs []map[string]any
	waitFor(t, func() bool {
		docs = append(docs, rd.read(t)...)
		_, lost := account(docs)
		return lost > 0 && lost == s.drops.Load(schema.LossSpoolFull)
	})
	stop()
	docs = append(docs, rd.read(t)...)
	seqs, lost := account(docs)
	t.Logf("%d events: %d stored, %d refused in %v batches, %d reported lost", pushed, len(seqs), s.drops.Load(schema.LossSpoolFull), refused, lost)
	if uint64(len(seqs))+lost != pushed {
		t.Errorf("stored %d + reported lost %d != %d pushed", len(seqs), lost, pushed)
	}
	return seqs
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestSpoolRefusesDropNewest: a drop_newest spool fills up; the pipeline's
// appends are refused, counted (fileward_pipeline_append_refused_total, the
// warning), and capture goes on. When the spool is read and space comes
// back, the loss report gets in: the file events stored are the oldest,
// without a gap, and they plus the reported spool_full count are every
// event pushed.
func TestSpoolRefusesDropNewest(t *testing.T) {
	const n = 1000
	s := newSpoolRig(t, spool.Options{Dir: t.TempDir(), MaxBytes: 64 << 10, SegmentBytes: 32 << 10,
		WhenFull: spool.DropNewest, Fsync: spool.FsyncNever})
	stop := started(t, s.rig)
	pushAll(t, s.rig, 1, n)
	waitFor(t, func() bool { return s.ring.Len() == 0 })
	settle(t, s.p, Rules{}, 0)
	refused := counterValue(t, s.reg, "fileward_pipeline_append_refused_total")
	if refused == 0 || s.drops.Load(schema.LossSpoolFull) == 0 {
		t.Fatalf("refused %v batches, %d events counted spool_full: the spool never filled", refused, s.drops.Load(schema.LossSpoolFull))
	}
	if !strings.Contains(s.logs.String(), "spool refused a batch; its events are counted as spool_full") {
		t.Errorf("no warning about the refusal:\n%s", s.logs.String())
	}
	// Read everything; the next loss report (once a second) gets in.
	seqs := s.drainAndAccount(t, stop, n, refused)
	// The oldest events, without a gap; then, at most one batch (16
	// events): a batch smaller than the one first refused can still fit
	// in the room that one left (the last, partial batch of the drain).
	run := 0
	for run < len(seqs) && seqs[run] == run+1 {
		run++
	}
	if run == 0 || len(seqs)-run > 16 {
		t.Errorf("stored event.sequence %v: want 1..k without a gap, then at most one batch", seqs)
	}
}

// TestRefusedLossReportIsNotALoss: the spool is full to the byte (drop_newest),
// one file event is refused, and then the loss reports about it are refused
// too, more than once. Once there is room, the report that gets in says
// spool_full 1: the refused reports were retried, not lost, so they are
// not counted as lost events.
func TestRefusedLossReportIsNotALoss(t *testing.T) {
	s := newSpoolRig(t, spool.Options{Dir: t.TempDir(), MaxBytes: 64 << 10, SegmentBytes: 32 << 10,
		WhenFull: spool.DropNewest, Fsync: spool.FsyncNever})
	// Fill the spool with records of no events until not even the
	// smallest record fits.
	for size := 16 << 10; size >= 1; size /= 2 {
		doc := []byte(`{"event":{"action":"filler"},"pad":"` + strings.Repeat("f", size) + `"}`)
		for s.sp.Append(context.Background(), sinks.AppendBatch(nil, []sinks.Event{{ID: "f", Doc: doc}}), 0) == nil {
		}
	}
	for s.sp.Append(context.Background(), nil, 0) == nil {
	}
	if d := s.drops.Load(schema.LossSpoolFull); d != 0 {
		t.Fatalf("filling counted %d events lost", d)
	}
	stop := started(t, s.rig)
	pushAll(t, s.rig, 1, 1)
	waitFor(t, func() bool { return counterValue(t, s.reg, "fileward_pipeline_append_refused_total") >= 3 })
	t.Logf("spool_full before there is room: %d (1 file event refused)", s.drops.Load(schema.LossSpoolFull))
	rd := s.reader(t)
	var docs []map[string]any
	waitFor(t, func() bool {
		docs = append(docs, rd.read(t)...)
		_, lost := account(docs)
		return lost > 0
	})
	stop()
	docs = append(docs, rd.read(t)...)
	seqs, lost := account(docs)
	if len(seqs) != 0 || lost != 1 {
		t.Errorf("stored %d file events, reported spool_full %d; want 0 and 1 (the refused loss reports are not lost events)", len(seqs), lost)
	}
}
