//go:build unix

package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/internal/testfixtures"
)

// lines reads every line through next (ReadSlice's contract), joining the
// pieces of a line longer than the buffer, and returns them with the error
// that ended the read.
func lines(t *testing.T, next func() ([]byte, error)) ([]string, error) {
	t.Helper()
	var out []string
	var long []byte
	for n := 0; n < 1<<20; n++ {
		line, err := next()
		long = append(long, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(long) > 0 {
			out = append(out, string(long))
		}
		long = long[:0]
		if err != nil {
			return out, err
		}
	}
	t.Fatal("reader never ended")
	return nil, nil
}

// TestMapReaderMatchesBufio: the mapped reader returns the lines
// bufio.Reader.ReadSlice returns, on files of random lines (empty ones,
// lines across window boundaries, lines longer than the window, with and
// without a last '\n'), for windows of one to three pages.
func TestMapReaderMatchesBufio(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 300))
	page := os.Getpagesize()
	dir := t.TempDir()
	for k := 0; k < 60; k++ {
		var buf bytes.Buffer
		for n := rng.IntN(40); n > 0; n-- {
			size := rng.IntN(page / 2)
			switch rng.IntN(8) {
			case 0:
				size = 0
			case 1:
				size = page + rng.IntN(3*page) // longer than small windows
			}
			for i := 0; i < size; i++ {
				buf.WriteByte(byte('a' + rng.IntN(26)))
			}
			if rng.IntN(5) == 0 {
				buf.WriteByte('\r')
			}
			buf.WriteByte('\n')
		}
		if rng.IntN(2) == 0 {
			buf.WriteString("no newline at the end")
		}
		if buf.Len() == 0 {
			continue
		}
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReaderSize(f, 16)
		want, werr := lines(t, func() ([]byte, error) { return br.ReadSlice('\n') })
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		window := (1 + rng.IntN(3)) * page
		m, err := newMapReader(f, window)
		if err != nil {
			t.Fatal(err)
		}
		got, gerr := lines(t, m.ReadSlice)
		if gerr != werr || len(got) != len(want) {
			t.Fatalf("case %d (window %d): %d lines, err %v; bufio %d lines, err %v", k, window, len(got), gerr, len(want), werr)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("case %d (window %d): line %d differs: %q…, bufio %q…", k, window, i, got[i][:min(40, len(got[i]))], want[i][:min(40, len(want[i]))])
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// TestMapReaderReadsOnAfterGrowth: lines appended after the reader reached
// the end are read, as read(2) would read them.
func TestMapReaderReadsOnAfterGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := newMapReader(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, want := range []string{"one\n", "two\n"} {
		if l, err := m.ReadSlice(); string(l) != want || err != nil {
			t.Fatalf("got %q, %v; want %q", l, err, want)
		}
	}
	if l, err := m.ReadSlice(); len(l) != 0 || err != io.EOF {
		t.Fatalf("at the end: %q, %v", l, err)
	}
	w, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("three\nfour"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if l, err := m.ReadSlice(); string(l) != "three\n" || err != nil {
		t.Fatalf("after growth: %q, %v", l, err)
	}
	if l, err := m.ReadSlice(); string(l) != "four" || err != io.EOF {
		t.Fatalf("last line: %q, %v", l, err)
	}
}

// TestReplayFileShrinks: an input truncated while it is replayed through
// the mapping (whose lost pages then fault) ends the replay with an error
// that says so, instead of crashing the agent.
func TestReplayFileShrinks(t *testing.T) {
	b, err := os.ReadFile(testfixtures.EsloggerFiles(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(path, bytes.Repeat(b, 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := New(Options{Path: path, Rate: 500})
	if err != nil {
		t.Fatal(err)
	}
	src.window = 4 * os.Getpagesize()
	drops := &capture.Drops{}
	ring := capture.NewRing(1<<16, drops)
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), ring, drops) }()
	deadline := time.Now().Add(60 * time.Second)
	for ring.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event replayed in 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errShrunk) {
			t.Fatalf("Run returned %v, want an error wrapping %v", err, errShrunk)
		}
		t.Logf("Run: %v", err)
	case <-time.After(120 * time.Second):
		t.Fatal("replay did not end within 120 s of the truncation")
	}
}
