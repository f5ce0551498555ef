package ship

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/deliver"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
)

// Backoff is a sink's retry schedule. Zero fields take the defaults of
// docs/configuration.md: 500ms, 30s, 2, 0.5.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64 // randomization factor, 0..1
}

// Clock makes backoff waits testable. After has the meaning of time.After.
type Clock = deliver.Clock

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Shipper.
type Options struct {
	Name          string // sink name; also the cursor name and the dead-letter file name
	Sink          sinks.Sink
	Spool         *spool.Spool
	Backoff       Backoff
	DeadLetterDir string // <data_dir>/dead-letter; file <Name>.ndjson
	// DeadLetterMaxBytes rotates the dead-letter file when a write would
	// take it past this size (0 = never); DeadLetterKeep rotated files
	// are kept (<Name>.ndjson.1 the newest). The events in a file rotated
	// away are counted in fileward_dead_letter_discarded_events_total.
	DeadLetterMaxBytes int64
	DeadLetterKeep     int
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
	// OnRejected is told how many events were dead-lettered (the agent
	// counts them as lost, reason "rejected"). Loss reports (event.action
	// events_lost) are dead-lettered but not counted: reporting them would
	// make a new report for a sink that rejects everything, and so on
	// forever; their counts are already in the cumulative totals
	// (fileward.lost.total). It must not block.
	OnRejected func(events uint64)
	// Clock times the backoff waits; nil is the real clock.
	Clock Clock
	// Workers is the most Sends in flight at once (default 1, one batch
	// at a time). Above 1 the Sink's Send must be safe for concurrent use
	// (the Elasticsearch sink's is: elasticsearch.workers).
	Workers int
	// MaxPending bounds the spool records read ahead and not yet
	// acknowledged (default: see deliver.Options).
	MaxPending int
}

// Shipper delivers the spool to one sink.
type Shipper struct {
	o       Options
	log     *slog.Logger
	bo      *backoff.ExponentialBackOff
	acked   prometheus.Counter
	errs    *prometheus.CounterVec
	window  atomic.Pointer[deliver.Window]
	drain   chan struct{}
	drainMu sync.Once
	running atomic.Bool
	dl      *deadLetterFile
	dlGone  prometheus.Counter
}

// New checks o and registers the sink's metrics:
// fileward_sink_events_acked_total{sink}, fileward_sink_errors_total{sink,kind}
// and fileward_sink_lag_events{sink}.
func New(o Options) (*Shipper, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("ship: Name is empty")
	case o.Sink == nil:
		return nil, errors.New("ship: Sink is nil")
	case o.Spool == nil:
		return nil, errors.New("ship: Spool is nil")
	case o.DeadLetterDir == "":
		return nil, errors.New("ship: DeadLetterDir is empty")
	}
	b := o.Backoff
	if b.Initial <= 0 {
		b.Initial = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		b.Jitter = 0.5
	}
	o.Backoff = b
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.OnRejected == nil {
		o.OnRejected = func(uint64) {}
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.Initial),
		backoff.WithMaxInterval(b.Max),
		backoff.WithMultiplier(b.Multiplier),
		backoff.WithRandomizationFactor(b.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
	labels := prometheus.Labels{"sink": o.Name}
	s := &Shipper{
		o:     o,
		log:   o.Logger.With("sink", o.Name),
		bo:    bo,
		drain: make(chan struct{}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_sink_events_acked_total",
			Help: "Events the sink acknowledged.", ConstLabels: labels}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fileward_sink_errors_total",
			Help:        "Sink errors: send (failed attempts of a whole batch), retry (events to retry), rejected (events dead-lettered), decode, corrupt, read, deadletter, cursor.",
			ConstLabels: labels}, []string{"kind"}),
	}
	s.dl = &deadLetterFile{dir: o.DeadLetterDir, name: o.Name, maxBytes: o.DeadLetterMaxBytes, keep: max(o.DeadLetterKeep, 0),
		discarded: func(n uint64) {
			s.dlGone.Add(float64(n))
			s.log.Warn("ship: dead-letter file rotated away; its events are gone for good (they were counted as rejected when dead-lettered)", "events", n)
		}}
	s.dlGone = prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_dead_letter_discarded_events_total",
		Help: "Dead-lettered events whose file was rotated away (dead_letter.keep exceeded).", ConstLabels: labels})
	// Every kind is a series from the start, at zero.
	for _, k := range []string{"send", "retry", "rejected", "decode", "corrupt", "read", "deadletter", "cursor"} {
		s.errs.WithLabelValues(k)
	}
	if o.Registerer != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fileward_sink_lag_events",
			Help: "Events in the spool the sink has not acknowledged.", ConstLabels: labels},
			func() float64 {
				l, _ := o.Spool.Lag(o.Name)
				return float64(l.Events)
			})
		for _, c := range []prometheus.Collector{s.acked, s.errs, lag, s.dlGone} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ship %s: register metrics: %w", o.Name, err)
			}
		}
	}
	return s, nil
}

// Healthy is false while a batch is backing off after an attempt that
// delivered nothing.
func (s *Shipper) Healthy() bool {
	if w := s.window.Load(); w != nil {
		return w.Healthy()
	}
	return true
}

// Drain asks Run to return nil as soon as its cursor reaches the end of the
// spool. Retries go on meanwhile; the caller bounds them by cancelling ctx.
func (s *Shipper) Drain() { s.drainMu.Do(func() { close(s.drain) }) }

func (s *Shipper) draining() bool {
	select {
	case <-s.drain:
		return true
	default:
		return false
	}
}

// Run ships until ctx is done (returning nil; the unsent rest stays spooled
// for the next start) or, after Drain, until the cursor reaches the end. It
// reads records ahead into a deliver.Window (up to Options.Workers Sends in
// flight) and moves the cursor, in order, only past records whose every
// event was acknowledged or dead-lettered. In-flight Sends get ctx. It
// returns an error if the cursor cannot be opened or the spool is closed
// under it. Run is called once.
func (s *Shipper) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("ship: Run called twice")
	}
	r, err := s.o.Spool.Reader(s.o.Name)
	if err != nil {
		return fmt.Errorf("ship %s: %w", s.o.Name, err)
	}
	jobCtx, stopJobs := context.WithCancel(ctx)
	w, err := deliver.New(deliver.Options{
		Sink: s.o.Sink, Workers: s.o.Workers, MaxPending: s.o.MaxPending,
		Backoff: deliver.Backoff(s.o.Backoff), Clock: s.o.Clock, Logger: s.log,
		Rejected:   s.deadLetterEach,
		Acked:      func(n int) { s.acked.Add(float64(n)) },
		Retried:    func(n int) { s.errs.WithLabelValues("retry").Add(float64(n)) },
		SendFailed: func(error) { s.errs.WithLabelValues("send").Inc() },
	})
	if err != nil {
		stopJobs()
		r.Close()
		return fmt.Errorf("ship %s: %w", s.o.Name, err)
	}
	s.window.Store(w)
	defer func() {
		stopJobs()
		w.Wait()
		if err := r.Close(); err != nil {
			s.log.Error("ship: persist cursor", "err", err)
		}
		s.dl.close()
	}()
	bufs := &batchBufs{}
	// ahead is the next record, read and decoded while the window was
	// full, so that reading the spool overlaps the Sends in flight.
	var ahead *deliver.Batch
	for {
		if ctx.Err() != nil {
			return nil
		}
		ready := w.Ready()
		end, acked := s.popDone(w, bufs)
		if ahead != nil && !w.Full() {
			// Hand the sink the record read ahead before persisting the
			// cursor (an fsync, once per interval), so that the sink is
			// not idle meanwhile.
			b := *ahead
			ahead = nil
			if err := w.Submit(jobCtx, b); err != nil {
				return nil // ctx ended
			}
		}
		if acked {
			if err := s.ackTo(r, end); err != nil {
				return err
			}
		}
		if w.Full() {
			if ahead == nil && r.Next() {
				b := s.prepare(r, bufs)
				ahead = &b
			}
			select {
			case <-ready:
			case <-ctx.Done():
			}
			continue
		}
		if ahead != nil {
			b := *ahead
			ahead = nil
			if err := w.Submit(jobCtx, b); err != nil {
				return nil // ctx ended
			}
			continue
		}
		if !r.Next() {
			err := r.Err()
			var ce *spool.CorruptionError
			switch {
			case err == nil:
			case errors.Is(err, spool.ErrClosed):
				return fmt.Errorf("ship %s: %w", s.o.Name, err)
			case errors.As(err, &ce):
				s.errs.WithLabelValues("corrupt").Inc()
				s.log.Error("ship: skipping damaged spool data", "err", err)
				r.SkipDamaged()
				continue
			default:
				s.errs.WithLabelValues("read").Inc()
				s.log.Error("ship: read spool", "err", err)
				if !s.sleep(ctx) {
					return nil
				}
				continue
			}
			drain := s.drain
			if s.draining() {
				if w.Pending() == 0 && r.AtEnd() {
					return nil
				}
				drain = nil // wait for the batches in flight
			}
			err = r.WaitAny(ctx, drain, ready)
			if err != nil {
				if errors.Is(err, spool.ErrClosed) {
					return fmt.Errorf("ship %s: %w", s.o.Name, err)
				}
				if ctx.Err() != nil {
					return nil
				}
				// The cursor could not be persisted (a full disk, say):
				// back off instead of spinning on it.
				s.errs.WithLabelValues("cursor").Inc()
				s.log.Error("ship: persist cursor", "err", err)
				if !s.sleep(ctx) {
					return nil
				}
			}
			continue
		}
		if err := w.Submit(jobCtx, s.prepare(r, bufs)); err != nil {
			return nil // ctx ended
		}
	}
}

// tag is what a submitted batch carries through the window: where the
// cursor goes once it is done, and the memory it used, for the next.
type tag struct {
	end     spool.Position
	payload []byte
	events  []sinks.Event
}

// batchBufs recycles the payloads (taken from the reader) and event slices
// of completed batches, given back to the reader to read into: a batch's
// events alias its payload, and the window hands a
// batch back only once every Send of it has returned (sinks keep nothing
// of a batch after Send), so its memory is free again then.
type batchBufs struct {
	payloads [][]byte
	events   [][]sinks.Event
}

func (p *batchBufs) get() ([]byte, []sinks.Event) {
	var b []byte
	var ev []sinks.Event
	if k := len(p.payloads); k > 0 {
		b, p.payloads = p.payloads[k-1], p.payloads[:k-1]
	}
	if k := len(p.events); k > 0 {
		ev, p.events = p.events[k-1], p.events[:k-1]
	}
	return b, ev[:0]
}

// put keeps a few buffers: the window holds at most MaxPending batches.
func (p *batchBufs) put(t tag) {
	if t.payload != nil && len(p.payloads) < 4 {
		p.payloads = append(p.payloads, t.payload[:0])
	}
	if t.events != nil && len(p.events) < 4 {
		clear(t.events[:cap(t.events)]) // drop references to the payload
		p.events = append(p.events, t.events[:0])
	}
}

// prepare takes the payload of the record r.Next just read (giving the
// reader a recycled buffer for the next one) and decodes it into a batch
// for the window.
func (s *Shipper) prepare(r *spool.Reader, bufs *batchBufs) deliver.Batch {
	rec := r.Record()
	spare, events := bufs.get()
	payload := r.TakePayload(spare)
	batch := sinks.Batch{Events: events}
	if err := sinks.DecodeBatch(payload, &batch); err != nil {
		s.errs.WithLabelValues("decode").Inc()
		s.log.Error("ship: undecodable spool record, dead-lettered", "seq", rec.Seq, "err", err)
		s.deadLetterRaw(rec, err)
		batch.Events = nil // an empty batch: completes at once, in order
	}
	return deliver.Batch{Events: batch.Events, Tag: tag{end: rec.End, payload: payload, events: batch.Events},
		Valid: func() bool { return r.Holds(rec) }}
}

// popDone takes the batches completed in order out of the window (freeing
// their places and recycling their memory) and returns the end of the last
// one whose data is still in the spool: where the cursor may go. ok is
// false when there is nowhere new to go.
func (s *Shipper) popDone(w *deliver.Window, bufs *batchBufs) (end spool.Position, ok bool) {
	for {
		d, more := w.Next()
		if !more {
			return end, ok
		}
		t := d.Tag.(tag)
		bufs.put(t)
		if d.Gone {
			// drop_oldest deleted the record, the spool counted it;
			// the reader has moved on to the oldest remaining data.
			continue
		}
		end, ok = t.end, true
	}
}

// ackTo moves the cursor to end, past batches every event of which was
// acknowledged or dead-lettered (popDone).
func (s *Shipper) ackTo(r *spool.Reader, end spool.Position) error {
	if err := r.AckTo(end); err != nil {
		if errors.Is(err, spool.ErrClosed) {
			return fmt.Errorf("ship %s: %w", s.o.Name, err)
		}
		s.errs.WithLabelValues("cursor").Inc()
		s.log.Error("ship: persist cursor", "err", err)
	}
	return nil
}

// sleep waits out the next interval of the shipper's own backoff (spool
// read and cursor errors); false when ctx is done.
func (s *Shipper) sleep(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.o.Clock.After(s.bo.NextBackOff()):
		return true
	}
}

// deadLetterLine is one line of <Name>.ndjson.
type deadLetterLine struct {
	Time     time.Time       `json:"@timestamp"`
	Sink     string          `json:"sink"`
	Error    string          `json:"error"`
	ID       string          `json:"event_id,omitempty"`
	Key      string          `json:"key,omitempty"`
	Document json.RawMessage `json:"document,omitempty"`
	// DocumentText holds a document that is not valid JSON.
	DocumentText string `json:"document_text,omitempty"`
	// RecordSeq and PayloadBase64 describe an undecodable spool record.
	RecordSeq     uint64 `json:"record_seq,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

// deadLetterEach dead-letters events, each with its own error, in one
// write and one fsync.
func (s *Shipper) deadLetterEach(events []sinks.Event, errs []error) {
	lines := make([]deadLetterLine, len(events))
	now := time.Now().UTC()
	var reports uint64
	for i, ev := range events {
		if isLossReport(ev.Doc) {
			reports++
		}
		l := deadLetterLine{Time: now, Sink: s.o.Name, Error: errs[i].Error(), ID: ev.ID, Key: ev.Key}
		if json.Valid(ev.Doc) {
			l.Document = ev.Doc
		} else {
			l.DocumentText = string(ev.Doc)
		}
		lines[i] = l
	}
	s.writeDeadLetter(lines, uint64(len(events))-reports, reports)
}

// lossReportMark is how every loss document starts its event object (see
// schema.Encoder.AppendLoss). Inside a JSON string a quote is escaped, so
// no other document can hold it.
var lossReportMark = []byte(`"event":{"kind":"pipeline_error","action":"events_lost"`)

func isLossReport(doc []byte) bool { return bytes.Contains(doc, lossReportMark) }

func (s *Shipper) deadLetterRaw(rec spool.Record, cause error) {
	s.writeDeadLetter([]deadLetterLine{{Time: time.Now().UTC(), Sink: s.o.Name, Error: cause.Error(),
		RecordSeq: rec.Seq, PayloadBase64: base64.StdEncoding.EncodeToString(rec.Payload)}}, uint64(rec.Events), 0)
}

// writeDeadLetter appends lines and syncs the file. The events count as
// rejected even if the file cannot be written (the failure is logged and
// counted as kind "deadletter"): a broken dead-letter directory must not
// stop the sink. reports are loss reports among the lines: dead-lettered,
// counted in the sink's errors, but not reported as a new loss.
func (s *Shipper) writeDeadLetter(lines []deadLetterLine, events, reports uint64) {
	s.errs.WithLabelValues("rejected").Add(float64(events + reports))
	if events > 0 {
		s.o.OnRejected(events)
	}
	if reports > 0 {
		s.log.Warn("ship: loss reports rejected by the sink, dead-lettered and not reported again (their counts stay in fileward.lost.total of later reports)", "reports", reports)
	}
	var buf []byte
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			s.log.Error("ship: encode dead-letter line", "err", err)
			continue
		}
		buf = append(append(buf, b...), '\n')
	}
	err := s.dl.write(buf)
	if err != nil {
		s.errs.WithLabelValues("deadletter").Inc()
		s.log.Error("ship: write dead-letter file", "events", events, "err", err)
		return
	}
	s.log.Warn("ship: events rejected by the sink, dead-lettered", "events", events+reports, "err", lines[0].Error,
		"file", s.dl.Name())
}
