package spool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// segmentBytes builds a valid segment of n records, for the seed corpus.
func segmentBytes(n int) []byte {
	b := make([]byte, segHeaderSize)
	putSegHeader(b, 100)
	seq := uint64(100)
	for i := 0; i < n; i++ {
		p := payload(seq, 3, i*7)
		var h [recHeaderSize]byte
		putRecHeader(h[:], recHeader{length: uint32(len(p)), events: 3, seq: seq, time: int64(i)}, p)
		b = append(append(b, h[:]...), p...)
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
	for r.Next() {
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read after recovery: %v", err)
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
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, verify := range []bool{true, false} {
			res := scanSegment(bytes.NewReader(data), int64(len(data)), verify)
			if res.hdrErr == nil && res.end() > int64(len(data)) {
				t.Fatalf("scan ends at %d of %d bytes", res.end(), len(data))
			}
		}
	})
}
