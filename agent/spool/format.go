package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk layout; FORMAT.md is the prose version of these constants.
const (
	segMagic      = "FWSG"
	segVersion    = 2  // the version this build writes; it reads 1 and 2
	segHeaderSize = 20 // magic 4, version 1, reserved 3, baseSeq 8, crc 4
	// recHeaderSize is the record header of version 2: length 4, events 4,
	// seq 8, time 8, raw 4, codec 1, reserved 3, crc 4.
	recHeaderSize = 36
	// recHeaderSizeV1 is the record header of version 1: length 4,
	// events 4, seq 8, time 8, crc 4.
	recHeaderSizeV1 = 28
	// maxRecordLen bounds what the scanner believes about a length field.
	maxRecordLen = 1 << 30
	segSuffix    = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errBadSegHeader = errors.New("bad segment header")
	errBadLength    = errors.New("record length runs past the end of the segment")
	errBadCRC       = errors.New("record CRC mismatch")
	errShortHeader  = errors.New("truncated record header")
)

func segName(idx uint64) string { return fmt.Sprintf("%020d%s", idx, segSuffix) }

func parseSegName(name string) (uint64, bool) {
	if !strings.HasSuffix(name, segSuffix) || len(name) != 20+len(segSuffix) {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
	return n, err == nil
}

// recHeaderLen is the size of a record header in a segment of version v.
func recHeaderLen(v uint8) int64 {
	if v == 1 {
		return recHeaderSizeV1
	}
	return recHeaderSize
}

func putSegHeader(b []byte, version uint8, baseSeq uint64) {
	copy(b[0:4], segMagic)
	b[4] = version
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(b[8:16], baseSeq)
	binary.LittleEndian.PutUint32(b[16:20], crc32.Checksum(b[0:16], castagnoli))
}

func parseSegHeader(b []byte) (baseSeq uint64, version uint8, err error) {
	if len(b) < segHeaderSize || string(b[0:4]) != segMagic {
		return 0, 0, fmt.Errorf("%w: magic", errBadSegHeader)
	}
	if b[4] > segVersion {
		// Every format keeps the magic and the version byte where they are,
		// so a newer segment is told apart from a damaged one and refused,
		// never quarantined (FORMAT.md, Versions).
		return 0, 0, &VersionError{Found: int(b[4]), Supported: segVersion}
	}
	if b[4] == 0 {
		return 0, 0, fmt.Errorf("%w: version %d", errBadSegHeader, b[4])
	}
	if crc32.Checksum(b[0:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return 0, 0, fmt.Errorf("%w: crc", errBadSegHeader)
	}
	return binary.LittleEndian.Uint64(b[8:16]), b[4], nil
}

// recHeader is the fixed part in front of every payload.
type recHeader struct {
	length uint32 // stored payload bytes
	events uint32
	seq    uint64
	time   int64  // unix nanoseconds at append
	raw    uint32 // payload bytes before compression (version 1: length)
	codec  uint8  // codecNone, codecLZ4, codecZstd (version 1: none)
	crc    uint32
}

// putRecHeader writes a version-2 record header (recHeaderSize bytes).
func putRecHeader(b []byte, h recHeader, payload []byte) {
	binary.LittleEndian.PutUint32(b[0:4], h.length)
	binary.LittleEndian.PutUint32(b[4:8], h.events)
	binary.LittleEndian.PutUint64(b[8:16], h.seq)
	binary.LittleEndian.PutUint64(b[16:24], uint64(h.time))
	binary.LittleEndian.PutUint32(b[24:28], h.raw)
	b[28], b[29], b[30], b[31] = h.codec, 0, 0, 0
	c := crc32.Update(crc32.Checksum(b[0:32], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(b[32:36], c)
}

// parseRecHeader reads a record header of a segment of version v
// (recHeaderLen(v) bytes).
func parseRecHeader(b []byte, v uint8) recHeader {
	h := recHeader{
		length: binary.LittleEndian.Uint32(b[0:4]),
		events: binary.LittleEndian.Uint32(b[4:8]),
		seq:    binary.LittleEndian.Uint64(b[8:16]),
		time:   int64(binary.LittleEndian.Uint64(b[16:24])),
	}
	if v == 1 {
		h.raw, h.codec = h.length, codecNone
		h.crc = binary.LittleEndian.Uint32(b[24:28])
		return h
	}
	h.raw = binary.LittleEndian.Uint32(b[24:28])
	h.codec = b[28]
	h.crc = binary.LittleEndian.Uint32(b[32:36])
	return h
}

// check verifies the CRC over the header bytes hb (without the CRC field)
// and the payload.
func (h recHeader) check(hb, payload []byte) bool {
	return crc32.Update(crc32.Checksum(hb[:len(hb)-4], castagnoli), castagnoli, payload) == h.crc
}

// scannedRecord is one good record found by scanSegment.
type scannedRecord struct {
	off    int64 // offset of the record header
	size   int64 // header + payload
	events uint32
	seq    uint64
	time   int64
	raw    uint32 // payload bytes before compression
	codec  uint8
}

// span is a damaged byte range [Start, End) of a segment.
type span struct {
	start, end int64
	err        error
}

// scanResult is everything scanSegment learned about one segment.
type scanResult struct {
	baseSeq uint64
	version uint8
	hdrErr  error // the segment header itself is bad; nothing else is known
	records []scannedRecord
	bad     []span
	// tailBad reports that the last bad span reaches the end of the data
	// with no good record after it (a torn tail, if this is the newest
	// segment).
	tailBad bool
}

func (r *scanResult) end() int64 {
	if len(r.records) == 0 {
		return segHeaderSize
	}
	l := r.records[len(r.records)-1]
	return l.off + l.size
}

// scanSegment walks the records of one segment of the given size. With
// verify it checks every CRC (reading every payload); without it, it only
// follows the length fields. On a record with a bad CRC and a plausible
// length it tries to resynchronise on the next record; if that one is good
// the bad record is a damaged span and the scan goes on, otherwise the rest
// of the segment is one damaged span. It never panics on any input.
func scanSegment(r io.ReaderAt, size int64, verify bool) scanResult {
	var res scanResult
	var hb [segHeaderSize]byte
	if size < segHeaderSize {
		res.hdrErr = fmt.Errorf("%w: %d bytes", errBadSegHeader, size)
		return res
	}
	if _, err := r.ReadAt(hb[:], 0); err != nil {
		res.hdrErr = fmt.Errorf("%w: %v", errBadSegHeader, err)
		return res
	}
	base, version, err := parseSegHeader(hb[:])
	if err != nil {
		res.hdrErr = err
		return res
	}
	res.baseSeq, res.version = base, version
	hlen := recHeaderLen(version)
	var buf []byte
	// readRec reads and checks the record at off.
	readRec := func(off int64) (scannedRecord, error) {
		var hbuf [recHeaderSize]byte
		h := hbuf[:hlen]
		if size-off < hlen {
			return scannedRecord{}, errShortHeader
		}
		if _, err := r.ReadAt(h, off); err != nil {
			return scannedRecord{}, fmt.Errorf("read header: %w", err)
		}
		rh := parseRecHeader(h, version)
		if int64(rh.length) > maxRecordLen || int64(rh.length) > size-off-hlen {
			return scannedRecord{}, errBadLength
		}
		rec := scannedRecord{off: off, size: hlen + int64(rh.length), events: rh.events, seq: rh.seq, time: rh.time, raw: rh.raw, codec: rh.codec}
		if verify {
			if cap(buf) < int(rh.length) {
				buf = make([]byte, rh.length)
			}
			p := buf[:rh.length]
			// An empty payload is not read: a ReaderAt may answer EOF to an
			// empty read at its end (bytes.Reader does).
			if _, err := r.ReadAt(p, off+hlen); err != nil && len(p) > 0 {
				return rec, fmt.Errorf("read payload: %w", err)
			}
			if !rh.check(h, p) {
				return rec, errBadCRC
			}
		}
		return rec, nil
	}
	off := int64(segHeaderSize)
	for off < size {
		rec, err := readRec(off)
		if err == nil {
			res.records = append(res.records, rec)
			off += rec.size
			continue
		}
		if errors.Is(err, errBadCRC) {
			next := off + rec.size
			if next == size {
				res.bad = append(res.bad, span{off, size, err})
				res.tailBad = true
				return res
			}
			if _, nerr := readRec(next); nerr == nil {
				res.bad = append(res.bad, span{off, next, err})
				off = next
				continue
			}
		}
		res.bad = append(res.bad, span{off, size, err})
		res.tailBad = true
		return res
	}
	return res
}

// checkVersions reads the version byte of every segment and cursor in dir and
// returns a *VersionError for the first one newer than this build reads. A
// file too short or with another magic is left to recovery.
func checkVersions(dir string, idxs []uint64) error {
	check := func(rel, magic string, supported int) error {
		f, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			return nil // recovery reports what it cannot open
		}
		defer f.Close()
		var b [5]byte
		if _, err := io.ReadFull(f, b[:]); err != nil || string(b[0:4]) != magic || int(b[4]) <= supported {
			return nil
		}
		return &VersionError{Dir: dir, File: rel, Found: int(b[4]), Supported: supported}
	}
	for _, idx := range idxs {
		if err := check(segName(idx), segMagic, segVersion); err != nil {
			return err
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, cursorDir))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), cursorSuffix) {
			if err := check(filepath.Join(cursorDir, e.Name()), cursorMagic, cursorVersion); err != nil {
				return err
			}
		}
	}
	return nil
}
