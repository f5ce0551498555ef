package spool

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/sinks"
)

// copyTree copies the fixture directory src into a new temporary directory,
// so that Open (which takes a lock and may repair) never touches testdata.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "spool")
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// readIDs reads every record the named cursor has not acknowledged, decodes
// each payload as a sinks batch and returns the event ids, acknowledging as
// it goes.
func readIDs(t *testing.T, s *Spool, name string) []string {
	t.Helper()
	r, err := s.Reader(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ids []string
	for r.Next() {
		var b sinks.Batch
		if err := sinks.DecodeBatch(r.Record().Payload, &b); err != nil {
			t.Fatalf("%s: record at seq %d: %v", name, r.Record().Seq, err)
		}
		if len(b.Events) != r.Record().Events {
			t.Fatalf("%s: record says %d events, batch holds %d", name, r.Record().Events, len(b.Events))
		}
		for _, e := range b.Events {
			if !strings.Contains(string(e.Doc), `"id":"`+e.ID+`"`) {
				t.Fatalf("%s: event %s: document does not carry its id: %s", name, e.ID, e.Doc)
			}
			ids = append(ids, e.ID)
		}
		if err := r.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ids
}

func fixtureIDs(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("fixture-v1-%03d", i))
	}
	return ids
}

// TestReadsOlderFormat: this build opens a spool written by the first
// packaged format (testdata/spool-format1, see its README) without repairing
// anything, each cursor resumes where it was, a new sink starts at the
// oldest data, and appending goes on after it.
func TestReadsOlderFormat(t *testing.T) {
	dir := copyTree(t, "testdata/spool-format1")
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) > 0 || len(rep.Segments) != 4 {
		t.Fatalf("inspect of the fixture: %d segments, damage %+v", len(rep.Segments), rep.Damage)
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
	if err != nil {
		t.Fatalf("open a format-1 spool: %v", err)
	}
	if rec := s.Recovery(); rec.TornBytes+int64(rec.TornTails+rec.BadRecords) > 0 || len(rec.Quarantined) > 0 {
		t.Errorf("opening the fixture repaired something: %+v", rec)
	}
	// A new sink first: once kafka has acknowledged everything, segments
	// no cursor needs any more are deleted.
	if got, want := readIDs(t, s, "elasticsearch"), fixtureIDs(16, 48); !equal(got, want) {
		t.Errorf("a new sink read\n%v\nwant\n%v", got, want)
	}
	if got, want := readIDs(t, s, "kafka"), fixtureIDs(20, 48); !equal(got, want) {
		t.Errorf("kafka resumed with\n%v\nwant\n%v", got, want)
	}
	if got := readIDs(t, s, "local"); len(got) != 0 {
		t.Errorf("local had acknowledged everything, yet read %v", got)
	}
	// New records go after the old ones, with sequence numbers that go on.
	if err := s.Append(ctx, sinks.AppendBatch(nil, []sinks.Event{{ID: "new-0", Doc: []byte(`{"event":{"id":"new-0"}}`)}}), 1); err != nil {
		t.Fatal(err)
	}
	if got := readIDs(t, s, "kafka"); !equal(got, []string{"new-0"}) {
		t.Errorf("after an append kafka read %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What this build wrote reads back in this build.
	testReadsCurrentFormat(t, dir)
}

// testReadsCurrentFormat reopens a spool this build has written to.
func testReadsCurrentFormat(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got := readIDs(t, s, "kafka"); len(got) != 0 {
		t.Errorf("kafka re-read %v after acknowledging it", got)
	}
	if got, want := readIDs(t, s, "elasticsearch"), []string{"new-0"}; !equal(got, want) {
		t.Errorf("elasticsearch on the reopened spool read\n%v\nwant\n%v", got, want)
	}
	// Every cursor had passed the format-1 segments, which were sealed at
	// the first open (this build's records go into a new segment): they
	// are gone, and a new sink starts at this build's record.
	if got := readIDs(t, s, "fresh"); !equal(got, []string{"new-0"}) {
		t.Errorf("a new sink on the reopened spool read %v, want [new-0]", got)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// setVersion rewrites the version byte of a segment header or a cursor and
// its CRC, as a newer build would write them.
func setVersion(t *testing.T, path string, v byte, crcEnd int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[4] = v
	binary.LittleEndian.PutUint32(b[crcEnd:crcEnd+4], crc32.Checksum(b[:crcEnd], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// treeSum hashes every file name and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == "LOCK" {
			return err
		}
		b, _ := os.ReadFile(p)
		fmt.Fprintf(h, "%s %d %x\n", p, len(b), sha256.Sum256(b))
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestRefusesNewerFormat: a spool with a segment or a cursor in a newer
// format (a rollback to an older fileward) is refused with both versions
// named, by Open and by Inspect, and nothing on disk changes: no quarantine,
// no truncation, no rewritten cursor.
func TestRefusesNewerFormat(t *testing.T) {
	for _, c := range []struct {
		name, file string
		crcEnd     int
		newer, now int
	}{
		{"segment", "00000000000000000006.seg", 16, segVersion + 1, segVersion}, // the newest: the one a rollback finds
		{"older segment", "00000000000000000003.seg", 16, segVersion + 1, segVersion},
		{"cursor", "cursors/kafka.cursor", 32, cursorVersion + 1, cursorVersion},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, "testdata/spool-format1")
			setVersion(t, filepath.Join(dir, c.file), byte(c.newer), c.crcEnd)
			before := treeSum(t, dir)
			_, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
			var ve *VersionError
			if !errors.As(err, &ve) {
				t.Fatalf("open: %v, want a *VersionError", err)
			}
			if ve.Found != c.newer || ve.Supported != c.now || ve.File != c.file {
				t.Errorf("VersionError %+v, want file %s, found %d, supported %d", ve, c.file, c.newer, c.now)
			}
			for _, want := range []string{c.file, fmt.Sprintf("spool format version %d", c.newer), "newer fileward", fmt.Sprintf("up to %d", c.now)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not say %q", err, want)
				}
			}
			if after := treeSum(t, dir); after != before {
				t.Error("a refused open changed the spool on disk")
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, quarantineDir)); len(ents) > 0 {
				t.Errorf("quarantined %d files", len(ents))
			}
			if _, err := Inspect(dir, true); !errors.As(err, &ve) {
				t.Errorf("inspect: %v, want a *VersionError", err)
			}
			// The same spool opens again once the newer build is back: here,
			// once the version byte is what this build writes.
			setVersion(t, filepath.Join(dir, c.file), 1, c.crcEnd)
			s, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
			if err != nil {
				t.Fatalf("open after restoring the version: %v", err)
			}
			if got, want := readIDs(t, s, "kafka"), fixtureIDs(20, 48); !equal(got, want) {
				t.Errorf("kafka read %v, want %v", got, want)
			}
			s.Close()
		})
	}
}

// TestReadsFormat2: the fixture of format 2 (testdata/spool-format2, see its
// README: records compressed with zstd, lz4 and none in turn) reads back in
// this build: each cursor resumes where it was, a new sink reads every
// record, whatever its codec.
func TestReadsFormat2(t *testing.T) {
	dir := copyTree(t, "testdata/spool-format2")
	rep, err := Inspect(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) > 0 || len(rep.Segments) != 2 || rep.Events != 48 || rep.Codecs[CompressionZstd] != 4 || rep.Codecs[CompressionLZ4] != 4 || rep.Codecs[CompressionNone] != 4 {
		t.Fatalf("inspect of the fixture: %d segments, %d events, codecs %v, damage %+v", len(rep.Segments), rep.Events, rep.Codecs, rep.Damage)
	}
	s, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v2 := func(from, to int) []string {
		var ids []string
		for i := from; i < to; i++ {
			ids = append(ids, fmt.Sprintf("fixture-v2-%03d", i))
		}
		return ids
	}
	if got, want := readIDs(t, s, "elasticsearch"), v2(0, 48); !equal(got, want) {
		t.Errorf("a new sink read\n%v\nwant\n%v", got, want)
	}
	if got, want := readIDs(t, s, "kafka"), v2(20, 48); !equal(got, want) {
		t.Errorf("kafka resumed with\n%v\nwant\n%v", got, want)
	}
	if got := readIDs(t, s, "local"); len(got) != 0 {
		t.Errorf("local had acknowledged everything, yet read %v", got)
	}
}
