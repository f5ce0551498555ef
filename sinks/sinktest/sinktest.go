package sinktest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks"
)

// Verifier reports what the destination holds: how many times each
// event.id arrived. The suite calls it after Send has returned; it may wait
// for the destination to settle (a refresh, a consumer catching up to the
// high watermark) but must be bounded by ctx.
type Verifier func(ctx context.Context) (map[string]int, error)

// NewSink returns a sink that writes to a fresh, empty destination used by
// nothing else, and a Verifier for that destination. It registers any
// teardown of the destination with t.Cleanup. The suite itself calls Close
// on the sink.
type NewSink func(t *testing.T) (sinks.Sink, Verifier)

// Prompt is how long Send and Close may take to return once their context
// is done, or once asked to close.
const Prompt = 5 * time.Second

// Run runs the conformance suite against the sinks newSink builds, one per
// subtest.
func Run(t *testing.T, newSink NewSink) {
	t.Helper()
	t.Run("DeliversBatch", func(t *testing.T) { testDelivers(t, newSink) })
	t.Run("EmptyBatch", func(t *testing.T) { testEmpty(t, newSink) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, newSink) })
	t.Run("ExpiringContext", func(t *testing.T) { testExpiring(t, newSink) })
	t.Run("Close", func(t *testing.T) { testClose(t, newSink) })
}

// open builds a sink and closes it when the test ends.
func open(t *testing.T, newSink NewSink) (sinks.Sink, Verifier) {
	t.Helper()
	s, v := newSink(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Prompt)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, v
}

// send sends evs and fails the test unless everything was acknowledged.
func send(t *testing.T, s sinks.Sink, evs []sinks.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Send(ctx, &sinks.Batch{Events: evs})
	if err != nil {
		t.Fatalf("Send(%d events): %v", len(evs), err)
	}
	if len(res.Failures) != 0 {
		t.Fatalf("Send(%d events): %d failures, first: index %d: %v",
			len(evs), len(res.Failures), res.Failures[0].Index, res.Failures[0].Err)
	}
}

// verify asks v for the destination's ids.
func verify(t *testing.T, v Verifier) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := v(ctx)
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	return got
}

// ExpectExactly fails t unless got holds every id of want exactly once and
// nothing else.
func ExpectExactly(t testing.TB, got map[string]int, want []sinks.Event) {
	t.Helper()
	wantSet := make(map[string]bool, len(want))
	for _, ev := range want {
		wantSet[ev.ID] = true
	}
	var missing, dup, extra []string
	for id := range wantSet {
		switch n := got[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
	}
	for id := range got {
		if !wantSet[id] {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(dup)+len(extra) > 0 {
		t.Fatalf("destination holds %d ids, want %d exactly once: %d missing %s, %d duplicated %s, %d unexpected %s",
			len(got), len(wantSet), len(missing), sample(missing), len(dup), sample(dup), len(extra), sample(extra))
	}
}

func sample(ids []string) string {
	sort.Strings(ids)
	if len(ids) > 5 {
		ids = append(ids[:5:5], "…")
	}
	return "[" + strings.Join(ids, " ") + "]"
}

func testDelivers(t *testing.T, newSink NewSink) {
	s, v := open(t, newSink)
	first := Events("deliver", 1000, 4)
	send(t, s, first)
	ExpectExactly(t, verify(t, v), first)

	// A second batch adds to the first, and a one-event batch works.
	second := Events("deliver2", 1, 1)
	send(t, s, second)
	ExpectExactly(t, verify(t, v), append(first, second...))
}

func testEmpty(t *testing.T, newSink NewSink) {
	s, v := open(t, newSink)
	for _, b := range []*sinks.Batch{{}, {Events: []sinks.Event{}}} {
		ctx, cancel := context.WithTimeout(context.Background(), Prompt)
		res, err := s.Send(ctx, b)
		cancel()
		if err != nil || len(res.Failures) != 0 {
			t.Fatalf("Send(empty) = %+v, %v; want no failures and no error", res, err)
		}
	}
	ExpectExactly(t, verify(t, v), nil)
}

// checkAbandoned checks what Send said when its context ended: a retryable
// error (the shipper must retry, never dead-letter, what shutdown
// interrupted), returned promptly.
func checkAbandoned(t *testing.T, err error, took time.Duration, want error) {
	t.Helper()
	if took > Prompt {
		t.Errorf("Send took %v after its context ended, want under %v", took, Prompt)
	}
	if err == nil {
		return
	}
	if sinks.IsPermanent(err) {
		t.Errorf("Send with an ended context returned a permanent error %v; an interrupted send must be retried", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("Send with an ended context = %v, want an error wrapping %v", err, want)
	}
}

func testCancelled(t *testing.T, newSink NewSink) {
	s, v := open(t, newSink)
	evs := Events("cancel", 200, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := s.Send(ctx, &sinks.Batch{Events: evs})
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Send with a cancelled context returned no error")
	}
	checkAbandoned(t, err, took, context.Canceled)

	// The sink stays usable, and the retry delivers everything.
	send(t, s, evs)
	got := verify(t, v)
	for _, ev := range evs {
		if got[ev.ID] < 1 {
			t.Fatalf("after the retry, %s is missing", ev.ID)
		}
	}
}

func testExpiring(t *testing.T, newSink NewSink) {
	s, v := open(t, newSink)
	evs := Events("expire", 4000, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := s.Send(ctx, &sinks.Batch{Events: evs})
	<-ctx.Done()
	took := time.Since(start) - time.Millisecond
	checkAbandoned(t, err, took, nil)
	for _, f := range res.Failures {
		if sinks.IsPermanent(f.Err) {
			t.Errorf("failure %d is permanent (%v) although only the context expired", f.Index, f.Err)
		}
	}

	// Whatever happened, the retry delivers everything and nothing else.
	send(t, s, evs)
	got := verify(t, v)
	want := make(map[string]bool, len(evs))
	for _, ev := range evs {
		want[ev.ID] = true
		if got[ev.ID] < 1 {
			t.Fatalf("after the retry, %s is missing", ev.ID)
		}
	}
	for id := range got {
		if !want[id] {
			t.Fatalf("destination holds %s, which was never sent", id)
		}
	}
}

func testClose(t *testing.T, newSink NewSink) {
	t.Run("Unused", func(t *testing.T) {
		s, _ := newSink(t)
		closeWithin(t, s)
	})
	t.Run("AfterSend", func(t *testing.T) {
		s, v := newSink(t)
		evs := Events("close", 300, 3)
		send(t, s, evs)
		closeWithin(t, s)
		ExpectExactly(t, verify(t, v), evs)
	})
}

func closeWithin(t *testing.T, s sinks.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Prompt)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > Prompt {
		t.Fatalf("Close took %v, want under %v", took, Prompt)
	}
}
