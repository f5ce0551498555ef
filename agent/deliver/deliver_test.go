package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks"
)

type throttleErr struct{}

func (throttleErr) Error() string   { return "429 es_rejected_execution_exception" }
func (throttleErr) Throttled() bool { return true }

// scriptSink answers each Send with script(call, batch); it records the
// most Sends seen in flight at once.
type scriptSink struct {
	mu       sync.Mutex
	calls    int
	inflight int
	maxIn    int
	got      map[string]int
	script   func(call int, b *sinks.Batch) (sinks.Result, error)
	delay    time.Duration
}

func (s *scriptSink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.inflight++
	s.maxIn = max(s.maxIn, s.inflight)
	s.mu.Unlock()
	time.Sleep(s.delay)
	res, err := s.script(call, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if err == nil {
		failed := map[int]bool{}
		for _, f := range res.Failures {
			failed[f.Index] = true
		}
		for i, e := range b.Events {
			if !failed[i] {
				s.got[e.ID]++
			}
		}
	}
	return res, err
}

func (s *scriptSink) Close(context.Context) error { return nil }

type instantClock struct{}

func (instantClock) After(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func events(prefix string, n int) []sinks.Event {
	evs := make([]sinks.Event, n)
	for i := range evs {
		evs[i] = sinks.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Doc: []byte(`{}`)}
	}
	return evs
}

// drive submits batches and collects the completions in order.
func drive(t *testing.T, w *Window, batches []Batch) []Done {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Done
	go func() {
		for _, b := range batches {
			if err := w.Submit(ctx, b); err != nil {
				return
			}
		}
	}()
	for len(out) < len(batches) {
		ready := w.Ready()
		if d, ok := w.Next(); ok {
			out = append(out, d)
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			t.Fatalf("only %d of %d batches completed", len(out), len(batches))
		}
	}
	return out
}

// Acknowledged events are done; only the failed ones are sent again;
// permanent failures are rejected; completions come back in order although
// a later batch finishes first.
func TestOnlyFailedEventsRetriedAndOrder(t *testing.T) {
	sink := &scriptSink{got: map[string]int{}, script: func(call int, b *sinks.Batch) (sinks.Result, error) {
		var res sinks.Result
		for i, e := range b.Events {
			switch {
			case e.ID == "a-1" && call < 4: // throttled three times
				res.Failures = append(res.Failures, sinks.Failure{Index: i, Err: throttleErr{}})
			case e.ID == "a-2":
				res.Failures = append(res.Failures, sinks.Failure{Index: i, Err: sinks.Permanent(errors.New("400"))})
			}
		}
		return res, nil
	}}
	var rejected []string
	w, _ := New(Options{Sink: sink, Workers: 2, Clock: instantClock{},
		Rejected: func(evs []sinks.Event, _ []error) {
			for _, e := range evs {
				rejected = append(rejected, e.ID)
			}
		}})
	done := drive(t, w, []Batch{{Events: events("a", 4), Tag: 1}, {Events: events("b", 4), Tag: 2}})
	if done[0].Tag != 1 || done[1].Tag != 2 {
		t.Fatalf("completions out of order: %+v", done)
	}
	for id, n := range sink.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(sink.got) != 7 || len(rejected) != 1 || rejected[0] != "a-2" {
		t.Errorf("delivered %v, rejected %v", sink.got, rejected)
	}
}

// Several Sends in flight with no throttling; a throttled answer brings the
// limit down to one, and answers without throttling raise it again.
func TestAIMD(t *testing.T) {
	var mu sync.Mutex
	throttle := true
	sink := &scriptSink{got: map[string]int{}, delay: 5 * time.Millisecond, script: func(_ int, b *sinks.Batch) (sinks.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if throttle {
			return sinks.Result{Failures: []sinks.Failure{{Index: 0, Err: throttleErr{}}}}, nil
		}
		return sinks.Result{}, nil
	}}
	w, _ := New(Options{Sink: sink, Workers: 4, Clock: instantClock{}})
	var bs []Batch
	for i := 0; i < 40; i++ {
		bs = append(bs, Batch{Events: events(fmt.Sprint(i), 3), Tag: i})
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		throttle = false
		mu.Unlock()
	}()
	// Throttled: the limit falls to 1.
	deadline := time.Now().Add(5 * time.Second)
	finished := make(chan []Done, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []Done
		go func() {
			for _, b := range bs {
				if w.Submit(ctx, b) != nil {
					return
				}
			}
		}()
		for len(out) < len(bs) && ctx.Err() == nil {
			ready := w.Ready()
			if d, ok := w.Next(); ok {
				out = append(out, d)
				continue
			}
			select {
			case <-ready:
			case <-ctx.Done():
			}
		}
		finished <- out
	}()
	for w.Limit() > 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w.Limit() != 1 {
		t.Fatalf("limit %v under throttling, want 1", w.Limit())
	}
	// Unthrottled: it rises back to Workers.
	for w.Limit() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w.Limit() != 4 {
		t.Fatalf("limit %v after throttling stopped, want 4", w.Limit())
	}
	if out := <-finished; len(out) != len(bs) {
		t.Fatalf("%d of %d batches completed", len(out), len(bs))
	}
	w.Wait()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.maxIn < 2 || sink.maxIn > 4 {
		t.Errorf("at most %d Sends in flight, want 2..4", sink.maxIn)
	}
}

// A batch whose whole Sends fail keeps backing off with growing waits and
// makes the window unhealthy; Valid false abandons it as Gone.
func TestWholeFailuresBackOffAndGone(t *testing.T) {
	sink := &scriptSink{got: map[string]int{}, script: func(int, *sinks.Batch) (sinks.Result, error) {
		return sinks.Result{}, errors.New("503")
	}}
	var mu sync.Mutex
	var waits []time.Duration
	clk := clockFunc(func(d time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c
	})
	w, _ := New(Options{Sink: sink, Clock: clk, Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Multiplier: 2, Jitter: 0.000001}})
	calls := 0
	valid := func() bool {
		calls++
		return calls <= 5
	}
	done := drive(t, w, []Batch{{Events: events("x", 2), Tag: "x", Valid: valid}})
	if !done[0].Gone {
		t.Fatalf("done = %+v, want Gone", done[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 5 || waits[0] > waits[1] || waits[3] < 39*time.Millisecond {
		t.Errorf("waits %v: want five, growing to the 40ms cap", waits)
	}
}

type clockFunc func(time.Duration) <-chan time.Time

func (f clockFunc) After(d time.Duration) <-chan time.Time { return f(d) }
