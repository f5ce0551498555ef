package sinks

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary form of a Batch, as the spool stores it inside one record:
//
//	version  byte   (1)
//	count    uint32 little-endian (fixed width, so a writer can patch it)
//	key      uvarint length + bytes   (shared by all events: host.id)
//	count × {
//	    flags  byte     (bit 0: the event has its own key, which follows)
//	    [key   uvarint length + bytes]
//	    id     uvarint length + bytes
//	    doc    uvarint length + bytes
//	}
//
// The spool frames and checksums the record; this layout only has to be
// self-delimiting. Documents are stored exactly as encoded.
const batchVersion = 1

// ErrBadBatch is returned by DecodeBatch for bytes that are not a batch.
var ErrBadBatch = errors.New("malformed batch")

// AppendBatch appends the binary form of events to dst.
func AppendBatch(dst []byte, events []Event) []byte {
	dst = append(dst, batchVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(events)))
	shared := ""
	if len(events) > 0 {
		shared = events[0].Key
	}
	dst = appendString(dst, shared)
	for i := range events {
		ev := &events[i]
		if ev.Key != shared {
			dst = append(dst, 1)
			dst = appendString(dst, ev.Key)
		} else {
			dst = append(dst, 0)
		}
		dst = appendString(dst, ev.ID)
		dst = binary.AppendUvarint(dst, uint64(len(ev.Doc)))
		dst = append(dst, ev.Doc...)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// BatchLen returns the number of events in an encoded batch without decoding it.
func BatchLen(p []byte) (int, error) {
	if len(p) < 5 || p[0] != batchVersion {
		return 0, fmt.Errorf("%w: unknown version or short header", ErrBadBatch)
	}
	n := binary.LittleEndian.Uint32(p[1:5])
	if uint64(n) > uint64(len(p)) {
		return 0, fmt.Errorf("%w: bad count", ErrBadBatch)
	}
	return int(n), nil
}

// DecodeBatch parses p into b, reusing b's slice. Docs alias p, so p must
// outlive b's use of them.
func DecodeBatch(p []byte, b *Batch) error {
	n, err := BatchLen(p)
	if err != nil {
		return err
	}
	r := p[5:]
	shared, r, err := readBytes(r)
	if err != nil {
		return err
	}
	sharedKey := string(shared)
	b.Events = b.Events[:0]
	for i := 0; i < n; i++ {
		if len(r) < 1 {
			return fmt.Errorf("%w: event %d: truncated", ErrBadBatch, i)
		}
		flags := r[0]
		r = r[1:]
		ev := Event{Key: sharedKey}
		if flags&1 != 0 {
			var key []byte
			if key, r, err = readBytes(r); err != nil {
				return fmt.Errorf("event %d key: %w", i, err)
			}
			ev.Key = string(key)
		}
		var id []byte
		if id, r, err = readBytes(r); err != nil {
			return fmt.Errorf("event %d id: %w", i, err)
		}
		ev.ID = string(id)
		if ev.Doc, r, err = readBytes(r); err != nil {
			return fmt.Errorf("event %d doc: %w", i, err)
		}
		b.Events = append(b.Events, ev)
	}
	if len(r) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadBatch, len(r))
	}
	return nil
}

func readBytes(p []byte) (val, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, fmt.Errorf("%w: bad length", ErrBadBatch)
	}
	end := k + int(n)
	return p[k:end:end], p[end:], nil
}

// BatchWriter builds the binary form of a batch one event at a time, into a
// buffer it reuses, without allocating per event.
type BatchWriter struct {
	buf   []byte
	key   string
	count uint32
}

// Reset starts a new batch whose events share key (host.id).
func (w *BatchWriter) Reset(key string) {
	w.key = key
	w.count = 0
	w.buf = append(w.buf[:0], batchVersion, 0, 0, 0, 0)
	w.buf = appendString(w.buf, key)
}

// Add appends one event with the shared key.
func (w *BatchWriter) Add(id, doc []byte) {
	w.buf = append(w.buf, 0)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(id)))
	w.buf = append(w.buf, id...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(doc)))
	w.buf = append(w.buf, doc...)
	w.count++
}

// Len is the number of events added since Reset.
func (w *BatchWriter) Len() int { return int(w.count) }

// Size is the encoded size so far.
func (w *BatchWriter) Size() int { return len(w.buf) }

// Bytes returns the encoded batch. It is valid until the next Reset or Add.
func (w *BatchWriter) Bytes() []byte {
	if len(w.buf) >= 5 {
		binary.LittleEndian.PutUint32(w.buf[1:5], w.count)
	}
	return w.buf
}
