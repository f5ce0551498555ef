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
// when it holds max keys, the oldest is emitted early. The queue only ever
// slides forward; append reallocates it as it drifts, so its memory stays
// proportional to what it holds.
type aggregator struct {
	window int64 // ns
	max    int
	index  map[aggKey]int // key → position in q (absolute)
	q      []slot         // FIFO by first sight; q[0] has absolute position base
	base   int
}

type slot struct {
	ev   schema.Event
	seen int64 // when first seen (agent clock), ns
}

func newAggregator(windowNS int64, max int) *aggregator {
	return &aggregator{window: windowNS, max: max, index: make(map[aggKey]int)}
}

// add folds ev into a held event (and reports true) or holds it. emit
// receives events pushed out early by the size bound.
func (a *aggregator) add(ev *schema.Event, now int64, emit func(*schema.Event)) bool {
	k := keyOf(ev)
	if pos, ok := a.index[k]; ok {
		s := &a.q[pos-a.base]
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
	a.index[k] = a.base + len(a.q)
	a.q = append(a.q, slot{ev: *ev, seen: now})
	return false
}

func (a *aggregator) popOldest(emit func(*schema.Event)) {
	s := &a.q[0]
	delete(a.index, keyOf(&s.ev))
	emit(&s.ev)
	a.q[0] = slot{} // release the strings
	a.q = a.q[1:]
	a.base++
}

// expire emits every held event first seen at or before now-window.
func (a *aggregator) expire(now int64, emit func(*schema.Event)) {
	for len(a.q) > 0 && a.q[0].seen+a.window <= now {
		a.popOldest(emit)
	}
}

// flush emits everything held.
func (a *aggregator) flush(emit func(*schema.Event)) {
	for len(a.q) > 0 {
		a.popOldest(emit)
	}
}

func (a *aggregator) len() int { return len(a.index) }
