package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// segmentBytes builds a valid segment of n records, for the seed corpus.
func segmentBytes(n int) []byte { return codecSegmentBytes(n, CompressionNone) }

// codecSegmentBytes builds a valid segment of n records compressed with the
// named codec, for the seed corpus.
func codecSegmentBytes(n int, compression string) []byte {
	c, err := newCodec(compression)
	if err != nil {
		panic(err)
	}
	defer c.close()
	b := make([]byte, segHeaderSize)
	putSegHeader(b, segVersion, 100)
	seq := uint64(100)
	for i := 0; i < n; i++ {
		p := payload(seq, 3, i*7)
		if compression != CompressionNone {
			p = jsonPayload(seq, 3)
		}
		stored, id, release := c.encode(p)
		var h [recHeaderSize]byte
		putRecHeader(h[:], recHeader{length: uint32(len(stored)), events: 3, seq: seq, time: int64(i), raw: uint32(len(p)), codec: id}, stored)
		b = append(append(b, h[:]...), stored...)
		release()
		seq += 3
	}
	return b
}

// FuzzRecover feeds arbitrary bytes to the recovery scan, as the newest and
// as a sealed segment, and opens a spool over them: nothing may panic, and
// what Open keeps must read back cleanly and verify clean.
func FuzzRecover(f *testing.F) {
	good := segmentBytes(4)
	f.Add(good)
	f.Add(good[:len(good)-5])
	flipped := bytes.Clone(good)
	flipped[segHeaderSize+recHeaderSize+2] ^= 0x40
	f.Add(flipped)
	f.Add(good[:segHeaderSize])
	f.Add([]byte("FWSG"))
	f.Add([]byte{})
	for _, c := range []string{CompressionLZ4, CompressionZstd} {
		z := codecSegmentBytes(4, c)
		f.Add(z)
		f.Add(z[:len(z)-5])
	}
	f.Fuzz(fuzzRecover)
}

func fuzzRecover(t *testing.T, data []byte) {
	for _, verify := range []bool{true, false} {
		res := scanSegment(bytes.NewReader(data), int64(len(data)), verify)
		end := int64(segHeaderSize)
		for _, r := range res.records {
			if r.off != end && len(res.bad) == 0 {
				t.Fatalf("record at %d, expected %d", r.off, end)
			}
			if r.off < end || r.off+r.size > int64(len(data)) {
				t.Fatalf("record [%d,+%d) out of order or out of bounds (%d)", r.off, r.size, len(data))
			}
			end = r.off + r.size
		}
		for _, b := range res.bad {
			if b.start < segHeaderSize || b.end > int64(len(data)) || b.start >= b.end {
				t.Fatalf("bad span [%d,%d) in %d bytes", b.start, b.end, len(data))
			}
		}
	}
	// Each execution opens a spool: on tmpfs when there is one, so that
	// an execution costs microseconds of metadata work, not disk latency.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "fileward-fuzz-spool-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Fsync: FsyncNever}
	if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(2)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		return // a refusal is fine; a panic is not
	}
	r, err := s.Reader("fuzz")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() || r.Err() != nil {
		// A record whose CRC is good but whose payload does not decode is
		// found by the reader, not by recovery: it is skipped and counted.
		if err := r.Err(); err != nil {
			if !errors.Is(err, errBadPayload) {
				t.Fatalf("read after recovery: %v", err)
			}
			r.SkipDamaged()
		}
	}
	r.Close()
	if err := s.Append(context.Background(), []byte("x"), 1); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	s.Close()
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 0 {
		t.Fatalf("damage after recovery: %+v", rep.Damage)
	}
}

// FuzzScanSegment is the recovery scan alone, without the file system
// around it, so the fuzzer can run it fast.
func FuzzScanSegment(f *testing.F) {
	good := segmentBytes(4)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte("FWSG"))
	f.Add(codecSegmentBytes(3, CompressionLZ4))
	f.Add(codecSegmentBytes(3, CompressionZstd))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, verify := range []bool{true, false} {
			res := scanSegment(bytes.NewReader(data), int64(len(data)), verify)
			if res.hdrErr == nil && res.end() > int64(len(data)) {
				t.Fatalf("scan ends at %d of %d bytes", res.end(), len(data))
			}
		}
	})
}

// FuzzDecodePayload feeds arbitrary stored bytes, codec bytes and raw
// lengths to the record decoder: it never panics, and it either fails with
// errBadPayload or returns exactly raw bytes. Every codec's encoder output
// decodes back to its input.
func FuzzDecodePayload(f *testing.F) {
	lz, zs := codecSegmentBytes(1, CompressionLZ4), codecSegmentBytes(1, CompressionZstd)
	f.Add(uint8(codecLZ4), uint32(300), lz[segHeaderSize+recHeaderSize:])
	f.Add(uint8(codecZstd), uint32(300), zs[segHeaderSize+recHeaderSize:])
	f.Add(uint8(codecNone), uint32(3), []byte("abc"))
	f.Add(uint8(9), uint32(0), []byte{})
	codecs := map[string]*codec{}
	for _, n := range codecNames {
		c, err := newCodec(n)
		if err != nil {
			f.Fatal(err)
		}
		codecs[n] = c
	}
	f.Fuzz(func(t *testing.T, id uint8, raw uint32, data []byte) {
		var buf []byte
		raw %= 1 << 20 // bound the allocation the decoder makes for raw
		out, err := codecs[CompressionZstd].decode(id, data, raw, &buf)
		if err != nil && !errors.Is(err, errBadPayload) {
			t.Fatalf("decode error %v is not errBadPayload", err)
		}
		if err == nil && len(out) != int(raw) {
			t.Fatalf("decoded %d bytes, raw %d", len(out), raw)
		}
		for name, c := range codecs {
			stored, sid, release := c.encode(data)
			got, err := c.decode(sid, stored, uint32(len(data)), &buf)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: round trip of %d bytes: %v", name, len(data), err)
			}
			release()
		}
	})
}
