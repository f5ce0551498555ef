package ship

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dlFile is a deadLetterFile in a fresh directory whose discarded events
// add up in *gone (calls counts the calls).
func dlFile(t *testing.T, maxBytes int64, keep int) (d *deadLetterFile, gone, calls *uint64) {
	t.Helper()
	gone, calls = new(uint64), new(uint64)
	d = &deadLetterFile{dir: filepath.Join(t.TempDir(), "dl"), name: "s", maxBytes: maxBytes, keep: keep,
		discarded: func(n uint64) { *gone += n; *calls++ }}
	t.Cleanup(d.close)
	return d, gone, calls
}

// lines is n lines of width bytes each, newline included.
func lines(n, width int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = append(b, bytes.Repeat([]byte{'x'}, width-1)...)
		b = append(b, '\n')
	}
	return b
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestDeadLetterPaths(t *testing.T) {
	d, _, _ := dlFile(t, 0, 2)
	if got, want := d.path(0), filepath.Join(d.dir, "s.ndjson"); got != want || d.Name() != want {
		t.Errorf("path(0) = %q, Name() = %q, want %q", got, d.Name(), want)
	}
	if got, want := d.path(1), filepath.Join(d.dir, "s.ndjson.1"); got != want {
		t.Errorf("path(1) = %q, want %q", got, want)
	}
	if got, want := d.path(12), filepath.Join(d.dir, "s.ndjson.12"); got != want {
		t.Errorf("path(12) = %q, want %q", got, want)
	}
}

// TestDeadLetterRotationBoundary: a write that brings the file to exactly
// max_bytes stays in it; the next byte starts a new file, and the old one
// moves to .1.
func TestDeadLetterRotationBoundary(t *testing.T) {
	d, gone, _ := dlFile(t, 100, 2)
	if err := d.write(lines(3, 20)); err != nil { // 60
		t.Fatal(err)
	}
	if err := d.write(lines(2, 20)); err != nil { // 100: exactly the limit
		t.Fatal(err)
	}
	if n := fileSize(t, d.path(0)); n != 100 || exists(d.path(1)) {
		t.Fatalf("after 100 bytes: file holds %d, .1 exists %v; want 100 and no rotation", n, exists(d.path(1)))
	}
	if err := d.write(lines(1, 1)); err != nil { // one byte more
		t.Fatal(err)
	}
	if n0, n1 := fileSize(t, d.path(0)), fileSize(t, d.path(1)); n0 != 1 || n1 != 100 {
		t.Fatalf("after 101 bytes: file %d, .1 %d; want 1 and 100", n0, n1)
	}
	if *gone != 0 {
		t.Errorf("discarded %d events with nothing past keep", *gone)
	}
	if d.size != 1 {
		t.Errorf("tracked size %d, want 1", d.size)
	}
}

// TestDeadLetterKeep: rotated files shift by one; the one past keep is
// deleted and its lines reported, exactly, once per file.
func TestDeadLetterKeep(t *testing.T) {
	d, gone, calls := dlFile(t, 100, 2)
	// 96, 80, 64, 60, 60 bytes: any two pass 100, so each write after the
	// first rotates.
	for i, w := range [][2]int{{6, 16}, {5, 16}, {4, 16}, {3, 20}, {2, 30}} {
		if err := d.write(lines(w[0], w[1])); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// Now: .ndjson the last write (2 lines), .1 the one before (3), .2
	// the third (4); the first two went past keep.
	for i, want := range []uint64{2, 3, 4} {
		if n, err := countLines(d.path(i)); err != nil || n != want {
			t.Errorf("file %d holds %d lines (%v), want %d", i, n, err, want)
		}
	}
	if exists(d.path(3)) {
		t.Error("a file past keep remains")
	}
	if *gone != 11 || *calls != 2 {
		t.Errorf("discarded %d events in %d calls, want 11 (6+5) in 2", *gone, *calls)
	}
}

// TestDeadLetterKeepZero: with keep 0 the file itself is dropped (and
// counted) when full.
func TestDeadLetterKeepZero(t *testing.T) {
	d, gone, _ := dlFile(t, 100, 0)
	d.write(lines(4, 25))
	if err := d.write(lines(2, 10)); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, d.path(0)); n != 20 || exists(d.path(1)) {
		t.Errorf("file holds %d bytes, .1 exists %v; want 20 and no .1", n, exists(d.path(1)))
	}
	if *gone != 4 {
		t.Errorf("discarded %d, want 4", *gone)
	}
}

// TestDeadLetterNoLimit: max_bytes 0 never rotates; a first write larger
// than max_bytes goes into the empty file as it is.
func TestDeadLetterNoLimit(t *testing.T) {
	d, _, _ := dlFile(t, 0, 1)
	for i := 0; i < 5; i++ {
		d.write(lines(10, 100))
	}
	if n := fileSize(t, d.path(0)); n != 5000 || exists(d.path(1)) {
		t.Errorf("file %d bytes, .1 %v; want 5000 and no rotation", n, exists(d.path(1)))
	}
	big, gone, _ := dlFile(t, 100, 1)
	if err := big.write(lines(3, 50)); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, big.path(0)); n != 150 || exists(big.path(1)) || *gone != 0 {
		t.Errorf("oversized first write: file %d bytes, .1 %v, discarded %d; want 150, none, 0", n, exists(big.path(1)), *gone)
	}
}

// TestDeadLetterReopenKeepsSize: a file left by an earlier run counts
// towards max_bytes.
func TestDeadLetterReopenKeepsSize(t *testing.T) {
	d, _, _ := dlFile(t, 100, 1)
	d.write(lines(9, 10))
	d.close()
	d.close() // a second close is a no-op
	if err := d.write(lines(2, 10)); err != nil {
		t.Fatal(err)
	}
	if n0, n1 := fileSize(t, d.path(0)), fileSize(t, d.path(1)); n0 != 20 || n1 != 90 {
		t.Errorf("file %d, .1 %d; want 20 and 90", n0, n1)
	}
}

// TestDeadLetterCountLines counts across its 64 KiB reads.
func TestDeadLetterCountLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, append(lines(3000, 100), "no newline"...), 0o600) // 300,000 bytes
	if n, err := countLines(p); n != 3000 || err != nil {
		t.Errorf("countLines = %d, %v; want 3000", n, err)
	}
	if _, err := countLines(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("countLines of a missing file: %v", err)
	}
	if _, err := countLines(t.TempDir()); err == nil {
		t.Error("countLines of a directory: no error")
	}
}

// TestDeadLetterErrors: every step that can fail returns its error.
func TestDeadLetterErrors(t *testing.T) {
	t.Run("mkdir", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		d := &deadLetterFile{dir: filepath.Join(f, "dl"), name: "s"}
		if err := d.write([]byte("x\n")); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("write: %v", err)
		}
	})
	t.Run("open", func(t *testing.T) {
		d, _, _ := dlFile(t, 0, 1)
		os.MkdirAll(d.path(0), 0o700) // a directory where the file goes
		if err := d.write([]byte("x\n")); err == nil {
			t.Error("write: no error")
		}
	})
	t.Run("count the file past keep", func(t *testing.T) {
		d, gone, _ := dlFile(t, 10, 1)
		d.write(lines(1, 8))
		os.MkdirAll(filepath.Join(d.path(1), "x"), 0o700) // .1 cannot be read as a file
		err := d.write(lines(1, 8))
		if err == nil || !strings.HasPrefix(err.Error(), "rotate: ") {
			t.Errorf("write: %v, want a rotate error", err)
		}
		if *gone != 0 {
			t.Errorf("discarded %d", *gone)
		}
	})
}

// TestDeadLetterEmptyFilePastKeep: an empty file rotated away is removed
// without a report of zero events.
func TestDeadLetterEmptyFilePastKeep(t *testing.T) {
	d, gone, calls := dlFile(t, 10, 1)
	d.write(lines(1, 8))
	os.WriteFile(d.path(1), nil, 0o600)
	if err := d.write(lines(1, 8)); err != nil {
		t.Fatal(err)
	}
	if *gone != 0 || *calls != 0 {
		t.Errorf("discarded %d events in %d calls, want no call", *gone, *calls)
	}
	if n := fileSize(t, d.path(1)); n != 8 {
		t.Errorf(".1 holds %d bytes, want the rotated 8", n)
	}
}

// TestDeadLetterCloseReleasesTheFile: after close the next write opens the
// path again, so a file moved away meanwhile (by hand, or logrotate) is
// not written to any more.
func TestDeadLetterCloseReleasesTheFile(t *testing.T) {
	d, _, _ := dlFile(t, 0, 1)
	d.write(lines(1, 10))
	d.close()
	if err := os.Rename(d.path(0), d.path(0)+".moved"); err != nil {
		t.Fatal(err)
	}
	d.write(lines(1, 20))
	if n, m := fileSize(t, d.path(0)), fileSize(t, d.path(0)+".moved"); n != 20 || m != 10 {
		t.Errorf("new file %d bytes, moved one %d; want 20 and 10", n, m)
	}
}

// TestDeadLetterFilesPastKeepLeftAlone: a file numbered beyond keep (left
// by a run with a larger keep) is neither moved nor counted.
func TestDeadLetterFilesPastKeepLeftAlone(t *testing.T) {
	d, gone, _ := dlFile(t, 10, 1)
	d.write(lines(1, 8))
	os.WriteFile(d.path(2), lines(3, 4), 0o600)
	d.write(lines(1, 8))
	if n := fileSize(t, d.path(2)); n != 12 || exists(d.path(3)) || *gone != 0 {
		t.Errorf(".2 holds %d bytes (want 12), .3 exists %v, discarded %d", n, exists(d.path(3)), *gone)
	}
}
