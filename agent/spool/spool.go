package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Policies for Options.WhenFull and Options.Fsync.
const (
	DropOldest = "drop_oldest"
	DropNewest = "drop_newest"

	FsyncAlways   = "always"
	FsyncInterval = "interval"
	FsyncNever    = "never"
)

// Options configure a Spool. Zero values get the defaults of docs/configuration.md.
type Options struct {
	Dir           string // <data_dir>/spool
	MaxBytes      int64  // default 1 GiB; must be at least 2×SegmentBytes
	SegmentBytes  int64  // default 16 MiB
	WhenFull      string // "drop_oldest" (default) | "drop_newest"
	Fsync         string // "always" | "interval" (default) | "never"
	FsyncInterval time.Duration
	// Compression is the codec of the records Append writes: "none"
	// (also ""), "lz4" or "zstd". Each record is compressed as a whole;
	// every codec is read whatever this says. The agent's default comes
	// from its config (docs/configuration.md).
	Compression string
	Logger      *slog.Logger          // nil = discard
	Registerer  prometheus.Registerer // nil = no metrics
	// OnDrop is told how many events were dropped because the spool was
	// full (either policy), the disk was full (ENOSPC) or a batch was larger
	// than a segment. It is called with the spool's lock held: it must not
	// block and must not call back into the Spool.
	OnDrop func(events uint64)
	// OnReportDropped is given back the counts of a record of loss reports
	// (see AppendReport) that drop_oldest deleted before every cursor had
	// passed it, so that they can be reported again. Same rules as OnDrop.
	OnReportDropped func(counts LossCounts)
	// OnCorrupt is told how many events were lost to damage: records in
	// damaged spans or segments found by recovery or by a reader, and
	// events a cursor had to skip. Same rules as OnDrop.
	OnCorrupt func(events uint64)
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("spool: Dir is empty")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.WhenFull == "" {
		o.WhenFull = DropOldest
	}
	if o.Fsync == "" {
		o.Fsync = FsyncInterval
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = time.Second
	}
	if o.Compression == "" {
		o.Compression = CompressionNone
	}
	if o.SegmentBytes < 4096 {
		return fmt.Errorf("spool: segment_bytes %d is below 4096", o.SegmentBytes)
	}
	if o.MaxBytes < 2*o.SegmentBytes {
		return fmt.Errorf("spool: max_bytes %d must be at least twice segment_bytes %d", o.MaxBytes, o.SegmentBytes)
	}
	switch o.WhenFull {
	case DropOldest, DropNewest:
	default:
		return fmt.Errorf("spool: when_full %q: want drop_oldest or drop_newest", o.WhenFull)
	}
	switch o.Fsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return fmt.Errorf("spool: fsync %q: want always, interval or never", o.Fsync)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.OnDrop == nil {
		o.OnDrop = func(uint64) {}
	}
	if o.OnReportDropped == nil {
		o.OnReportDropped = func(LossCounts) {}
	}
	if o.OnCorrupt == nil {
		o.OnCorrupt = func(uint64) {}
	}
	return nil
}

// Position is a place in the spool: the start of a record, or the end of a
// segment. Seq is the sequence number of the next event at that place.
type Position struct {
	Segment uint64
	Offset  int64
	Seq     uint64
}

type segment struct {
	idx     uint64
	version uint8  // format version of the file (1 or 2): its record header size
	baseSeq uint64 // seq of the first event (from the segment header)
	endSeq  uint64 // seq after the last event
	size    int64
}

type cursorState struct {
	name      string
	pos       Position // acknowledged, in memory
	persisted Position // acknowledged and on disk
	open      bool     // a Reader holds it
}

// Recovery is what Open found and repaired.
type Recovery struct {
	TornBytes   int64    // bytes truncated from torn tails
	TornTails   int      // torn tails truncated (or empty torn segments removed)
	BadRecords  int      // damaged spans skipped in the middle of segments
	Quarantined []string // files moved to quarantine/
	// LostEvents are the events in damaged spans and segments that no
	// sink had read, counted as corrupt (through Options.OnCorrupt).
	LostEvents uint64
	// ClampedCursors names cursors that pointed past the data and were
	// moved to a valid position.
	ClampedCursors []string
}

// Spool is a segmented append-only log. Append is safe for concurrent use;
// each Reader is used by one goroutine.
type Spool struct {
	o     Options
	log   *slog.Logger
	m     *metrics
	codec *codec

	lock *os.File

	mu       sync.Mutex
	closed   bool
	segs     []*segment // ascending; the last is the active one
	active   *os.File
	total    int64 // bytes of all segment files
	nextSeq  uint64
	nextIdx  uint64
	dirty    bool       // the active segment has unsynced writes
	dirDirty bool       // a segment was created since the last Sync
	sealed   []*os.File // sealed, not yet fsynced ("interval")
	cursors  map[string]*cursorState
	wake     chan struct{}
	recovery Recovery
	ledger   ledger
	// lastQuarantined is the segment recoverSegment last quarantined whole.
	lastQuarantined uint64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Open opens or creates the spool in o.Dir and runs recovery: it removes
// leftover temp files, truncates a torn tail of the newest segment,
// quarantines segments with damage in their middle (keeping their good
// records), and loads the cursors. Only one process may have a spool open;
// the read-only Inspect does not count.
func Open(ctx context.Context, o Options) (*Spool, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, cursorDir), filepath.Join(o.Dir, quarantineDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	cd, err := newCodec(o.Compression)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(ctx, o.Dir)
	if err != nil {
		cd.close()
		return nil, err
	}
	s := &Spool{
		o:       o,
		log:     o.Logger,
		m:       newMetrics(o.Registerer),
		codec:   cd,
		lock:    lock,
		cursors: map[string]*cursorState{},
		wake:    make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		unlockDir(lock)
		s.m.unregister()
		cd.close()
		return nil, err
	}
	s.m.bytes.Set(float64(s.total))
	if o.Fsync == FsyncInterval {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.syncLoop()
	}
	return s, nil
}

// recover scans every segment (verifying every CRC), repairs what it must
// and builds the in-memory index.
func (s *Spool) recover() error {
	removeTemps(s.o.Dir)
	removeTemps(filepath.Join(s.o.Dir, cursorDir))
	idxs, err := listSegments(s.o.Dir)
	if err != nil {
		return err
	}
	// A newer agent's spool is refused before anything is repaired.
	if err := checkVersions(s.o.Dir, idxs); err != nil {
		return err
	}
	boundaries := map[uint64]map[int64]uint64{} // segment -> record offset -> seq
	var recs []recoveredRecord
	lostFront := false // a segment in front of every surviving one was quarantined whole
	for i, idx := range idxs {
		newest := i == len(idxs)-1
		seg, offs, err := s.recoverSegment(idx, newest, &recs)
		if err != nil {
			return err
		}
		if seg == nil {
			if len(s.segs) == 0 && s.lastQuarantined == idx {
				lostFront = true
			}
			continue
		}
		boundaries[idx] = offs
		s.segs = append(s.segs, seg)
		s.total += seg.size
		if idx >= s.nextIdx {
			s.nextIdx = idx + 1
		}
		if seg.endSeq > s.nextSeq {
			s.nextSeq = seg.endSeq
		}
	}
	if s.nextIdx == 0 {
		s.nextIdx = 1
	}
	cursors, err := s.loadCursors()
	if err != nil {
		return err
	}
	// A cursor may be ahead of the data when records it had read were
	// lost from the tail (past the end of the newest surviving segment).
	// Anywhere else a sequence number past the data means a damaged or
	// forged cursor, which normalize moves to the oldest data.
	var lastIdx uint64
	if n := len(idxs); n > 0 {
		lastIdx = idxs[n-1]
	}
	for _, c := range cursors {
		p := c.pos
		tail := p.Segment <= lastIdx
		if n := len(s.segs); n > 0 && tail {
			ls := s.segs[n-1]
			tail = p.Segment > ls.idx || (p.Segment == ls.idx && p.Offset > ls.size)
		}
		if p.Seq > s.nextSeq && tail {
			s.nextSeq = p.Seq
		}
	}
	// The active segment: reopen the newest, or start one. A newest
	// segment of an older format is sealed as it is: records of this
	// format go into a new segment.
	if n := len(s.segs); n > 0 && s.segs[n-1].version == segVersion {
		last := s.segs[len(s.segs)-1]
		f, err := os.OpenFile(filepath.Join(s.o.Dir, segName(last.idx)), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("spool: open active segment: %w", err)
		}
		s.active = f
	} else if err := s.createSegment(); err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	} else if err := s.Sync(); err != nil { // not on the append path: make the new segment durable now
		return fmt.Errorf("spool: create segment: %w", err)
	}
	s.loadLedger()
	cursorLow, haveCursor := ^uint64(0), false
	for _, c := range cursors {
		p, ok := s.normalize(c.pos, boundaries)
		if !ok {
			s.log.Error("spool: cursor points past the end of the data; moved to the oldest data (events may be sent again, none is skipped)",
				"sink", c.name, "segment", c.pos.Segment, "offset", c.pos.Offset, "seq", c.pos.Seq,
				"newest_segment", s.segs[len(s.segs)-1].idx, "next_seq", s.nextSeq)
			s.recovery.ClampedCursors = append(s.recovery.ClampedCursors, c.name)
			c.pos = p
		}
		// The gaps counted are those after what the slowest cursor had
		// acknowledged (before normalize moved it over them).
		cursorLow = min(cursorLow, c.pos.Seq)
		haveCursor = true
		c.pos = p
		c.persisted = c.pos
		s.cursors[c.name] = c
		if !ok {
			if err := writeCursor(s.o.Dir, c.name, p, s.o.Fsync != FsyncNever); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	s.countRecoveryLoss(recs, cursorLow, haveCursor, lostFront)
	s.pruneCorrupt()
	kept := s.ledger.Reports[:0]
	for _, r := range s.ledger.Reports {
		if sg := s.findSeg(r.Segment); sg != nil && r.Seq >= sg.baseSeq && r.Seq < sg.endSeq {
			kept = append(kept, r)
		}
	}
	s.ledger.Reports = kept
	if s.recovery.LostEvents > 0 {
		if err := s.writeLedger(); err != nil {
			return err
		}
	}
	return nil
}

// normalize maps a loaded cursor onto the recovered segments. It returns
// false for a cursor that points past the end of the data (a segment after
// the newest, or a sequence number past the next one): such a cursor is
// damaged or forged although its CRC is valid, and it is moved to the
// oldest data, as a cursor with a bad CRC is (duplicates, never loss).
func (s *Spool) normalize(p Position, bounds map[uint64]map[int64]uint64) (Position, bool) {
	first, last := s.segs[0], s.segs[len(s.segs)-1]
	oldest := Position{first.idx, segHeaderSize, first.baseSeq}
	if p.Seq > s.nextSeq || (p.Segment > last.idx && p.Segment >= s.nextIdx) {
		return oldest, false
	}
	return s.normalizeValid(p, bounds), true
}

func (s *Spool) normalizeValid(p Position, bounds map[uint64]map[int64]uint64) Position {
	first, last := s.segs[0], s.segs[len(s.segs)-1]
	switch {
	case p.Segment < first.idx:
		return Position{first.idx, segHeaderSize, first.baseSeq}
	case p.Segment > last.idx:
		return Position{last.idx, last.size, s.nextSeq}
	}
	seg := s.findSeg(p.Segment)
	if seg == nil { // a gap: the next segment's start
		for _, sg := range s.segs {
			if sg.idx > p.Segment {
				return Position{sg.idx, segHeaderSize, sg.baseSeq}
			}
		}
		return Position{last.idx, last.size, s.nextSeq}
	}
	if p.Offset >= seg.size {
		return Position{seg.idx, seg.size, seg.endSeq}
	}
	if seq, ok := bounds[seg.idx][p.Offset]; ok && seq == p.Seq {
		return p
	}
	// Not a record boundary any more (the segment was repaired): the first
	// record at or after the cursor's sequence number.
	best := Position{seg.idx, seg.size, seg.endSeq}
	for off, seq := range bounds[seg.idx] {
		if seq >= p.Seq && (off < best.Offset) {
			best = Position{seg.idx, off, seq}
		}
	}
	return best
}

// recoverSegment scans one segment and repairs it. It returns nil for a
// segment that was removed or quarantined whole.
func (s *Spool) recoverSegment(idx uint64, newest bool, recs *[]recoveredRecord) (*segment, map[int64]uint64, error) {
	path := filepath.Join(s.o.Dir, segName(idx))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: open segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("spool: stat segment: %w", err)
	}
	res := scanSegment(f, st.Size(), true)
	if ve := (*VersionError)(nil); errors.As(res.hdrErr, &ve) {
		ve.Dir, ve.File = s.o.Dir, segName(idx)
		return nil, nil, ve
	}
	if res.hdrErr != nil {
		if newest && st.Size() < segHeaderSize {
			// Created but its header never made it to disk: a torn tail.
			s.recovery.TornTails++
			s.recovery.TornBytes += st.Size()
			s.m.torn.Inc()
			s.log.Warn("spool: removing torn empty segment", "segment", idx, "bytes", st.Size())
			return nil, nil, os.Remove(path)
		}
		err := &CorruptionError{Dir: s.o.Dir, Segment: idx, Offset: 0, Err: res.hdrErr}
		s.log.Error("spool: quarantining segment with a bad header", "err", err)
		s.lastQuarantined = idx
		return nil, nil, s.quarantine(idx, nil)
	}
	torn := newest && len(res.bad) == 1 && res.tailBad
	switch {
	case len(res.bad) == 0:
	case torn:
		b := res.bad[0]
		s.recovery.TornTails++
		s.recovery.TornBytes += b.end - b.start
		s.m.torn.Inc()
		s.log.Warn("spool: truncating torn tail", "segment", idx, "offset", b.start, "bytes", b.end-b.start, "err", b.err)
		if err := f.Truncate(b.start); err != nil {
			return nil, nil, fmt.Errorf("spool: truncate torn tail: %w", err)
		}
		if err := s.fsync(f); err != nil {
			return nil, nil, fmt.Errorf("spool: truncate torn tail: %w", err)
		}
	default:
		for _, b := range res.bad {
			err := &CorruptionError{Dir: s.o.Dir, Segment: idx, Offset: b.start, Err: b.err}
			s.log.Error("spool: damaged records", "err", err, "bytes", b.end-b.start)
		}
		s.recovery.BadRecords += len(res.bad)
		s.m.corrupt.Add(float64(len(res.bad)))
		if err := s.quarantine(idx, &res); err != nil {
			return nil, nil, err
		}
	}
	seg := &segment{idx: idx, version: res.version, baseSeq: res.baseSeq, endSeq: res.baseSeq, size: segHeaderSize}
	offs := make(map[int64]uint64, len(res.records))
	off := int64(segHeaderSize)
	for _, r := range res.records {
		offs[off] = r.seq
		off += r.size
		*recs = append(*recs, recoveredRecord{r.seq, r.seq + uint64(r.events)})
		if e := r.seq + uint64(r.events); e > seg.endSeq {
			seg.endSeq = e
		}
	}
	seg.size = off
	return seg, offs, nil
}

// quarantine moves segment idx to quarantine/. With res, it first writes a
// repaired copy holding only res's good records (contiguously) in its place.
func (s *Spool) quarantine(idx uint64, res *scanResult) error {
	path := filepath.Join(s.o.Dir, segName(idx))
	qname := fmt.Sprintf("%s.%d.corrupt", segName(idx), time.Now().UnixNano())
	qpath := filepath.Join(s.o.Dir, quarantineDir, qname)
	if res != nil {
		src, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
		defer src.Close()
		tmp := path + ".tmp"
		dst, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
		var hdr [segHeaderSize]byte
		putSegHeader(hdr[:], res.version, res.baseSeq) // the records are copied as they are
		_, err = dst.Write(hdr[:])
		for _, r := range res.records {
			if err != nil {
				break
			}
			_, err = io.Copy(dst, io.NewSectionReader(src, r.off, r.size))
		}
		if err == nil {
			err = s.fsync(dst)
		}
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("spool: write repaired segment: %w", err)
		}
		if err := os.Rename(path, qpath); err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
	} else if err := os.Rename(path, qpath); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	s.recovery.Quarantined = append(s.recovery.Quarantined, qname)
	s.m.quarantined.Inc()
	s.log.Warn("spool: quarantined segment", "segment", idx, "file", qpath, "repaired", res != nil)
	if s.o.Fsync != FsyncNever {
		if err := syncDir(s.o.Dir); err != nil {
			return err
		}
	}
	return pruneQuarantine(filepath.Join(s.o.Dir, quarantineDir), maxQuarantined)
}

// maxQuarantined bounds quarantine/: the oldest files beyond it are removed.
const maxQuarantined = 8

func pruneQuarantine(dir string, keep int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".corrupt") {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool { return quarantineTime(names[i]) < quarantineTime(names[j]) })
	for len(names) > keep {
		os.Remove(filepath.Join(dir, names[0]))
		names = names[1:]
	}
	return nil
}

func quarantineTime(name string) string {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return name
	}
	return fmt.Sprintf("%020s", parts[len(parts)-2])
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var idxs []uint64
	for _, e := range ents {
		if idx, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			idxs = append(idxs, idx)
		}
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	return idxs, nil
}

func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Recovery reports what Open repaired.
func (s *Spool) Recovery() Recovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recovery
	r.Quarantined = append([]string(nil), r.Quarantined...)
	return r
}

func (s *Spool) findSeg(idx uint64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].idx >= idx })
	if i < len(s.segs) && s.segs[i].idx == idx {
		return s.segs[i]
	}
	return nil
}

// Append stores one record: payload (opaque bytes) holding events events.
// It returns nil once the record is written (and, with fsync "always",
// synced); ErrFull when drop_newest refused it; an error wrapping
// ErrNoSpace when the disk is full; ErrTooLarge when it cannot fit in a
// segment. Every refusal is counted through Options.OnDrop. Under
// drop_oldest, Append deletes the oldest segments to make room and counts
// the events no cursor had acknowledged yet.
//
// Append blocks on nothing but the disk, so it does not look at ctx: a
// batch flushed during shutdown, with a cancelled context, is still stored.
//
// With Options.Compression the payload is compressed (outside the lock)
// before it is stored; the bound and ErrTooLarge apply to the compressed
// size, the bytes on disk.
func (s *Spool) Append(_ context.Context, payload []byte, events int) error {
	stored, id, release := s.codec.encode(payload)
	defer release()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, err := s.appendLocked(stored, id, len(payload), events, false)
	return err
}

// appendLocked is Append with s.mu held: payload is stored as it is, with
// codec id and raw, the length before compression. It returns the segment
// and the sequence number of the record it wrote. A refused record's events
// are counted as dropped (OnDrop), except for a record of loss reports
// (report): its documents are not captured events, and the reporter
// carries their counts in its next report.
func (s *Spool) appendLocked(payload []byte, id uint8, raw, events int, report bool) (uint64, uint64, error) {
	if events < 0 {
		return 0, 0, fmt.Errorf("spool: negative event count %d", events)
	}
	lost := uint64(events)
	if report {
		lost = 0
	}
	frame := int64(recHeaderSize + len(payload))
	if s.closed {
		return 0, 0, ErrClosed
	}
	if frame > s.o.SegmentBytes-segHeaderSize {
		s.drop(lost, reasonTooLarge)
		return 0, 0, fmt.Errorf("spool: %w: %d bytes, segment_bytes %d", ErrTooLarge, frame, s.o.SegmentBytes)
	}
	act := s.segs[len(s.segs)-1]
	roll := act.size+frame > s.o.SegmentBytes
	need := frame
	if roll {
		need += segHeaderSize
	}
	if s.total+need > s.o.MaxBytes {
		if s.o.WhenFull == DropOldest {
			s.dropOldest(need)
		}
		if s.total+need > s.o.MaxBytes {
			s.drop(lost, reasonFull)
			return 0, 0, ErrFull
		}
	}
	if roll {
		if err := s.roll(); err != nil {
			return 0, 0, s.failAppend(err, lost)
		}
		act = s.segs[len(s.segs)-1]
	}
	var hb [recHeaderSize]byte
	now := time.Now().UnixNano()
	putRecHeader(hb[:], recHeader{length: uint32(len(payload)), events: uint32(events), seq: s.nextSeq, time: now,
		raw: uint32(raw), codec: id}, payload)
	_, err := s.active.WriteAt(hb[:], act.size)
	if err == nil && len(payload) > 0 {
		_, err = s.active.WriteAt(payload, act.size+recHeaderSize)
	}
	if err == nil && s.o.Fsync == FsyncAlways {
		err = s.active.Sync()
	}
	if err != nil {
		// Take back whatever part of the record reached the file, so that
		// the tail stays clean for the next append.
		if terr := s.active.Truncate(act.size); terr != nil {
			s.log.Error("spool: truncate after failed append", "err", terr)
		}
		return 0, 0, s.failAppend(err, lost)
	}
	seq := s.nextSeq
	act.size += frame
	s.total += frame
	s.nextSeq += uint64(events)
	act.endSeq = s.nextSeq
	s.dirty = s.o.Fsync != FsyncAlways
	s.m.spooled.Add(float64(events))
	s.m.bytes.Set(float64(s.total))
	close(s.wake)
	s.wake = make(chan struct{})
	return act.idx, seq, nil
}

func (s *Spool) failAppend(err error, events uint64) error {
	if isNoSpace(err) {
		s.drop(events, reasonNoSpace)
		return fmt.Errorf("spool append: %w: %w", ErrNoSpace, err)
	}
	s.drop(events, reasonIOError)
	s.log.Error("spool: append failed", "err", err)
	return fmt.Errorf("spool append: %w", err)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

const (
	reasonFull     = "full"
	reasonNoSpace  = "no_space"
	reasonTooLarge = "too_large"
	reasonIOError  = "io_error"
	reasonCorrupt  = "corrupt"
)

func (s *Spool) drop(events uint64, reason string) {
	s.m.dropped.WithLabelValues(reason).Add(float64(events))
	if events > 0 {
		s.o.OnDrop(events)
	}
}

// dropOldest deletes sealed segments, oldest first, until need more bytes
// fit, counting the events the slowest cursor had not acknowledged.
func (s *Spool) dropOldest(need int64) {
	for len(s.segs) > 1 && s.total+need > s.o.MaxBytes {
		seg := s.segs[0]
		m := s.minAcked(seg)
		lost := seg.endSeq - m
		// Loss reports are not events to count as lost: their counts go
		// back to the reporter, and the next report carries them.
		reports := s.unackedReports(seg, m)
		for _, r := range reports {
			lost -= min(r.Events, lost)
		}
		s.log.Warn("spool: full, dropping oldest segment", "segment", seg.idx, "bytes", seg.size, "events", lost, "loss_reports", len(reports))
		s.removeSeg()
		s.drop(lost, reasonFull)
		for _, r := range reports {
			s.o.OnReportDropped(r.Counts)
		}
	}
}

// minAcked is the lowest acknowledged sequence number among the cursors,
// clamped to seg's events.
func (s *Spool) minAcked(seg *segment) uint64 {
	m := seg.baseSeq
	if len(s.cursors) > 0 {
		m = ^uint64(0)
		for _, c := range s.cursors {
			if c.pos.Seq < m {
				m = c.pos.Seq
			}
		}
	}
	if m < seg.baseSeq {
		m = seg.baseSeq
	}
	if m > seg.endSeq {
		m = seg.endSeq
	}
	return m
}

// removeSeg deletes the oldest segment (never the active one).
func (s *Spool) removeSeg() {
	seg := s.segs[0]
	if err := os.Remove(filepath.Join(s.o.Dir, segName(seg.idx))); err != nil && !os.IsNotExist(err) {
		s.log.Error("spool: remove segment", "segment", seg.idx, "err", err)
	}
	s.total -= seg.size
	s.segs = s.segs[1:]
	s.m.bytes.Set(float64(s.total))
}

// gc deletes sealed segments that every persisted cursor has passed.
func (s *Spool) gc() {
	if len(s.cursors) == 0 {
		return
	}
	for len(s.segs) > 1 {
		seg := s.segs[0]
		for _, c := range s.cursors {
			p := c.persisted
			if p.Segment < seg.idx || (p.Segment == seg.idx && p.Offset < seg.size) {
				return
			}
		}
		s.removeSeg()
	}
}

// roll seals the active segment and starts a new one. Under "interval" the
// sealed segment is fsynced (and closed) by the next Sync, not here, so that
// a roll costs an append no more than any other record.
func (s *Spool) roll() error {
	old := s.active
	if err := s.createSegment(); err != nil {
		s.active = old
		return err
	}
	if s.o.Fsync == FsyncInterval {
		s.sealed = append(s.sealed, old)
	} else {
		old.Close()
	}
	s.gc()
	return nil
}

// createSegment creates segment nextIdx and makes it the active one. Under
// "always" the new file and the directory are fsynced before any record
// goes in; under "interval" the next Sync does it.
func (s *Spool) createSegment() error {
	idx := s.nextIdx
	path := filepath.Join(s.o.Dir, segName(idx))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	var hdr [segHeaderSize]byte
	putSegHeader(hdr[:], segVersion, s.nextSeq)
	_, err = f.Write(hdr[:])
	if err == nil && s.o.Fsync == FsyncAlways {
		if err = f.Sync(); err == nil {
			err = syncDir(s.o.Dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment: %w", err)
	}
	if s.o.Fsync == FsyncInterval {
		s.dirty, s.dirDirty = true, true
	}
	s.nextIdx++
	s.active = f
	s.segs = append(s.segs, &segment{idx: idx, version: segVersion, baseSeq: s.nextSeq, endSeq: s.nextSeq, size: segHeaderSize})
	s.total += segHeaderSize
	s.m.bytes.Set(float64(s.total))
	return nil
}

// Sync makes every record appended so far durable: it fsyncs (and closes)
// the segments sealed since the last Sync, the active segment and, after a
// roll, the directory. With fsync "interval" a background goroutine calls it
// every FsyncInterval. It does nothing under "never".
func (s *Spool) Sync() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.o.Fsync == FsyncNever {
		s.mu.Unlock()
		return nil
	}
	sealed, f, dirty, dirDirty := s.sealed, s.active, s.dirty, s.dirDirty
	s.sealed, s.dirty, s.dirDirty = nil, false, false
	s.mu.Unlock()
	// Outside the lock, so appends go on during the fsyncs. The active
	// file is closed only by Close, which stops the background syncer
	// first.
	var errs []error
	for _, sf := range sealed {
		if err := sf.Sync(); err != nil {
			errs = append(errs, err)
		}
		sf.Close()
	}
	if dirty {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if dirDirty {
		if err := syncDir(s.o.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.m.syncErrors.Inc()
		return fmt.Errorf("spool sync: %w", err)
	}
	return nil
}

func (s *Spool) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.o.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Sync(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("spool: periodic fsync", "err", err)
			}
		}
	}
}

// Close syncs (unless fsync is "never") and closes the spool. Readers then
// report ErrClosed.
func (s *Spool) Close() error {
	if s.stop != nil {
		s.stopOnce.Do(func() {
			close(s.stop)
			<-s.done
		})
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.o.Fsync == FsyncAlways {
		s.dirty = true // Close promises a final fsync
	}
	s.mu.Unlock()
	err := s.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, f := range s.sealed {
		f.Close()
	}
	s.sealed = nil
	if cerr := s.active.Close(); err == nil {
		err = cerr
	}
	close(s.wake)
	unlockDir(s.lock)
	s.m.unregister()
	s.codec.close()
	if err != nil {
		return fmt.Errorf("spool close: %w", err)
	}
	return nil
}

// Bytes is the total size of the segment files.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// fsync syncs f unless the policy is "never".
func (s *Spool) fsync(f *os.File) error {
	if s.o.Fsync == FsyncNever {
		return nil
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
