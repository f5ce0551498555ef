package spool

import (
	"sort"
)

// seqRange is a half-open range [From, To) of event sequence numbers.
type seqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// addRange adds [from, to) to the sorted, disjoint set rs and returns the
// new set and how many sequence numbers were not in it before.
func addRange(rs []seqRange, from, to uint64) ([]seqRange, uint64) {
	if to <= from {
		return rs, 0
	}
	fresh := to - from
	for _, r := range rs {
		lo, hi := max(r.From, from), min(r.To, to)
		if lo < hi {
			fresh -= hi - lo
		}
	}
	rs = append(rs, seqRange{from, to})
	sort.Slice(rs, func(i, j int) bool { return rs[i].From < rs[j].From })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.From <= last.To {
			last.To = max(last.To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out, fresh
}

// countCorrupt records that the events [from, to) were lost to damage and
// reports, through OnCorrupt, those not counted before (by recovery, by an
// earlier start or by another reader). Loss reports among them hand their
// counts back instead of being counted. Called with s.mu held.
func (s *Spool) countCorrupt(from, to uint64) uint64 {
	var fresh uint64
	s.ledger.Corrupt, fresh = addRange(s.ledger.Corrupt, from, to)
	if fresh == 0 {
		return 0
	}
	kept := s.ledger.Reports[:0]
	var back []LossCounts
	for _, r := range s.ledger.Reports {
		if r.Seq >= from && r.Seq < to {
			fresh -= min(r.Events, fresh)
			back = append(back, r.Counts)
			continue
		}
		kept = append(kept, r)
	}
	s.ledger.Reports = kept
	if fresh > 0 {
		s.o.OnCorrupt(fresh)
		s.m.dropped.WithLabelValues(reasonCorrupt).Add(float64(fresh))
	}
	for _, c := range back {
		s.o.OnReportDropped(c)
	}
	return fresh
}

// pruneCorrupt forgets counted ranges below the oldest data, which no
// recovery will look at again.
func (s *Spool) pruneCorrupt() {
	if len(s.segs) == 0 {
		return
	}
	low := s.segs[0].baseSeq
	kept := s.ledger.Corrupt[:0]
	for _, r := range s.ledger.Corrupt {
		if r.To > low {
			kept = append(kept, r)
		}
	}
	s.ledger.Corrupt = kept
}

// recoveredRecord is the sequence range of one good record recovery kept.
type recoveredRecord struct{ seq, end uint64 }

// countRecoveryLoss finds the events recovery could not keep: gaps in the
// sequence numbers of the good records between low and s.nextSeq, where low
// is the slowest cursor (the events before it were delivered everywhere)
// but no lower than the first segment unless a segment in front of it was
// quarantined whole (a gap there is otherwise drop_oldest's, already
// counted as spool_full). It counts them as corrupt and logs each gap at
// ERROR.
func (s *Spool) countRecoveryLoss(recs []recoveredRecord, cursorLow uint64, haveCursor, lostFront bool) {
	if len(s.segs) == 0 {
		return
	}
	// Without a cursor, nothing says where data lost in front of the first
	// segment began: counting starts at the first segment.
	low := s.segs[0].baseSeq
	if haveCursor {
		if lostFront {
			low = cursorLow
		} else {
			low = max(low, cursorLow)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
	at := low
	gap := func(to uint64) {
		if to <= at {
			return
		}
		if n := s.countCorrupt(at, to); n > 0 {
			s.recovery.LostEvents += n
			s.log.Error("spool: events lost to damaged spool data, counted as corrupt",
				"from_seq", at, "to_seq", to, "events", n)
		}
	}
	for _, r := range recs {
		if r.end <= at {
			continue
		}
		gap(r.seq)
		at = max(at, r.end)
	}
	gap(s.nextSeq)
}

// gaps returns the parts of [low, high) that no record of recs (sorted by
// seq) covers.
func gaps(recs []recoveredRecord, low, high uint64) []seqRange {
	var out []seqRange
	at := low
	for _, r := range recs {
		if r.end <= at {
			continue
		}
		if r.seq > at {
			out = append(out, seqRange{at, min(r.seq, high)})
		}
		at = max(at, r.end)
		if at >= high {
			break
		}
	}
	if at < high {
		out = append(out, seqRange{at, high})
	}
	return out
}

// uncounted is how much of rs is not in counted.
func uncounted(rs, counted []seqRange) uint64 {
	var n uint64
	for _, r := range rs {
		_, fresh := addRange(append([]seqRange(nil), counted...), r.From, r.To)
		n += fresh
	}
	return n
}
