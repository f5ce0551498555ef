package capture

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/fileward/fileward/schema"
)

// Ring is the bounded queue between a source's read loop and the pipeline.
// TryPush never blocks: when the ring is full the event is dropped and counted
// as ring_full. Any number of producers may push; one consumer pops.
//
// The ring is bounded twice: in events (capacity) and in bytes (maxBytes,
// an estimate of the memory the queued events hold, see EventBytes). It is
// full when either bound is reached. Only queued events take memory: a slot
// is a pointer to an Event taken from a pool when pushed and given back when
// popped, so an idle ring of 65,536 slots costs 1 MiB, not 65,536 Events,
// and the garbage collector scans only what is queued.
//
// The slots are a buffered channel. A full channel makes the select in
// TryPush fall through at once, so the push cost stays flat however long the
// consumer stalls (BenchmarkRingPushFull shows it).
type Ring struct {
	ch       chan slot
	maxBytes int64
	drops    *Drops
	pool     sync.Pool

	bytes   atomic.Int64  // EventBytes of the queued events
	waiters atomic.Int32  // producers in Push waiting for room
	room    chan struct{} // capacity 1: the consumer freed room
	pushed  atomic.Uint64
}

type slot struct {
	ev   *Event
	size int64
}

// NewRing returns a ring that holds up to capacity events, with no bound in
// bytes, and counts its drops in drops.
func NewRing(capacity int, drops *Drops) *Ring {
	return NewRingBytes(capacity, 0, drops)
}

// NewRingBytes returns a ring that holds up to capacity events and up to
// maxBytes of them as EventBytes counts them (0 = no bound in bytes), and
// counts its drops in drops. One event is always admitted into an empty
// ring, however large.
func NewRingBytes(capacity int, maxBytes int64, drops *Drops) *Ring {
	if capacity < 1 {
		capacity = 1
	}
	if maxBytes < 0 {
		maxBytes = 0
	}
	r := &Ring{ch: make(chan slot, capacity), maxBytes: maxBytes, drops: drops, room: make(chan struct{}, 1)}
	r.pool.New = func() any { return new(Event) }
	return r
}

// eventSize is the fixed part of EventBytes.
const eventSize = int64(unsafe.Sizeof(Event{}))

// EventBytes estimates the memory an event holds while it is queued: the
// Event itself, the bytes of its strings and its argument slices. Strings
// that share memory are counted once each, so it may count more than the
// heap holds, never less.
func EventBytes(ev *Event) int64 {
	n := eventSize + int64(len(ev.Path)+len(ev.OrigPath)+len(ev.ESFEvent)+len(ev.ExtAttr))
	p := &ev.Process
	n += int64(len(p.Executable) + len(p.Name) + len(p.EntityID) + len(p.WorkingDir) +
		len(p.UserName) + len(p.GroupName) + len(p.SigningID) + len(p.TeamID) + len(p.CDHash))
	n += argsBytes(p.Args)
	n += int64(len(p.Parent.Executable) + len(p.Parent.Name) + len(p.Parent.EntityID))
	n += argsBytes(p.Parent.Args)
	return n
}

func argsBytes(args []string) int64 {
	n := int64(cap(args)) * int64(unsafe.Sizeof(""))
	for _, a := range args {
		n += int64(len(a))
	}
	return n
}

// queue puts a copy of ev in the ring if both bounds allow it, without
// counting anything.
func (r *Ring) queue(ev *Event, size int64) bool {
	if len(r.ch) == cap(r.ch) {
		return false // full in events: no pool round trip on the drop path
	}
	if r.maxBytes > 0 {
		if n := r.bytes.Add(size); n > r.maxBytes && n != size {
			r.bytes.Add(-size)
			return false
		}
	}
	p := r.pool.Get().(*Event)
	*p = *ev
	select {
	case r.ch <- slot{ev: p, size: size}:
		r.pushed.Add(1)
		return true
	default:
		*p = Event{}
		r.pool.Put(p)
		if r.maxBytes > 0 {
			r.bytes.Add(-size)
		}
		return false
	}
}

// TryPush hands ev to the consumer, or drops and counts it when the ring is
// full. It reports whether ev was queued.
func (r *Ring) TryPush(ev *Event) bool {
	if r.queue(ev, r.sizeOf(ev)) {
		return true
	}
	r.drops.Add(schema.LossRingFull, 1)
	return false
}

func (r *Ring) sizeOf(ev *Event) int64 {
	if r.maxBytes == 0 {
		return 0
	}
	return EventBytes(ev)
}

// Push hands ev to the consumer, waiting for room when the ring is full. It
// is for sources with no kernel queue to protect (a replayed file), which
// may wait and must not drop. It returns false, ev not queued and nothing
// counted, when ctx is done first.
func (r *Ring) Push(ctx context.Context, ev *Event) bool {
	size := r.sizeOf(ev)
	for {
		if r.queue(ev, size) {
			return true
		}
		// Register before the second try: a consumer that frees room
		// after it sees the waiter and signals; one that freed room
		// before is seen by the try.
		r.waiters.Add(1)
		if r.queue(ev, size) {
			r.waiters.Add(-1)
			return true
		}
		select {
		case <-r.room:
			r.waiters.Add(-1)
		case <-ctx.Done():
			r.waiters.Add(-1)
			return false
		}
	}
}

// take copies the popped slot's event into ev and gives the slot back.
func (r *Ring) take(s slot, ev *Event) {
	*ev = *s.ev
	*s.ev = Event{}
	r.pool.Put(s.ev)
	if r.maxBytes > 0 {
		r.bytes.Add(-s.size)
	}
	// Wake a waiting Push only at the low-water mark (half the slots and
	// half the bytes free), so that a replay faster than the pipeline
	// refills the ring in one go instead of parking once per event. An
	// empty ring is below it, so a waiter is always woken in the end.
	if r.waiters.Load() > 0 && 2*len(r.ch) <= cap(r.ch) && 2*r.bytes.Load() <= r.maxBytes {
		select {
		case r.room <- struct{}{}:
		default:
		}
	}
}

// Pop waits for the next event. It returns false when ctx is done.
func (r *Ring) Pop(ctx context.Context, ev *Event) bool {
	select {
	case s := <-r.ch:
		r.take(s, ev)
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
	case s := <-r.ch:
		r.take(s, ev)
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
	case s := <-r.ch:
		r.take(s, ev)
		return true
	default:
		return false
	}
}

// Len is the number of queued events (fileward_ring_depth).
func (r *Ring) Len() int { return len(r.ch) }

// Cap is the ring's capacity in events.
func (r *Ring) Cap() int { return cap(r.ch) }

// Bytes is the EventBytes of the queued events (0 when the ring has no
// bound in bytes).
func (r *Ring) Bytes() int64 { return r.bytes.Load() }

// MaxBytes is the ring's bound in bytes (0 = none).
func (r *Ring) MaxBytes() int64 { return r.maxBytes }

// Pushed is the number of events queued so far (fileward_events_captured_total).
func (r *Ring) Pushed() uint64 { return r.pushed.Load() }
