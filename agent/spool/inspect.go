package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Index    uint64
	File     string
	Bytes    int64
	Records  int
	Events   uint64
	FirstSeq uint64 // from the segment header
	EndSeq   uint64 // after the last good record
	Oldest   time.Time
	Newest   time.Time
	Version  int // format version of the file
	// RawBytes and StoredBytes are the payload bytes of its good records
	// before and after compression (headers not included).
	RawBytes    int64
	StoredBytes int64
}

// CursorInfo is one sink's cursor and its lag.
type CursorInfo struct {
	Name     string
	Position Position
	Lag      Lag
	Err      error // the cursor file is unreadable (the sink would restart at the oldest data)
}

// Damage is one damaged span found by Inspect.
type Damage struct {
	Segment uint64
	File    string
	Start   int64
	End     int64
	// Torn marks a damaged tail of the newest segment: the normal result
	// of a crash mid-append, which Open truncates. Anything else is
	// corruption, which Open quarantines.
	Torn bool
	Err  error
}

// Report is the result of Inspect.
type Report struct {
	Dir         string
	InUse       bool // a process holds the writer lock
	Verified    bool // every CRC was checked
	Segments    []SegmentInfo
	Bytes       int64
	Records     int
	Events      uint64
	RawBytes    int64          // payload bytes of the good records, before compression
	StoredBytes int64          // the same payloads as stored (compressed)
	Codecs      map[string]int // good records by codec ("none", "lz4", "zstd")
	Cursors     []CursorInfo
	Damage      []Damage
	Quarantined []string
	// LostEvents are the events the damage loses: sequence numbers that no
	// sink has acknowledged and no good record holds (not counted by an
	// earlier start). A torn tail loses none that were stored whole.
	LostEvents uint64
	// LostUnknown reports damage whose events cannot be counted from the
	// sequence numbers (a bad header in the newest segment, or in front of
	// every good segment with no cursor to say where the data began).
	LostUnknown bool
}

// Inspect reads the spool in dir without changing anything and without
// taking the writer lock, so it is safe next to a running agent. With verify
// it checks every record's CRC; without it, it only follows the frames.
// When an agent is running, the newest segment's tail may be mid-write and
// show as torn.
func Inspect(dir string, verify bool) (*Report, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	rep := &Report{Dir: dir, InUse: inUse(dir), Verified: verify, Codecs: map[string]int{}}
	idxs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if err := checkVersions(dir, idxs); err != nil {
		return nil, err
	}
	var segs []*segment
	var recs []recoveredRecord
	lostFront := false // a segment in front of every good one has a bad header
	for i, idx := range idxs {
		name := segName(idx)
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted by the running agent meanwhile
			}
			return nil, fmt.Errorf("spool: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
		res := scanSegment(f, st.Size(), verify)
		f.Close()
		newest := i == len(idxs)-1
		if ve := (*VersionError)(nil); errors.As(res.hdrErr, &ve) {
			ve.Dir, ve.File = dir, name
			return nil, ve
		}
		if res.hdrErr != nil {
			torn := newest && st.Size() < segHeaderSize
			rep.Damage = append(rep.Damage, Damage{Segment: idx, File: name, Start: 0, End: st.Size(),
				Torn: torn, Err: res.hdrErr})
			if len(segs) == 0 && !torn {
				lostFront = true
			}
			if newest && !torn {
				rep.LostUnknown = true
			}
			continue
		}
		torn := newest && len(res.bad) == 1 && res.tailBad
		for _, b := range res.bad {
			rep.Damage = append(rep.Damage, Damage{Segment: idx, File: name, Start: b.start, End: b.end, Torn: torn, Err: b.err})
		}
		si := SegmentInfo{Index: idx, File: name, Bytes: st.Size(), FirstSeq: res.baseSeq, EndSeq: res.baseSeq, Version: int(res.version)}
		hlen := recHeaderLen(res.version)
		for _, r := range res.records {
			si.RawBytes += int64(r.raw)
			si.StoredBytes += r.size - hlen
			rep.Codecs[codecName(r.codec)]++
			if si.Records == 0 {
				si.Oldest = time.Unix(0, r.time)
			}
			si.Newest = time.Unix(0, r.time)
			si.Records++
			si.Events += uint64(r.events)
			recs = append(recs, recoveredRecord{r.seq, r.seq + uint64(r.events)})
			if e := r.seq + uint64(r.events); e > si.EndSeq {
				si.EndSeq = e
			}
		}
		rep.Segments = append(rep.Segments, si)
		rep.Bytes += si.Bytes
		rep.Records += si.Records
		rep.Events += si.Events
		rep.RawBytes += si.RawBytes
		rep.StoredBytes += si.StoredBytes
		segs = append(segs, &segment{idx: idx, baseSeq: si.FirstSeq, endSeq: si.EndSeq, size: res.end()})
	}
	var nextSeq uint64
	if len(segs) > 0 {
		nextSeq = segs[len(segs)-1].endSeq
	}
	var bad []CursorInfo
	ps, err := readCursors(dir, func(name string, err error) { bad = append(bad, CursorInfo{Name: name, Err: err}) })
	if err != nil {
		return nil, err
	}
	for name, p := range ps {
		rep.Cursors = append(rep.Cursors, CursorInfo{Name: name, Position: p, Lag: lagOf(segs, nextSeq, p)})
	}
	if rep.Corrupt() && len(segs) > 0 {
		// As recovery counts it: after the slowest cursor, and in front of
		// the first segment only when a segment there was lost whole.
		minCursor, have := ^uint64(0), len(bad) == 0 && len(ps) > 0
		for _, p := range ps {
			if p.Seq > nextSeq {
				have = false // restarts at the oldest data
			}
			minCursor = min(minCursor, p.Seq)
		}
		low := segs[0].baseSeq
		switch {
		case have && lostFront:
			low = min(minCursor, low)
		case have:
			low = max(minCursor, low)
		case lostFront:
			rep.LostUnknown = true // nothing tells where the lost segment began
		}
		var counted []seqRange
		if b, err := os.ReadFile(filepath.Join(dir, ledgerFile)); err == nil {
			var l ledger
			if json.Unmarshal(b, &l) == nil {
				counted = l.Corrupt
			}
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
		rep.LostEvents = uncounted(gaps(recs, low, nextSeq), counted)
	}
	rep.Cursors = append(rep.Cursors, bad...)
	sort.Slice(rep.Cursors, func(i, j int) bool { return rep.Cursors[i].Name < rep.Cursors[j].Name })
	if ents, err := os.ReadDir(filepath.Join(dir, quarantineDir)); err == nil {
		for _, e := range ents {
			rep.Quarantined = append(rep.Quarantined, e.Name())
		}
	}
	return rep, nil
}

// Ratio is the compression ratio of the good records' payloads: raw bytes
// over stored bytes (1 for an uncompressed spool, 0 for an empty one).
func (r *Report) Ratio() float64 {
	if r.StoredBytes == 0 {
		return 0
	}
	return float64(r.RawBytes) / float64(r.StoredBytes)
}

// Corrupt reports whether the report holds damage other than a torn tail.
func (r *Report) Corrupt() bool {
	for _, d := range r.Damage {
		if !d.Torn {
			return true
		}
	}
	return false
}
