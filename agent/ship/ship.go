package ship

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

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
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Shipper.
type Options struct {
	Name          string // sink name; also the cursor name and the dead-letter file name
	Sink          sinks.Sink
	Spool         *spool.Spool
	Backoff       Backoff
	DeadLetterDir string // <data_dir>/dead-letter; file <Name>.ndjson
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// OnRejected is told how many events were dead-lettered (the agent
	// counts them as lost, reason "rejected"). It must not block.
	OnRejected func(events uint64)
	// Clock times the backoff waits; nil is the real clock.
	Clock Clock
}

// Shipper delivers the spool to one sink.
type Shipper struct {
	o       Options
	log     *slog.Logger
	bo      *backoff.ExponentialBackOff
	acked   prometheus.Counter
	errs    *prometheus.CounterVec
	healthy atomic.Bool
	drain   chan struct{}
	drainMu sync.Once
	running atomic.Bool
	dl      *os.File
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
	s.healthy.Store(true)
	if o.Registerer != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fileward_sink_lag_events",
			Help: "Events in the spool the sink has not acknowledged.", ConstLabels: labels},
			func() float64 {
				l, _ := o.Spool.Lag(o.Name)
				return float64(l.Events)
			})
		for _, c := range []prometheus.Collector{s.acked, s.errs, lag} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ship %s: register metrics: %w", o.Name, err)
			}
		}
	}
	return s, nil
}

// Healthy is false while the shipper is backing off after a failure.
func (s *Shipper) Healthy() bool { return s.healthy.Load() }

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

var errGone = errors.New("record dropped from the spool")

// Run ships until ctx is done (returning nil; the unsent rest stays spooled
// for the next start) or, after Drain, until the cursor reaches the end. An
// in-flight Send gets ctx. It returns an error if the cursor cannot be
// opened or the spool is closed under it. Run is called once.
func (s *Shipper) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("ship: Run called twice")
	}
	r, err := s.o.Spool.Reader(s.o.Name)
	if err != nil {
		return fmt.Errorf("ship %s: %w", s.o.Name, err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			s.log.Error("ship: persist cursor", "err", err)
		}
		if s.dl != nil {
			s.dl.Close()
		}
	}()
	var batch sinks.Batch
	for {
		if ctx.Err() != nil {
			return nil
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
			if s.draining() && r.AtEnd() {
				return nil
			}
			err = r.Wait(ctx, s.drain)
			if err == nil {
				s.healthy.Store(true) // caught up, cursor persisted
			}
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
		rec := r.Record()
		if err := s.deliver(ctx, r, rec, &batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// errGone: drop_oldest deleted the record, the spool counted
			// it; Next moves on to the oldest remaining data.
			continue
		}
		if err := r.Ack(); err != nil {
			if errors.Is(err, spool.ErrClosed) {
				return fmt.Errorf("ship %s: %w", s.o.Name, err)
			}
			s.errs.WithLabelValues("cursor").Inc()
			s.log.Error("ship: persist cursor", "err", err)
		}
	}
}

// deliver returns nil once every event of rec is acknowledged or
// dead-lettered, errGone if the record left the spool first, or ctx's error.
func (s *Shipper) deliver(ctx context.Context, r *spool.Reader, rec spool.Record, batch *sinks.Batch) error {
	if err := sinks.DecodeBatch(rec.Payload, batch); err != nil {
		s.errs.WithLabelValues("decode").Inc()
		s.log.Error("ship: undecodable spool record, dead-lettered", "seq", rec.Seq, "err", err)
		s.deadLetterRaw(rec, err)
		return nil
	}
	pending := batch.Events
	for len(pending) > 0 {
		if !r.Valid() {
			return errGone
		}
		sub := sinks.Batch{Events: pending}
		res, err := s.o.Sink.Send(ctx, &sub)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if sinks.IsPermanent(err) {
				s.deadLetter(pending, err)
				break
			}
			s.errs.WithLabelValues("send").Inc()
			s.log.Warn("ship: send failed, backing off", "events", len(pending), "err", err)
			if !s.sleep(ctx) {
				return ctx.Err()
			}
			continue
		}
		failed := make(map[int]error, len(res.Failures))
		for _, f := range res.Failures {
			if f.Index >= 0 && f.Index < len(pending) {
				if _, dup := failed[f.Index]; !dup {
					failed[f.Index] = f.Err
				}
			} else {
				s.log.Error("ship: sink reported a failure for an index outside the batch", "index", f.Index)
			}
		}
		s.acked.Add(float64(len(pending) - len(failed)))
		if len(failed) == 0 {
			break
		}
		var retry []sinks.Event
		var rejected []sinks.Event
		var rejErrs []error
		for i := range pending {
			ferr, ok := failed[i]
			switch {
			case !ok:
			case sinks.IsPermanent(ferr):
				rejected = append(rejected, pending[i])
				rejErrs = append(rejErrs, ferr)
			default:
				retry = append(retry, pending[i])
			}
		}
		for i := range rejected {
			s.deadLetter(rejected[i:i+1], rejErrs[i])
		}
		pending = retry
		if len(pending) > 0 {
			s.errs.WithLabelValues("retry").Add(float64(len(pending)))
			s.log.Warn("ship: partial failure, retrying the failed events", "events", len(pending))
			if !s.sleep(ctx) {
				return ctx.Err()
			}
		}
	}
	s.bo.Reset()
	s.healthy.Store(true)
	return nil
}

// sleep waits out the next backoff interval; false when ctx is done.
func (s *Shipper) sleep(ctx context.Context) bool {
	s.healthy.Store(false)
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

func (s *Shipper) deadLetter(events []sinks.Event, cause error) {
	lines := make([]deadLetterLine, len(events))
	now := time.Now().UTC()
	for i, ev := range events {
		l := deadLetterLine{Time: now, Sink: s.o.Name, Error: cause.Error(), ID: ev.ID, Key: ev.Key}
		if json.Valid(ev.Doc) {
			l.Document = ev.Doc
		} else {
			l.DocumentText = string(ev.Doc)
		}
		lines[i] = l
	}
	s.writeDeadLetter(lines, uint64(len(events)))
}

func (s *Shipper) deadLetterRaw(rec spool.Record, cause error) {
	s.writeDeadLetter([]deadLetterLine{{Time: time.Now().UTC(), Sink: s.o.Name, Error: cause.Error(),
		RecordSeq: rec.Seq, PayloadBase64: base64.StdEncoding.EncodeToString(rec.Payload)}}, uint64(rec.Events))
}

// writeDeadLetter appends lines and syncs the file. The events count as
// rejected even if the file cannot be written (the failure is logged and
// counted as kind "deadletter"): a broken dead-letter directory must not
// stop the sink.
func (s *Shipper) writeDeadLetter(lines []deadLetterLine, events uint64) {
	s.errs.WithLabelValues("rejected").Add(float64(events))
	s.o.OnRejected(events)
	var buf []byte
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			s.log.Error("ship: encode dead-letter line", "err", err)
			continue
		}
		buf = append(append(buf, b...), '\n')
	}
	err := s.openDeadLetter()
	if err == nil {
		if _, err = s.dl.Write(buf); err == nil {
			err = s.dl.Sync()
		}
	}
	if err != nil {
		s.errs.WithLabelValues("deadletter").Inc()
		s.log.Error("ship: write dead-letter file", "events", events, "err", err)
		return
	}
	s.log.Warn("ship: events rejected by the sink, dead-lettered", "events", events, "err", lines[0].Error,
		"file", s.dl.Name())
}

func (s *Shipper) openDeadLetter() error {
	if s.dl != nil {
		return nil
	}
	if err := os.MkdirAll(s.o.DeadLetterDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.o.DeadLetterDir, s.o.Name+".ndjson"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	s.dl = f
	return nil
}
