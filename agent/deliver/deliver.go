// Package deliver drives a sinks.Sink with several batches in flight and
// back-pressure, for the agent's shippers and the collector alike.
//
// A Window accepts batches in order (Submit) and hands them back in the
// same order once each is complete (Next): every event acknowledged by the
// sink or refused for good (given to Options.Rejected), or the batch
// abandoned because its data left the source (Batch.Valid). Completion in
// submission order is what lets a caller move a cursor only past delivered
// data while later batches are still in flight.
//
// Inside, each batch runs on its own: acknowledged events are done; only the
// failed ones are sent again, after the batch's own backoff, which resets
// whenever an attempt delivered something and grows while attempts deliver
// nothing. Other batches keep flowing meanwhile, up to Options.Workers Sends
// at once. A throttled answer (HTTP 429, whole request or item) halves the
// number of Sends allowed in flight, down to one; an answer without
// throttling raises it again by one per round (AIMD), up to Workers. So a
// cluster under load slows the sender instead of stopping it.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fileward/fileward/sinks"
)

// Backoff is a batch's retry schedule. Zero fields take the defaults:
// 500ms, 30s, 2, 0.5.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64 // randomization factor, 0..1
}

func (b Backoff) withDefaults() Backoff {
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
	return b
}

// Clock makes backoff waits testable. After has the meaning of time.After.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Throttled is implemented by sink errors that can say the destination
// asked the sender to slow down (HTTP 429).
type Throttled interface {
	Throttled() bool
}

// IsThrottled reports whether err, or an error it wraps, is Throttled.
func IsThrottled(err error) bool {
	var t Throttled
	return errors.As(err, &t) && t.Throttled()
}

// Options configure a Window.
type Options struct {
	Sink sinks.Sink
	// Workers is the most Sends in flight at once (default 1). Above 1,
	// the Sink's Send must be safe for concurrent use.
	Workers int
	// MaxPending bounds the batches submitted and not yet handed back by
	// Next. Default: 1 with one worker (strictly one batch at a time, as
	// an ordered destination such as Kafka needs), else 16 × Workers.
	MaxPending int
	Backoff    Backoff
	Clock      Clock // nil is the real clock
	Logger     *slog.Logger
	// Rejected is given the events the sink refused for good, with their
	// errors, to dead-letter them. Calls are serialised.
	Rejected func(events []sinks.Event, errs []error)
	// Acked, Retried and SendFailed feed metrics: events acknowledged,
	// events to send again, and whole Sends that failed. Optional; they
	// may be called concurrently.
	Acked      func(n int)
	Retried    func(n int)
	SendFailed func(err error)
}

// Batch is one unit of work: the events of one source record.
type Batch struct {
	Events []sinks.Event
	// Tag is the caller's, handed back by Next (a spool position, an
	// offset).
	Tag any
	// Valid, when set, is asked before each Send; false abandons the
	// batch (its data left the source, which counted it). It may be
	// called from another goroutine.
	Valid func() bool
}

// Done is a completed batch, handed back by Next in submission order.
type Done struct {
	Tag any
	// Gone is true when Valid said the data left the source: not
	// delivered, not rejected.
	Gone bool
}

type job struct {
	b         Batch
	done      bool
	gone      bool
	unhealthy bool // waiting after an attempt that delivered nothing
}

// Window runs batches against one sink. Submit, Next, Full, Pending and
// Ready are called by one goroutine (the owner); the batches run on their
// own goroutines until ctx ends.
type Window struct {
	o     Options
	clock Clock
	log   *slog.Logger

	mu       sync.Mutex
	jobs     []*job // submitted, in order; the head is the oldest not handed back
	inflight int
	limit    float64       // Sends allowed in flight (AIMD), 1..Workers
	epoch    uint64        // bumped on each decrease: one decrease per round of Sends
	ready    chan struct{} // closed and replaced on every completion and freed slot
	rejMu    sync.Mutex
	wg       sync.WaitGroup
}

// New checks o and returns an empty Window.
func New(o Options) (*Window, error) {
	if o.Sink == nil {
		return nil, errors.New("deliver: Sink is nil")
	}
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.MaxPending < 1 {
		o.MaxPending = 1
		if o.Workers > 1 {
			o.MaxPending = 16 * o.Workers
		}
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rejected == nil {
		o.Rejected = func([]sinks.Event, []error) {}
	}
	if o.Acked == nil {
		o.Acked = func(int) {}
	}
	if o.Retried == nil {
		o.Retried = func(int) {}
	}
	if o.SendFailed == nil {
		o.SendFailed = func(error) {}
	}
	w := &Window{o: o, clock: o.Clock, log: o.Logger, limit: float64(o.Workers), ready: make(chan struct{})}
	if w.clock == nil {
		w.clock = realClock{}
	}
	return w, nil
}

// Full reports whether MaxPending batches are outstanding.
func (w *Window) Full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.jobs) >= w.o.MaxPending
}

// Pending is the number of batches submitted and not yet handed back.
func (w *Window) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.jobs)
}

// Ready returns a channel that is closed at the next completion or freed
// Send slot after the call. Take it before checking Next or Full, so that
// nothing happening in between is missed.
func (w *Window) Ready() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ready
}

// Limit is the number of Sends currently allowed in flight.
func (w *Window) Limit() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}

// Healthy is false while a batch waits after an attempt that delivered
// nothing (the destination is failing).
func (w *Window) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range w.jobs {
		if j.unhealthy {
			return false
		}
	}
	return true
}

// wakeLocked wakes Ready's waiters. w.mu is held.
func (w *Window) wakeLocked() {
	close(w.ready)
	w.ready = make(chan struct{})
}

// Submit starts b. It blocks while the window is Full, and returns ctx's
// error if ctx ends first. ctx also bounds the batch's Sends and waits: when
// it ends, unfinished batches stop and are never handed back.
func (w *Window) Submit(ctx context.Context, b Batch) error {
	for {
		w.mu.Lock()
		if len(w.jobs) < w.o.MaxPending {
			break
		}
		ch := w.ready
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	j := &job{b: b}
	w.jobs = append(w.jobs, j)
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(ctx, j)
	}()
	return nil
}

// Next hands back the oldest batch if it is complete.
func (w *Window) Next() (Done, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.jobs) == 0 || !w.jobs[0].done {
		return Done{}, false
	}
	j := w.jobs[0]
	w.jobs[0] = nil
	w.jobs = w.jobs[1:]
	w.wakeLocked() // a free place for Submit
	return Done{Tag: j.b.Tag, Gone: j.gone}, true
}

// Wait waits for every batch goroutine to return (cancel their ctx first).
func (w *Window) Wait() { w.wg.Wait() }

// acquire takes a Send slot under the AIMD limit and returns the epoch the
// Send starts in.
func (w *Window) acquire(ctx context.Context) (uint64, bool) {
	for {
		w.mu.Lock()
		if float64(w.inflight) < w.limit || w.inflight == 0 {
			w.inflight++
			e := w.epoch
			w.mu.Unlock()
			return e, true
		}
		ch := w.ready
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// Outcomes of a Send, for the AIMD limit.
const (
	sendFailed    = iota // no answer to judge by: no change
	sendThrottled        // a 429 somewhere: halve, once per round
	sendAnswered         // an answer without throttling: raise
)

// release frees a Send slot and adjusts the limit: halved on throttling
// (once per round of Sends: only a Send that started after the last
// decrease can decrease it again, as TCP does once per round trip), raised
// by 1/limit on an answer without throttling (about one per round).
func (w *Window) release(epoch uint64, outcome int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight--
	switch outcome {
	case sendThrottled:
		if epoch == w.epoch {
			w.limit = max(1, w.limit/2)
			w.epoch++
		}
	case sendAnswered:
		w.limit = min(float64(w.o.Workers), w.limit+1/w.limit)
	}
	w.wakeLocked()
}

func (w *Window) setUnhealthy(j *job, v bool) {
	w.mu.Lock()
	j.unhealthy = v
	w.mu.Unlock()
}

func (w *Window) finish(j *job, gone bool) {
	w.mu.Lock()
	j.done, j.gone, j.unhealthy = true, gone, false
	w.wakeLocked()
	w.mu.Unlock()
}

func (w *Window) reject(events []sinks.Event, errs []error) {
	w.rejMu.Lock()
	defer w.rejMu.Unlock()
	w.o.Rejected(events, errs)
}

// run delivers one batch: it returns once every event is acknowledged or
// rejected, the batch is gone, or ctx ended (then the batch stays
// unfinished).
func (w *Window) run(ctx context.Context, j *job) {
	b := w.o.Backoff
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.Initial),
		backoff.WithMaxInterval(b.Max),
		backoff.WithMultiplier(b.Multiplier),
		backoff.WithRandomizationFactor(b.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
	pending := j.b.Events
	for len(pending) > 0 {
		if j.b.Valid != nil && !j.b.Valid() {
			w.finish(j, true)
			return
		}
		epoch, ok := w.acquire(ctx)
		if !ok {
			return
		}
		res, err := w.o.Sink.Send(ctx, &sinks.Batch{Events: pending})
		if ctx.Err() != nil {
			w.release(epoch, sendFailed)
			return
		}
		if err != nil {
			outcome := sendFailed
			if IsThrottled(err) {
				outcome = sendThrottled
			}
			w.release(epoch, outcome)
			if sinks.IsPermanent(err) {
				errs := make([]error, len(pending))
				for i := range errs {
					errs[i] = err
				}
				w.reject(pending, errs)
				break
			}
			w.o.SendFailed(err)
			w.log.Warn("deliver: send failed, backing off", "events", len(pending), "err", err)
			w.setUnhealthy(j, true)
			if !w.sleep(ctx, bo.NextBackOff()) {
				return
			}
			continue
		}
		failed := make(map[int]error, len(res.Failures))
		throttled := false
		for _, f := range res.Failures {
			if f.Index < 0 || f.Index >= len(pending) {
				w.log.Error("deliver: sink reported a failure for an index outside the batch", "index", f.Index)
				continue
			}
			if _, dup := failed[f.Index]; !dup {
				failed[f.Index] = f.Err
				throttled = throttled || IsThrottled(f.Err)
			}
		}
		outcome := sendAnswered
		if throttled {
			outcome = sendThrottled
		}
		w.release(epoch, outcome)
		acked := len(pending) - len(failed)
		w.o.Acked(acked)
		if len(failed) == 0 {
			break
		}
		var retry, rejected []sinks.Event
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
		if len(rejected) > 0 {
			w.reject(rejected, rejErrs)
		}
		pending = retry
		if len(pending) == 0 {
			break
		}
		w.o.Retried(len(pending))
		if acked > 0 || len(rejected) > 0 {
			bo.Reset() // progress: only the failed events wait, and not long
			w.setUnhealthy(j, false)
		} else {
			w.setUnhealthy(j, true)
		}
		w.log.Debug("deliver: partial failure, retrying the failed events", "events", len(pending))
		if !w.sleep(ctx, bo.NextBackOff()) {
			return
		}
	}
	w.finish(j, false)
}

func (w *Window) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-w.clock.After(d):
		return true
	}
}

// String describes the window for logs.
func (w *Window) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("deliver.Window{pending %d, in flight %d, limit %.1f of %d}", len(w.jobs), w.inflight, w.limit, w.o.Workers)
}
