package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const (
	cursorDir     = "cursors"
	quarantineDir = "quarantine"
	cursorSuffix  = ".cursor"
	cursorMagic   = "FWCR"
	cursorVersion = 1
	cursorSize    = 36 // magic 4, version 1, reserved 3, segment 8, offset 8, seq 8, crc 4
)

var cursorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func encodeCursor(p Position) []byte {
	b := make([]byte, cursorSize)
	copy(b[0:4], cursorMagic)
	b[4] = cursorVersion
	binary.LittleEndian.PutUint64(b[8:16], p.Segment)
	binary.LittleEndian.PutUint64(b[16:24], uint64(p.Offset))
	binary.LittleEndian.PutUint64(b[24:32], p.Seq)
	binary.LittleEndian.PutUint32(b[32:36], crc32.Checksum(b[0:32], castagnoli))
	return b
}

func decodeCursor(b []byte) (Position, error) {
	if len(b) >= 5 && string(b[0:4]) == cursorMagic && b[4] > cursorVersion {
		return Position{}, &VersionError{Found: int(b[4]), Supported: cursorVersion}
	}
	if len(b) != cursorSize || string(b[0:4]) != cursorMagic || b[4] != cursorVersion {
		return Position{}, errors.New("bad cursor header")
	}
	if crc32.Checksum(b[0:32], castagnoli) != binary.LittleEndian.Uint32(b[32:36]) {
		return Position{}, errors.New("bad cursor crc")
	}
	return Position{
		Segment: binary.LittleEndian.Uint64(b[8:16]),
		Offset:  int64(binary.LittleEndian.Uint64(b[16:24])),
		Seq:     binary.LittleEndian.Uint64(b[24:32]),
	}, nil
}

// readCursors reads every cursor file in dir; unreadable ones are reported
// through bad and skipped.
func readCursors(dir string, bad func(name string, err error)) (map[string]Position, error) {
	ents, err := os.ReadDir(filepath.Join(dir, cursorDir))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("spool: %w", err)
	}
	out := map[string]Position{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), cursorSuffix)
		if !ok || !cursorName.MatchString(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, cursorDir, e.Name()))
		var p Position
		if err == nil {
			p, err = decodeCursor(b)
		}
		if ve := (*VersionError)(nil); errors.As(err, &ve) {
			ve.Dir, ve.File = dir, filepath.Join(cursorDir, e.Name())
			return nil, ve
		}
		if err != nil {
			bad(name, err)
			continue
		}
		out[name] = p
	}
	return out, nil
}

func (s *Spool) loadCursors() ([]*cursorState, error) {
	ps, err := readCursors(s.o.Dir, func(name string, err error) {
		// A damaged cursor restarts its sink at the oldest data: duplicates,
		// never loss.
		s.log.Error("spool: ignoring damaged cursor; the sink restarts at the oldest data", "sink", name, "err", err)
	})
	if err != nil {
		return nil, err
	}
	var out []*cursorState
	for name, p := range ps {
		out = append(out, &cursorState{name: name, pos: p})
	}
	return out, nil
}

// writeCursor persists p atomically: temp file, fsync, rename, fsync dir.
func writeCursor(dir, name string, p Position, fsync bool) error {
	cdir := filepath.Join(dir, cursorDir)
	path := filepath.Join(cdir, name+cursorSuffix)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	_, err = f.Write(encodeCursor(p))
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && fsync {
		err = syncDir(cdir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write cursor %s: %w", name, err)
	}
	return nil
}

// Cursors lists the names of the persisted cursors, sorted.
func (s *Spool) Cursors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.cursors))
	for n := range s.cursors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RemoveCursor forgets a cursor, so that it no longer pins segments. The
// agent calls it at start for every cursor whose sink is not in the config.
// Removing an unknown name is not an error; removing one held by an open
// Reader is.
func (s *Spool) RemoveCursor(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	c, ok := s.cursors[name]
	if !ok {
		return nil
	}
	if c.open {
		return fmt.Errorf("spool: cursor %q has an open reader", name)
	}
	if err := os.Remove(filepath.Join(s.o.Dir, cursorDir, name+cursorSuffix)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("spool: remove cursor: %w", err)
	}
	delete(s.cursors, name)
	s.gc()
	return nil
}

// Lag is how far a cursor is behind the newest record.
type Lag struct {
	Events uint64
	Bytes  int64
}

// Lag reports the lag of cursor name; ok is false for an unknown name.
func (s *Spool) Lag(name string) (Lag, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cursors[name]
	if !ok {
		return Lag{}, false
	}
	return lagOf(s.segs, s.nextSeq, c.pos), true
}

func lagOf(segs []*segment, nextSeq uint64, p Position) Lag {
	var l Lag
	if len(segs) == 0 {
		return l
	}
	seq := p.Seq
	if p.Segment < segs[0].idx || seq < segs[0].baseSeq {
		seq = segs[0].baseSeq
	}
	if nextSeq > seq {
		l.Events = nextSeq - seq
	}
	for _, sg := range segs {
		switch {
		case sg.idx > p.Segment:
			l.Bytes += sg.size - segHeaderSize
		case sg.idx == p.Segment && p.Offset < sg.size:
			l.Bytes += sg.size - max(p.Offset, segHeaderSize)
		}
	}
	return l
}

// Record is one record read from the spool.
type Record struct {
	// Payload is valid until the next call to Next.
	Payload []byte
	Events  int
	Seq     uint64 // sequence number of the record's first event
	Time    time.Time
	Pos     Position // where the record starts
	End     Position // just after it: the cursor after Ack
}

// Reader reads the spool from one cursor. It has a scanner shape: Next,
// Record, Err. It is used by one goroutine; Ack persists the cursor.
type Reader struct {
	s    *Spool
	c    *cursorState
	pos  Position // next record to read
	rec  Record
	have bool
	err  error
	f    *os.File
	fseg uint64
	buf  []byte
	raw  []byte // decompressed payloads
	// inRaw: the current record's payload is in raw (it was compressed),
	// not in buf.
	inRaw bool

	dirty       bool // acknowledged but not persisted
	lastPersist time.Time
}

// Reader opens the cursor name, creating it at the oldest data if it does
// not exist. Only one Reader per name may be open at a time.
func (s *Spool) Reader(name string) (*Reader, error) {
	if !cursorName.MatchString(name) {
		return nil, fmt.Errorf("spool: cursor name %q: want letters, digits, '.', '_' or '-'", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	c, ok := s.cursors[name]
	if !ok {
		first := s.segs[0]
		c = &cursorState{name: name, pos: Position{first.idx, segHeaderSize, first.baseSeq}}
		c.persisted = c.pos
		if err := writeCursor(s.o.Dir, name, c.pos, s.o.Fsync != FsyncNever); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.cursors[name] = c
	}
	if c.open {
		return nil, fmt.Errorf("spool: cursor %q already has a reader", name)
	}
	c.open = true
	return &Reader{s: s, c: c, pos: c.pos}, nil
}

// Next reads the next record. It returns false at the end of the data (Err
// is nil; call Wait) or on an error (see Err). When drop_oldest deleted the
// segment under the reader, it moves on to the oldest remaining record.
func (r *Reader) Next() bool {
	r.err, r.have = nil, false
	for attempt := 0; ; attempt++ {
		seg, version, limit, ok := r.locate()
		if r.err != nil || !ok {
			return false
		}
		if r.f == nil || r.fseg != seg {
			if r.f != nil {
				r.f.Close()
				r.f = nil
			}
			f, err := os.Open(filepath.Join(r.s.o.Dir, segName(seg)))
			if err != nil {
				if os.IsNotExist(err) && attempt < 3 {
					continue // deleted meanwhile: locate again
				}
				r.err = fmt.Errorf("spool reader: %w", err)
				return false
			}
			r.f, r.fseg = f, seg
		}
		return r.read(seg, version, limit)
	}
}

// locate finds the segment and the readable limit for r.pos, moving pos
// over deleted or finished segments.
func (r *Reader) locate() (seg uint64, version uint8, limit int64, ok bool) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		r.err = ErrClosed
		return 0, 0, 0, false
	}
	for {
		sg := s.findSeg(r.pos.Segment)
		if sg == nil {
			next := s.segs[len(s.segs)-1]
			for _, x := range s.segs {
				if x.idx > r.pos.Segment {
					next = x
					break
				}
			}
			r.pos = Position{next.idx, segHeaderSize, next.baseSeq}
			continue
		}
		if r.pos.Offset < segHeaderSize {
			r.pos.Offset = segHeaderSize
		}
		if r.pos.Offset >= sg.size {
			if sg == s.segs[len(s.segs)-1] {
				return 0, 0, 0, false
			}
			i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].idx > sg.idx })
			n := s.segs[i]
			r.pos = Position{n.idx, segHeaderSize, n.baseSeq}
			continue
		}
		return sg.idx, sg.version, sg.size, true
	}
}

func (r *Reader) read(seg uint64, version uint8, limit int64) bool {
	var hbuf [recHeaderSize]byte
	hlen := recHeaderLen(version)
	hb := hbuf[:hlen]
	off := r.pos.Offset
	corrupt := func(err error) bool {
		r.err = &CorruptionError{Dir: r.s.o.Dir, Segment: seg, Offset: off, Err: err}
		r.s.m.corrupt.Inc()
		return false
	}
	if limit-off < hlen {
		return corrupt(errShortHeader)
	}
	if _, err := r.f.ReadAt(hb, off); err != nil {
		return corrupt(fmt.Errorf("read header: %w", err))
	}
	h := parseRecHeader(hb, version)
	if int64(h.length) > limit-off-hlen {
		return corrupt(errBadLength)
	}
	if cap(r.buf) < int(h.length) {
		r.buf = make([]byte, h.length, roomy(int(h.length)))
	}
	p := r.buf[:h.length]
	if _, err := r.f.ReadAt(p, off+hlen); err != nil {
		return corrupt(fmt.Errorf("read payload: %w", err))
	}
	if !h.check(hb, p) {
		return corrupt(errBadCRC)
	}
	p, err := r.s.codec.decode(h.codec, p, h.raw, &r.raw)
	if err != nil {
		return corrupt(err)
	}
	r.inRaw = h.codec != codecNone
	end := Position{seg, off + hlen + int64(h.length), h.seq + uint64(h.events)}
	r.rec = Record{Payload: p, Events: int(h.events), Seq: h.seq, Time: time.Unix(0, h.time),
		Pos: Position{seg, off, h.seq}, End: end}
	r.pos = end
	r.have = true
	return true
}

// Record returns the record read by the last successful Next.
func (r *Reader) Record() Record { return r.rec }

// TakePayload hands the caller the payload of the record read by the last
// successful Next, to keep past the next call to Next (Record's Payload
// is the same bytes), and gives the reader spare (nil is allowed) as the
// memory to read the next record into. It saves the copy a caller that
// keeps several records would otherwise make. Without a record it returns
// nil and keeps spare.
func (r *Reader) TakePayload(spare []byte) []byte {
	if !r.have {
		return nil
	}
	p := r.rec.Payload
	if r.inRaw {
		r.raw = spare[:0]
	} else {
		r.buf = spare[:0]
	}
	return p
}

// Err returns the error that stopped Next: ErrClosed, a *CorruptionError
// (call SkipDamaged to go on), or an I/O error.
func (r *Reader) Err() error { return r.err }

// SkipDamaged moves the reader past a damaged record: to the next good
// record of its segment (found by checking every record's CRC), or to the
// end of what the segment held when the damage was found. The events
// skipped, known exactly from the sequence numbers on both sides, are
// counted as corrupt (through Options.OnCorrupt) unless another reader or
// recovery counted them already.
func (r *Reader) SkipDamaged() {
	r.err = nil
	s := r.s
	s.mu.Lock()
	sg := s.findSeg(r.pos.Segment)
	if sg == nil {
		s.mu.Unlock()
		return
	}
	from, size := r.pos, sg.size
	s.mu.Unlock()
	to := Position{sg.idx, size, 0}
	if r.f != nil && r.fseg == sg.idx {
		res := scanSegment(r.f, size, true)
		for _, rec := range res.records {
			if rec.off > from.Offset {
				to = Position{sg.idx, rec.off, rec.seq}
				break
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if to.Offset == size {
		to.Seq = sg.endSeq
		if s.findSeg(sg.idx) == nil || sg.size != size {
			// Appended to meanwhile: the end seen at the scan.
			to.Seq = max(from.Seq, sg.endSeq)
		}
	}
	if n := s.countCorrupt(from.Seq, to.Seq); n > 0 {
		s.log.Error("spool: events lost to a damaged record, counted as corrupt", "sink", r.c.name,
			"segment", sg.idx, "offset", from.Offset, "from_seq", from.Seq, "to_seq", to.Seq, "events", n)
	}
	r.pos = to
}

// Valid reports whether the last record returned by Next is still in the
// spool (drop_oldest has not deleted its segment).
// When it is gone, Valid also closes the reader's handle on the deleted
// file, so that its disk space is freed.
func (r *Reader) Valid() bool {
	r.s.mu.Lock()
	ok := r.have && r.s.findSeg(r.rec.Pos.Segment) != nil
	r.s.mu.Unlock()
	if !ok && r.f != nil && r.fseg == r.rec.Pos.Segment {
		r.f.Close()
		r.f = nil
	}
	return ok
}

// Ack moves the cursor past the last record returned by Next. With fsync
// "always" it persists the cursor at once (temp file, fsync, rename, fsync
// dir); otherwise at most once per FsyncInterval, and always before Wait
// blocks and on Flush and Close. Segments every persisted cursor has
// passed are deleted. A cursor that did not reach the disk before a crash
// only means re-sending (at-least-once).
func (r *Reader) Ack() error {
	if !r.have {
		return nil
	}
	r.s.mu.Lock()
	if r.s.closed {
		r.s.mu.Unlock()
		return ErrClosed
	}
	r.c.pos = r.rec.End
	r.s.mu.Unlock()
	r.dirty = true
	if r.s.o.Fsync == FsyncAlways || time.Since(r.lastPersist) >= r.s.o.FsyncInterval {
		return r.Flush()
	}
	return nil
}

// AckTo moves the cursor to end, the End of a record this reader returned
// earlier, for a caller that has several records in flight and
// acknowledges them in order. Persistence is as for Ack.
func (r *Reader) AckTo(end Position) error {
	r.s.mu.Lock()
	if r.s.closed {
		r.s.mu.Unlock()
		return ErrClosed
	}
	r.c.pos = end
	r.s.mu.Unlock()
	r.dirty = true
	if r.s.o.Fsync == FsyncAlways || time.Since(r.lastPersist) >= r.s.o.FsyncInterval {
		return r.Flush()
	}
	return nil
}

// Holds reports whether rec, returned earlier by Next, is still in the
// spool (drop_oldest has not deleted its segment). Unlike the rest of the
// Reader it may be called from any goroutine.
func (r *Reader) Holds(rec Record) bool {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return !r.s.closed && r.s.findSeg(rec.Pos.Segment) != nil
}

// Flush persists the acknowledged position if it has not been yet.
func (r *Reader) Flush() error {
	if !r.dirty {
		return nil
	}
	s := r.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	p := r.c.pos
	s.mu.Unlock()
	if err := writeCursor(s.o.Dir, r.c.name, p, s.o.Fsync != FsyncNever); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r.dirty = false
	r.lastPersist = time.Now()
	s.mu.Lock()
	r.c.persisted = p
	s.gc()
	s.mu.Unlock()
	return nil
}

// Wait blocks until a record may be available after the reader's position,
// ctx is done, stop is closed (it may be nil) or the spool is closed.
func (r *Reader) Wait(ctx context.Context, stop <-chan struct{}) error {
	return r.WaitAny(ctx, stop, nil)
}

// WaitAny is Wait with two stop channels (either may be nil).
func (r *Reader) WaitAny(ctx context.Context, stop, stop2 <-chan struct{}) error {
	if err := r.Flush(); err != nil {
		return err
	}
	s := r.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	last := s.segs[len(s.segs)-1]
	if r.pos.Segment < last.idx || (r.pos.Segment == last.idx && r.pos.Offset < last.size) {
		s.mu.Unlock()
		return nil
	}
	w := s.wake
	s.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-stop:
		return nil
	case <-stop2:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AtEnd reports whether the reader has read everything appended so far.
func (r *Reader) AtEnd() bool {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	last := s.segs[len(s.segs)-1]
	return r.pos.Segment > last.idx || (r.pos.Segment == last.idx && r.pos.Offset >= last.size)
}

// Close persists the cursor and releases the reader.
func (r *Reader) Close() error {
	ferr := r.Flush()
	if errors.Is(ferr, ErrClosed) {
		ferr = nil
	}
	r.s.mu.Lock()
	r.c.open = false
	r.s.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	return ferr
}
