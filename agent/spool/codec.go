package spool

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Values of Options.Compression (spool.compression).
const (
	CompressionNone = "none"
	CompressionLZ4  = "lz4"
	CompressionZstd = "zstd"
)

// Codec bytes of a version-2 record header (FORMAT.md).
const (
	codecNone uint8 = 0
	codecLZ4  uint8 = 1 // one LZ4 block (no frame)
	codecZstd uint8 = 2 // one zstd frame
)

// errBadPayload is a record whose CRC is good but whose payload does not
// decode to its raw length: the reader treats it as damage (counted as
// corrupt, skipped), never as a crash.
var errBadPayload = errors.New("record payload does not decode")

// codecName names a codec byte for humans (spool stat).
func codecName(c uint8) string {
	switch c {
	case codecNone:
		return CompressionNone
	case codecLZ4:
		return CompressionLZ4
	case codecZstd:
		return CompressionZstd
	}
	return fmt.Sprintf("unknown(%d)", c)
}

// codec compresses records for Append and decompresses them for readers.
// Every spool can read every codec, whatever it writes.
type codec struct {
	write uint8 // the codec Append uses
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	bufs  sync.Pool // *[]byte, compression output
}

func newCodec(name string) (*codec, error) {
	c := &codec{}
	switch name {
	case CompressionNone:
		c.write = codecNone
	case CompressionLZ4:
		c.write = codecLZ4
	case CompressionZstd:
		c.write = codecZstd
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("spool: zstd encoder: %w", err)
		}
		c.enc = enc
	default:
		return nil, fmt.Errorf("spool: compression %q: want none, lz4 or zstd", name)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(maxRecordLen))
	if err != nil {
		return nil, fmt.Errorf("spool: zstd decoder: %w", err)
	}
	c.dec = dec
	return c, nil
}

func (c *codec) close() {
	if c.enc != nil {
		c.enc.Close()
	}
	c.dec.Close()
}

// encode compresses payload with the spool's codec into a pooled buffer.
// It returns the bytes to store and their codec; release gives the buffer
// back once they are written. A payload that does not get smaller is
// stored as it is (codec none).
func (c *codec) encode(payload []byte) (stored []byte, id uint8, release func()) {
	if c.write == codecNone || len(payload) == 0 {
		return payload, codecNone, func() {}
	}
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	var out []byte
	switch c.write {
	case codecLZ4:
		if n := lz4.CompressBlockBound(len(payload)); cap(*bp) < n {
			*bp = make([]byte, n)
		}
		dst := (*bp)[:cap(*bp)]
		if n, err := lz4.CompressBlock(payload, dst, nil); err == nil && n > 0 {
			out = dst[:n]
		}
	case codecZstd:
		out = c.enc.EncodeAll(payload, (*bp)[:0])
		*bp = out[:0]
	}
	release = func() { c.bufs.Put(bp) }
	if out == nil || len(out) >= len(payload) {
		release()
		return payload, codecNone, func() {}
	}
	return out, c.write, release
}

// decode returns the raw payload of a record stored with codec id; buf is
// the reader's buffer for the output, grown as needed.
func (c *codec) decode(id uint8, stored []byte, raw uint32, buf *[]byte) ([]byte, error) {
	switch id {
	case codecNone:
		if int64(raw) != int64(len(stored)) {
			return nil, fmt.Errorf("%w: codec none, %d bytes stored, header says %d", errBadPayload, len(stored), raw)
		}
		return stored, nil
	case codecLZ4, codecZstd:
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", errBadPayload, id)
	}
	if raw == 0 || raw > maxRecordLen {
		// The writer never compresses an empty payload (and the lz4
		// decoder must not be given an empty output buffer).
		return nil, fmt.Errorf("%w: %s: raw length %d", errBadPayload, codecName(id), raw)
	}
	if cap(*buf) < int(raw) {
		*buf = make([]byte, raw, roomy(int(raw)))
	}
	var out []byte
	var err error
	if id == codecLZ4 {
		var n int
		n, err = lz4.UncompressBlock(stored, (*buf)[:raw])
		out = (*buf)[:max(n, 0)]
	} else {
		full := (*buf)[:cap(*buf)]
		out, err = c.dec.DecodeAll(stored, full[:0:raw]) // at most raw bytes
		if err == nil && len(out) > 0 && &out[0] == &full[0] {
			// The same bytes with the buffer's whole capacity, so that a
			// payload passed back (Reader.TakePayload) keeps its room.
			out = full[:len(out)]
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBadPayload, codecName(id), err)
	}
	if len(out) != int(raw) {
		return nil, fmt.Errorf("%w: %s: %d bytes, header says %d", errBadPayload, codecName(id), len(out), raw)
	}
	return out, nil
}

// roomy is the capacity to allocate for n bytes of a record: a quarter
// more, so that a buffer passed on from record to record (Reader.TakePayload)
// also fits the next one, whose size differs by a few bytes, instead of
// being allocated again.
func roomy(n int) int { return n + n/4 }
