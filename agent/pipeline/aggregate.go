package pipeline

import (
	"github.com/fileward/fileward/schema"
)

// aggKey identifies repeats: the same process instance doing the same thing
// to the same path(s).
type aggKey struct {
	pid      int32
	pidver   uint32
	start    int64
	action   schema.Action
	access   uint8
	path     string
	origPath string
}

func keyOf(ev *schema.Event) aggKey {
	return aggKey{
		pid: ev.Process.PID, pidver: ev.Process.PIDVersion, start: ev.Process.StartNS,
		action: ev.Action, access: ev.Access, path: ev.Path, origPath: ev.OrigPath,
	}
}

// aggregator folds repeats of (process, path, action) seen within the window
// into the first event, whose Count then says how many there were. It holds
// each event for one window, emitting in order of first sight. It is bounded:
// when it holds max keys, the oldest is emitted early. The held events are a
// circular FIFO that doubles when full, up to max slots, and never drifts:
// its memory is at most max slots (a slid-forward slice would keep its dead
// prefix until the next reallocation: measured at 2.5 times the slots held).
type aggregator struct {
	window int64 // ns
	max    int
	index  map[aggKey]int // key → absolute position (base is the oldest)
	q      []slot         // circular: the oldest at q[head]
	head   int
	n      int
	base   int
}

type slot struct {
	ev   schema.Event
	seen int64 // when first seen (agent clock), ns
}

func newAggregator(windowNS int64, max int) *aggregator {
	return &aggregator{window: windowNS, max: max, index: make(map[aggKey]int)}
}

// at returns the slot at absolute position pos (base <= pos < base+n).
func (a *aggregator) at(pos int) *slot {
	return &a.q[(a.head+pos-a.base)%len(a.q)]
}

// add folds ev into a held event (and reports true) or holds it. emit
// receives events pushed out early by the size bound.
func (a *aggregator) add(ev *schema.Event, now int64, emit func(*schema.Event)) bool {
	k := keyOf(ev)
	if pos, ok := a.index[k]; ok {
		s := a.at(pos)
		c := s.ev.Count
		if c == 0 {
			c = 1
		}
		add := ev.Count
		if add == 0 {
			add = 1
		}
		s.ev.Count = c + add
		return true
	}
	if len(a.index) >= a.max {
		a.popOldest(emit)
	}
	if a.n == len(a.q) {
		a.grow()
	}
	a.index[k] = a.base + a.n
	a.q[(a.head+a.n)%len(a.q)] = slot{ev: *ev, seen: now}
	a.n++
	return false
}

// grow doubles the FIFO (at least 64 slots, at most max), oldest first.
func (a *aggregator) grow() {
	c := min(max(2*len(a.q), 64), a.max)
	if c <= len(a.q) {
		c = len(a.q) + 1 // max below what is held (cannot happen: add pops first)
	}
	q := make([]slot, c)
	for i := 0; i < a.n; i++ {
		q[i] = a.q[(a.head+i)%len(a.q)]
	}
	a.q, a.head = q, 0
}

func (a *aggregator) popOldest(emit func(*schema.Event)) {
	s := &a.q[a.head]
	delete(a.index, keyOf(&s.ev))
	emit(&s.ev)
	*s = slot{} // release the strings
	a.head = (a.head + 1) % len(a.q)
	a.n--
	a.base++
}

// expire emits every held event first seen at or before now-window.
func (a *aggregator) expire(now int64, emit func(*schema.Event)) {
	for a.n > 0 && a.q[a.head].seen+a.window <= now {
		a.popOldest(emit)
	}
}

// flush emits everything held.
func (a *aggregator) flush(emit func(*schema.Event)) {
	for a.n > 0 {
		a.popOldest(emit)
	}
}

func (a *aggregator) len() int { return len(a.index) }
