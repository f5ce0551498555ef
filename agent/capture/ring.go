package capture

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/fileward/fileward/schema"
)

// Ring is the bounded queue between a source's read loop and the pipeline.
// TryPush never blocks: when the ring is full the event is dropped and counted
// as ring_full. Any number of producers may push; one consumer pops.
//
// It is a buffered channel of values. A full channel makes the select in
// TryPush fall through at once, so the push cost stays flat however long the
// consumer stalls (BenchmarkRingPushFull shows it).
type Ring struct {
	ch     chan Event
	drops  *Drops
	pushed atomic.Uint64
}

// NewRing returns a ring that holds up to capacity events and counts its
// drops in drops.
func NewRing(capacity int, drops *Drops) *Ring {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring{ch: make(chan Event, capacity), drops: drops}
}

// TryPush hands ev to the consumer, or drops and counts it when the ring is
// full. It reports whether ev was queued.
func (r *Ring) TryPush(ev *Event) bool {
	select {
	case r.ch <- *ev:
		r.pushed.Add(1)
		return true
	default:
		r.drops.Add(schema.LossRingFull, 1)
		return false
	}
}

// Push hands ev to the consumer, waiting for room when the ring is full. It
// is for sources with no kernel queue to protect (a replayed file), which
// may wait and must not drop. It returns false, ev not queued and nothing
// counted, when ctx is done first.
func (r *Ring) Push(ctx context.Context, ev *Event) bool {
	select {
	case r.ch <- *ev:
		r.pushed.Add(1)
		return true
	default:
	}
	select {
	case r.ch <- *ev:
		r.pushed.Add(1)
		return true
	case <-ctx.Done():
		return false
	}
}

// Pop waits for the next event. It returns false when ctx is done.
func (r *Ring) Pop(ctx context.Context, ev *Event) bool {
	select {
	case *ev = <-r.ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// PopOr waits for the next event until ctx is done or timer fires.
// It returns (true, false) for an event, (false, true) on the timer and
// (false, false) when ctx is done.
func (r *Ring) PopOr(ctx context.Context, timer <-chan time.Time, ev *Event) (got, fired bool) {
	select {
	case *ev = <-r.ch:
		return true, false
	case <-timer:
		return false, true
	case <-ctx.Done():
		return false, false
	}
}

// TryPop returns the next event if one is queued, without waiting.
func (r *Ring) TryPop(ev *Event) bool {
	select {
	case *ev = <-r.ch:
		return true
	default:
		return false
	}
}

// Len is the number of queued events (fileward_ring_depth).
func (r *Ring) Len() int { return len(r.ch) }

// Cap is the ring's capacity.
func (r *Ring) Cap() int { return cap(r.ch) }

// Pushed is the number of events queued so far (fileward_events_captured_total).
func (r *Ring) Pushed() uint64 { return r.pushed.Load() }
