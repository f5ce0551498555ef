package file

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/sinks"
)

func batch(from, n int) *sinks.Batch {
	b := &sinks.Batch{}
	for i := from; i < from+n; i++ {
		b.Events = append(b.Events, sinks.Event{ID: fmt.Sprint(i), Key: "h", Doc: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 40))})
	}
	return b
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestSendWritesOneLinePerEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "events.ndjson")
	s, err := New(Options{Path: path, RotateBytes: 1 << 20, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if res, err := s.Send(context.Background(), batch(i*10, 10)); err != nil || len(res.Failures) > 0 {
			t.Fatalf("Send: %v %v", res, err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 30 {
		t.Fatalf("got %d lines, want 30", len(lines))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf(`{"n":%d,`, i)) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	// Reopening appends.
	s, err = New(Options{Path: path, RotateBytes: 1 << 20, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(context.Background(), batch(30, 1))
	s.Close(context.Background())
	if got := len(readLines(t, path)); got != 31 {
		t.Fatalf("after reopen: %d lines, want 31", got)
	}
}

func TestRotationKeepsNFilesAndLosesNothingRecent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.ndjson")
	// Each batch is ~600 bytes; rotate at 2 KiB → about 3 batches per file.
	s, err := New(Options{Path: path, RotateBytes: 2048, Keep: 3, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := s.Send(context.Background(), batch(i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(context.Background())
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Fatalf("got %d files, want active + 3 rotated: %v", len(entries), entries)
	}
	if _, err := os.Stat(path + ".4"); !os.IsNotExist(err) {
		t.Fatalf("Path.4 should not exist: %v", err)
	}
	// Files in order .3, .2, .1, active hold a contiguous run ending at 399.
	var all []string
	for _, p := range []string{path + ".3", path + ".2", path + ".1", path} {
		st, _ := os.Stat(p)
		if st.Size() > 2048 {
			t.Errorf("%s is %d bytes, over rotate_bytes", p, st.Size())
		}
		all = append(all, readLines(t, p)...)
	}
	last := len(all) - 1
	for i := range all {
		want := fmt.Sprintf(`{"n":%d,`, 399-(last-i))
		if !strings.HasPrefix(all[i], want) {
			t.Fatalf("line %d = %q, want prefix %q", i, all[i], want)
		}
	}
}

func TestSendHonoursContext(t *testing.T) {
	s, err := New(Options{Path: filepath.Join(t.TempDir(), "e.ndjson")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Send(ctx, batch(0, 1)); err == nil {
		t.Fatal("Send with a cancelled context succeeded")
	}
}
