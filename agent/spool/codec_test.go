package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var codecNames = []string{CompressionNone, CompressionLZ4, CompressionZstd}

// jsonPayload is a payload in the shape payload() has (n event ids, 8 bytes
// each, which ids() reads back) followed by n ECS-like JSON documents, so
// that it compresses as the agent's batches do.
func jsonPayload(first uint64, n int) []byte {
	b := make([]byte, 0, n*300)
	for i := 0; i < n; i++ {
		b = binary.LittleEndian.AppendUint64(b, first+uint64(i))
	}
	for i := 0; i < n; i++ {
		id := first + uint64(i)
		b = fmt.Appendf(b, `{"@timestamp":"2026-12-02T08:%02d:%02d.%03dZ","event":{"id":"%016x","action":"open","category":["file"]},`+
			`"file":{"path":"/home/user%d/project/src/file%d.go"},"process":{"pid":%d,"executable":"/usr/bin/vim"}}`+"\n",
			id/60%60, id%60, id%1000, id*2654435761, id%7, id%113, 1000+id%50)
	}
	return b
}

func codecOpts(dir, compression string) Options {
	o := testOpts(dir)
	o.Compression = compression
	o.MaxBytes = 8 << 20
	return o
}

// TestCompressionRoundTrip: with each codec, records read back exactly as
// appended, across segment rolls and a reopen; compressed records take
// fewer bytes on disk, and Inspect reports the codec, the events held and
// the ratio.
func TestCompressionRoundTrip(t *testing.T) {
	var noneBytes int64
	for _, name := range codecNames {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, codecOpts(dir, name))
			if r, err := s.Reader("b"); err != nil { // pins every record for the second pass
				t.Fatal(err)
			} else {
				r.Close()
			}
			const per, records = 40, 60
			var raw int64
			for i := 0; i < records; i++ {
				p := jsonPayload(uint64(i*per), per)
				raw += int64(len(p))
				if err := s.Append(context.Background(), p, per); err != nil {
					t.Fatal(err)
				}
			}
			got := readAll(t, s, "a", per)
			checkSeq(t, got, 0, per*records)
			s.Close()
			s = mustOpen(t, codecOpts(dir, CompressionNone)) // reads every codec whatever it writes
			r, err := s.Reader("b")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for r.Next() {
				rec := r.Record()
				if want := jsonPayload(rec.Seq, rec.Events); !bytes.Equal(rec.Payload, want) {
					t.Fatalf("record at seq %d differs from what was appended", rec.Seq)
				}
				n++
			}
			if r.Err() != nil || n != records {
				t.Fatalf("read %d of %d records: %v", n, records, r.Err())
			}
			r.Close()
			s.Close()
			rep, err := Inspect(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != per*records || rep.RawBytes != raw || rep.Codecs[name] != records || len(rep.Codecs) != 1 {
				t.Fatalf("inspect: events %d raw %d codecs %v, want %d, %d, %s %d", rep.Events, rep.RawBytes, rep.Codecs, per*records, raw, name, records)
			}
			for _, sg := range rep.Segments {
				if sg.Version != segVersion {
					t.Errorf("segment %s is version %d", sg.File, sg.Version)
				}
			}
			switch name {
			case CompressionNone:
				noneBytes = rep.Bytes
				if rep.Ratio() != 1 || rep.StoredBytes != raw {
					t.Errorf("none: ratio %v, stored %d of %d", rep.Ratio(), rep.StoredBytes, raw)
				}
			default:
				if rep.Ratio() < 2 || rep.StoredBytes*2 > raw {
					t.Errorf("%s: ratio %.2f (stored %d of %d)", name, rep.Ratio(), rep.StoredBytes, raw)
				}
				if noneBytes > 0 && rep.Bytes*2 > noneBytes {
					t.Errorf("%s: %d bytes on disk, none %d", name, rep.Bytes, noneBytes)
				}
			}
		})
	}
}

// TestMixedCodecsInOneSegment: a restart with another codec appends to the
// same segment; readers decode each record by its own codec byte.
func TestMixedCodecsInOneSegment(t *testing.T) {
	dir := t.TempDir()
	seq := uint64(0)
	for _, name := range []string{CompressionZstd, CompressionNone, CompressionLZ4, CompressionZstd} {
		s := mustOpen(t, codecOpts(dir, name))
		for i := 0; i < 3; i++ {
			if err := s.Append(context.Background(), jsonPayload(seq, 10), 10); err != nil {
				t.Fatal(err)
			}
			seq += 10
		}
		s.Close()
	}
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Segments) != 1 || rep.Codecs[CompressionZstd] != 6 || rep.Codecs[CompressionNone] != 3 || rep.Codecs[CompressionLZ4] != 3 {
		t.Fatalf("segments %d, codecs %v", len(rep.Segments), rep.Codecs)
	}
	s := mustOpen(t, codecOpts(dir, CompressionLZ4))
	defer s.Close()
	checkSeq(t, readAll(t, s, "x", 10), 0, seq)
}

// TestIncompressibleRecordStoredAsIs: a payload that compression would not
// shrink is stored uncompressed (codec none), and small or empty payloads
// read back.
func TestIncompressibleRecordStoredAsIs(t *testing.T) {
	for _, name := range []string{CompressionLZ4, CompressionZstd} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, codecOpts(dir, name))
			rng := rand.New(rand.NewPCG(1, 2))
			noise := make([]byte, 8<<10)
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			for _, p := range [][]byte{noise, nil, []byte("x"), jsonPayload(0, 20)} {
				if err := s.Append(context.Background(), p, 1); err != nil {
					t.Fatal(err)
				}
			}
			r, _ := s.Reader("r")
			var got [][]byte
			for r.Next() {
				got = append(got, bytes.Clone(r.Record().Payload))
			}
			r.Close()
			s.Close()
			if len(got) != 4 || !bytes.Equal(got[0], noise) || len(got[1]) != 0 || string(got[2]) != "x" || !bytes.Equal(got[3], jsonPayload(0, 20)) {
				t.Fatalf("read back %d records, err %v", len(got), r.Err())
			}
			rep, err := Inspect(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Codecs[CompressionNone] != 3 || rep.Codecs[name] != 1 {
				t.Fatalf("codecs %v: want 3 stored as is, 1 compressed", rep.Codecs)
			}
		})
	}
}

// TestTornCompressedRecord: a compressed record cut short by a crash is a
// torn tail: truncated at the next open, every whole record kept.
func TestTornCompressedRecord(t *testing.T) {
	for _, name := range []string{CompressionLZ4, CompressionZstd} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := codecOpts(dir, name)
			s := mustOpen(t, o)
			for i := 0; i < 5; i++ {
				s.Append(context.Background(), jsonPayload(uint64(i*20), 20), 20)
			}
			s.Close()
			path := filepath.Join(dir, segName(1))
			res := scanFile(t, path)
			last := res.records[4]
			if last.codec != codecByName(t, name) {
				t.Fatalf("last record has codec %d", last.codec)
			}
			if err := os.Truncate(path, last.off+last.size-7); err != nil {
				t.Fatal(err)
			}
			rep, err := Inspect(dir, true)
			if err != nil || rep.Corrupt() || len(rep.Damage) != 1 || !rep.Damage[0].Torn {
				t.Fatalf("inspect: %v %+v", err, rep.Damage)
			}
			var corrupt uint64
			o.OnCorrupt = func(n uint64) { corrupt += n }
			s = mustOpen(t, o)
			defer s.Close()
			if rec := s.Recovery(); rec.TornTails != 1 || rec.TornBytes != last.size-7 || rec.BadRecords != 0 {
				t.Fatalf("recovery %+v", rec)
			}
			checkSeq(t, readAll(t, s, "r", 20), 0, 80)
			if corrupt != 0 {
				t.Errorf("a torn tail counted %d corrupt events", corrupt)
			}
		})
	}
}

func codecByName(t *testing.T, name string) uint8 {
	t.Helper()
	c, err := newCodec(name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	return c.write
}

// rewriteRecord lets mutate change the stored payload (and the codec and
// raw fields) of the record at rec, then recomputes its CRC, so that the
// damage is one the CRC cannot see: a payload that does not decode.
func rewriteRecord(t *testing.T, path string, rec scannedRecord, mutate func(hdr, payload []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := b[rec.off : rec.off+recHeaderSize]
	p := b[rec.off+recHeaderSize : rec.off+rec.size]
	mutate(hdr, p)
	c := crc32.Update(crc32.Checksum(hdr[:32], castagnoli), castagnoli, p)
	binary.LittleEndian.PutUint32(hdr[32:36], c)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestUndecodablePayloadCountedAsCorrupt: a record whose CRC is good but
// whose compressed payload does not decode (garbage, a wrong raw length, an
// unknown codec byte) is a *CorruptionError for the reader, never a panic;
// SkipDamaged counts exactly its events as corrupt, once, and reading goes
// on with the next record.
func TestUndecodablePayloadCountedAsCorrupt(t *testing.T) {
	cases := []struct {
		name, codec string
		mutate      func(hdr, p []byte)
	}{
		{"zstd garbage", CompressionZstd, func(_, p []byte) {
			for i := 4; i < len(p); i++ {
				p[i] ^= 0x5a
			}
		}},
		{"lz4 garbage", CompressionLZ4, func(_, p []byte) {
			for i := range p {
				p[i] = 0xff
			}
		}},
		{"zstd raw length too small", CompressionZstd, func(h, _ []byte) { binary.LittleEndian.PutUint32(h[24:28], 10) }},
		{"zstd raw length too large", CompressionZstd, func(h, _ []byte) {
			binary.LittleEndian.PutUint32(h[24:28], binary.LittleEndian.Uint32(h[24:28])+1)
		}},
		{"lz4 raw length too large", CompressionLZ4, func(h, _ []byte) {
			binary.LittleEndian.PutUint32(h[24:28], binary.LittleEndian.Uint32(h[24:28])+1)
		}},
		{"lz4 raw length too small", CompressionLZ4, func(h, _ []byte) { binary.LittleEndian.PutUint32(h[24:28], 10) }},
		{"none raw length wrong", CompressionNone, func(h, _ []byte) { binary.LittleEndian.PutUint32(h[24:28], 3) }},
		{"unknown codec", CompressionZstd, func(h, _ []byte) { h[28] = 9 }},
		{"raw length past the limit", CompressionLZ4, func(h, _ []byte) { binary.LittleEndian.PutUint32(h[24:28], maxRecordLen+1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := codecOpts(dir, c.codec)
			var corrupt uint64
			o.OnCorrupt = func(n uint64) { corrupt += n }
			s := mustOpen(t, o)
			for i := 0; i < 4; i++ {
				s.Append(context.Background(), jsonPayload(uint64(i*10), 10), 10)
			}
			s.Close()
			path := filepath.Join(dir, segName(1))
			rewriteRecord(t, path, scanFile(t, path).records[1], c.mutate)
			// The CRC is good: recovery sees nothing, the reader finds it.
			s = mustOpen(t, o)
			defer s.Close()
			if rec := s.Recovery(); rec.BadRecords+rec.TornTails != 0 {
				t.Fatalf("recovery %+v", rec)
			}
			r, err := s.Reader("r")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var seqs []uint64
			for {
				if r.Next() {
					seqs = append(seqs, r.Record().Seq)
					checkSeq(t, ids(r.Record().Payload, 10), r.Record().Seq, r.Record().Seq+10)
					r.Ack()
					continue
				}
				if r.Err() == nil {
					break
				}
				var ce *CorruptionError
				if !errors.As(r.Err(), &ce) || !errors.Is(r.Err(), errBadPayload) || ce.Offset != scanFile(t, path).records[1].off {
					t.Fatalf("Err = %v, want a *CorruptionError at the second record wrapping errBadPayload", r.Err())
				}
				r.SkipDamaged()
			}
			if fmt.Sprint(seqs) != "[0 20 30]" || corrupt != 10 {
				t.Fatalf("read records at %v, corrupt %d; want [0 20 30] and 10", seqs, corrupt)
			}
			// A second reader finds the same record: counted once.
			r2, _ := s.Reader("r2")
			defer r2.Close()
			for r2.Next() || r2.Err() != nil {
				if r2.Err() != nil {
					r2.SkipDamaged()
				}
			}
			if corrupt != 10 {
				t.Errorf("a second reader counted the damage again: %d", corrupt)
			}
		})
	}
}

// TestCompressedCorruptionAtRecovery: a flipped byte inside a compressed
// payload fails its CRC: recovery quarantines the segment, keeps the good
// records and counts exactly the damaged record's events as corrupt.
func TestCompressedCorruptionAtRecovery(t *testing.T) {
	for _, name := range []string{CompressionLZ4, CompressionZstd} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := codecOpts(dir, name)
			s := mustOpen(t, o)
			r, _ := s.Reader("sink")
			r.Close()
			for i := 0; i < 6; i++ {
				s.Append(context.Background(), jsonPayload(uint64(i*10), 10), 10)
			}
			s.Close()
			path := filepath.Join(dir, segName(1))
			rec := scanFile(t, path).records[2]
			flip(t, path, rec.off+recHeaderSize+(rec.size-recHeaderSize)/2)
			var corrupt uint64
			o.OnCorrupt = func(n uint64) { corrupt += n }
			s = mustOpen(t, o)
			defer s.Close()
			if rc := s.Recovery(); rc.BadRecords != 1 || len(rc.Quarantined) != 1 || rc.LostEvents != 10 || corrupt != 10 {
				t.Fatalf("recovery %+v, corrupt %d", rc, corrupt)
			}
			got := readAll(t, s, "sink", 10)
			if len(got) != 50 || got[19] != 19 || got[20] != 30 {
				t.Fatalf("read %d events: %v", len(got), got)
			}
			// The repaired segment keeps its format and its compressed records.
			rep, err := Inspect(dir, true)
			if err != nil || len(rep.Damage) != 0 || rep.Codecs[name] != 5 {
				t.Fatalf("inspect after repair: %v %+v %v", err, rep.Damage, rep.Codecs)
			}
		})
	}
}

// TestOlderFormatSealedAndReadAcrossFormats: a format-1 spool opened with
// compression keeps its segments as they are (the newest is sealed, not
// appended to); new records go into a format-2 segment; a new sink reads
// the old records, then the new compressed ones.
func TestOlderFormatSealedAndReadAcrossFormats(t *testing.T) {
	dir := copyTree(t, "testdata/spool-format1")
	before, err := os.ReadFile(filepath.Join(dir, "00000000000000000006.seg"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever, Compression: CompressionZstd}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), []byte(strings.Repeat(`{"event":{"id":"new-0"}} `, 20)), 1); err != nil {
		t.Fatal(err)
	}
	r, err := s.Reader("fresh")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var last []byte
	for r.Next() {
		n++
		last = bytes.Clone(r.Record().Payload)
	}
	if r.Err() != nil || n != 9 || !strings.HasPrefix(string(last), `{"event":{"id":"new-0"}}`) {
		t.Fatalf("read %d records (want the fixture's 8 and the new one), last %q, err %v", n, last, r.Err())
	}
	r.Close()
	s.Close()
	after, _ := os.ReadFile(filepath.Join(dir, "00000000000000000006.seg"))
	if !bytes.Equal(before, after) {
		t.Error("the format-1 segment was appended to")
	}
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.Segments); n != 5 || rep.Segments[3].Version != 1 || rep.Segments[4].Version != segVersion || rep.Codecs[CompressionZstd] != 1 {
		t.Fatalf("segments %+v codecs %v", rep.Segments, rep.Codecs)
	}
}

func TestBadCompressionOption(t *testing.T) {
	o := testOpts(t.TempDir())
	o.Compression = "gzip"
	if _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), `compression "gzip": want none, lz4 or zstd`) {
		t.Fatalf("Open with compression gzip: %v", err)
	}
	// The refusal left no lock behind.
	o.Compression = CompressionZstd
	s := mustOpen(t, o)
	s.Close()
	if err := s.Append(context.Background(), jsonPayload(0, 5), 5); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// TestDecode covers the decoder alone on inputs no writer makes.
func TestDecode(t *testing.T) {
	c, err := newCodec(CompressionZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	src := jsonPayload(0, 30)
	z, id, release := c.encode(src)
	defer release()
	if id != codecZstd || len(z) >= len(src) {
		t.Fatalf("encode: codec %d, %d of %d bytes", id, len(z), len(src))
	}
	var buf []byte
	if out, err := c.decode(codecZstd, z, uint32(len(src)), &buf); err != nil || !bytes.Equal(out, src) {
		t.Fatalf("decode: %v", err)
	}
	for _, tc := range []struct {
		id  uint8
		in  []byte
		raw uint32
	}{
		{codecZstd, z[:len(z)/2], uint32(len(src))},
		{codecZstd, nil, 1},
		{codecLZ4, []byte{0xf0}, 100},
		{codecLZ4, nil, 5},
		{codecLZ4, []byte("000000000000000000"), 0}, // found by FuzzDecodePayload: the lz4 decoder crashed on an empty output
		{codecZstd, z, 0},
		{codecNone, []byte("abc"), 4},
		{7, []byte("abc"), 3},
	} {
		if _, err := c.decode(tc.id, tc.in, tc.raw, &buf); !errors.Is(err, errBadPayload) {
			t.Errorf("decode(%d, %d bytes, raw %d): %v, want errBadPayload", tc.id, len(tc.in), tc.raw, err)
		}
	}
	if got := codecName(7); got != "unknown(7)" {
		t.Errorf("codecName(7) = %q", got)
	}
}

// TestTakePayload: payloads taken from the reader stay as they were read
// while the reader goes on (into the spare buffers it is given, recycled
// ones included), with every codec.
func TestTakePayload(t *testing.T) {
	for _, name := range codecNames {
		t.Run(name, func(t *testing.T) {
			s := mustOpen(t, codecOpts(t.TempDir(), name))
			defer s.Close()
			const per, records = 30, 40
			for i := 0; i < records; i++ {
				if err := s.Append(context.Background(), jsonPayload(uint64(i*per), per), per); err != nil {
					t.Fatal(err)
				}
			}
			r, err := s.Reader("a")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if p := r.TakePayload(nil); p != nil {
				t.Fatalf("TakePayload before Next = %d bytes, want nil", len(p))
			}
			type kept struct {
				seq     uint64
				events  int
				payload []byte
			}
			var held []kept
			var free [][]byte
			for r.Next() {
				rec := r.Record()
				var spare []byte
				if len(held) >= 4 { // give back the oldest payload, as the shipper does
					spare, free = held[0].payload[:0], append(free, held[0].payload)
					if want := jsonPayload(held[0].seq, held[0].events); !bytes.Equal(held[0].payload, want) {
						t.Fatalf("payload of seq %d changed while it was held", held[0].seq)
					}
					held = held[1:]
				}
				p := r.TakePayload(spare)
				if !bytes.Equal(p, rec.Payload) {
					t.Fatalf("TakePayload differs from Record().Payload at seq %d", rec.Seq)
				}
				held = append(held, kept{rec.Seq, rec.Events, p})
			}
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			for _, k := range held {
				if want := jsonPayload(k.seq, k.events); !bytes.Equal(k.payload, want) {
					t.Fatalf("payload of seq %d changed while it was held", k.seq)
				}
			}
			if got := len(free) + len(held); got != records {
				t.Fatalf("read %d records, want %d", got, records)
			}
		})
	}
}

// TestTakePayloadKeepsRoom: a payload taken from the reader keeps the room
// of the buffer it was read into, so that given back as the spare it
// holds a slightly larger record without a new allocation.
func TestTakePayloadKeepsRoom(t *testing.T) {
	for _, name := range codecNames {
		t.Run(name, func(t *testing.T) {
			s := mustOpen(t, codecOpts(t.TempDir(), name))
			defer s.Close()
			seq := uint64(0)
			for _, per := range []int{100, 101, 102, 103, 104} { // each record a little larger
				if err := s.Append(context.Background(), jsonPayload(seq, per), per); err != nil {
					t.Fatal(err)
				}
				seq += uint64(per)
			}
			r, err := s.Reader("a")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// given is the buffer the reader got at the last TakePayload:
			// from the third record on, one the reader allocated itself
			// and handed out with an earlier, smaller record.
			var given, prev []byte
			for i := 0; r.Next(); i++ {
				p := r.TakePayload(prev)
				if want := jsonPayload(r.Record().Seq, r.Record().Events); !bytes.Equal(p, want) {
					t.Fatalf("record %d differs from what was appended", i)
				}
				if i >= 2 && &p[:1][0] != &given[:1][0] {
					t.Errorf("record %d (%d bytes): read into a new buffer, not into the spare of %d bytes", i, len(p), cap(given))
				}
				if cap(p) < len(p)+len(p)/8 {
					t.Errorf("record %d: payload of %d bytes has room for %d only", i, len(p), cap(p))
				}
				given, prev = prev, p[:0]
			}
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
		})
	}
}
