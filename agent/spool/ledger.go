package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
)

// ledgerFile holds the loss ledger: the cumulative loss totals since the
// spool was created, and the loss reports still in the spool. It is small
// (one entry per report record not yet passed by every cursor) and is
// rewritten atomically on each AppendReport.
const ledgerFile = "losses.json"

// LossCounts are event counts by loss reason name.
type LossCounts = map[string]uint64

// reportRec is one record appended by AppendReport.
type reportRec struct {
	Segment uint64     `json:"segment"`
	Seq     uint64     `json:"seq"`
	Events  uint64     `json:"events"`
	Counts  LossCounts `json:"counts"`
}

type ledger struct {
	Totals  LossCounts  `json:"totals"`
	Reports []reportRec `json:"reports"`
	// Corrupt are the sequence ranges already counted as lost to damage,
	// so that a damaged span is counted once, whichever reader or start
	// finds it.
	Corrupt []seqRange `json:"corrupt,omitempty"`
}

// loadLedger reads the ledger; a missing file is an empty ledger, and a
// damaged one is logged and replaced (the totals restart from zero, which
// the next report makes visible as a drop in fileward.lost.total).
func (s *Spool) loadLedger() {
	s.ledger = ledger{Totals: LossCounts{}}
	b, err := os.ReadFile(filepath.Join(s.o.Dir, ledgerFile))
	if os.IsNotExist(err) {
		return
	}
	var l ledger
	if err == nil {
		err = json.Unmarshal(b, &l)
	}
	if err != nil {
		s.log.Error("spool: unreadable loss ledger; cumulative loss totals restart from zero", "file", ledgerFile, "err", err)
		return
	}
	if l.Totals == nil {
		l.Totals = LossCounts{}
	}
	s.ledger = l
}

func (s *Spool) writeLedger() error {
	b, err := json.Marshal(&s.ledger)
	if err != nil {
		return fmt.Errorf("spool: encode loss ledger: %w", err)
	}
	path := filepath.Join(s.o.Dir, ledgerFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: write loss ledger: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && s.o.Fsync != FsyncNever {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: write loss ledger: %w", err)
	}
	return nil
}

// LossTotals returns the cumulative loss totals stored by the last
// AppendReport, by reason: the losses of every run of the agent on this
// spool, as reported in the stream.
func (s *Spool) LossTotals() LossCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ledger.Totals)
}

// AppendReport appends a record of loss reports, as Append does (but a
// refused record's documents are not counted through OnDrop: they are not
// captured events, and the caller reports their counts again), and
// remembers which counts it carries: if drop_oldest deletes the record
// before every cursor has passed it, the record's events are not counted as
// dropped; Options.OnReportDropped gets its counts back instead, so that the
// next report carries them. totals (the cumulative totals by reason the
// record's documents state) are persisted with it and returned by
// LossTotals after a restart.
func (s *Spool) AppendReport(ctx context.Context, payload []byte, events int, counts, totals LossCounts) error {
	stored, id, release := s.codec.encode(payload)
	defer release()
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, seq, err := s.appendLocked(stored, id, len(payload), events, true)
	if err != nil {
		return err
	}
	s.ledger.Totals = maps.Clone(totals)
	if s.ledger.Totals == nil {
		s.ledger.Totals = LossCounts{}
	}
	// Forget reports whose segment is gone (dropped or collected).
	kept := s.ledger.Reports[:0]
	for _, r := range s.ledger.Reports {
		if s.findSeg(r.Segment) != nil {
			kept = append(kept, r)
		}
	}
	s.ledger.Reports = append(kept, reportRec{Segment: seg, Seq: seq, Events: uint64(events), Counts: maps.Clone(counts)})
	if err := s.writeLedger(); err != nil {
		// The report is in the spool; only its protection against
		// drop_oldest after a restart, and the totals' persistence, are
		// at risk.
		s.log.Error("spool: loss ledger", "err", err)
	}
	return nil
}

// unackedReports removes the reports of seg that no cursor has passed from the
// ledger and returns them.
func (s *Spool) unackedReports(seg *segment, minAcked uint64) []reportRec {
	var out []reportRec
	kept := s.ledger.Reports[:0]
	for _, r := range s.ledger.Reports {
		if r.Segment == seg.idx {
			if r.Seq >= minAcked {
				out = append(out, r)
			}
			continue
		}
		kept = append(kept, r)
	}
	s.ledger.Reports = kept
	return out
}
