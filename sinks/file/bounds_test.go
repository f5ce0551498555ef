package file

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/sinks"
)

func docs(ds ...string) *sinks.Batch {
	b := &sinks.Batch{}
	for _, d := range ds {
		b.Events = append(b.Events, sinks.Event{ID: d, Key: "h", Doc: []byte(d)})
	}
	return b
}

// files returns the content of path and path.1 … path.4 ("-" when absent).
func files(t *testing.T, path string) [5]string {
	t.Helper()
	var out [5]string
	for i := range out {
		p := path
		if i > 0 {
			p += "." + string(rune('0'+i))
		}
		b, err := os.ReadFile(p)
		switch {
		case os.IsNotExist(err):
			out[i] = "-"
		case err != nil:
			t.Fatal(err)
		default:
			out[i] = string(b)
		}
	}
	return out
}

// TestRotationBounds: a file may reach rotate_bytes exactly; the batch that
// would pass it goes to a new file; an empty active file is never rotated
// away, even for a batch larger than rotate_bytes; rotated files shift by one
// and only keep of them remain.
func TestRotationBounds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := New(Options{Path: path, RotateBytes: 10, Keep: 2, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	steps := []struct {
		doc  string
		want [5]string
	}{
		{"abcd", [5]string{"abcd\n", "-", "-", "-", "-"}},
		{"efgh", [5]string{"abcd\nefgh\n", "-", "-", "-", "-"}}, // exactly 10 bytes: no rotation
		{"i", [5]string{"i\n", "abcd\nefgh\n", "-", "-", "-"}},  // 12 > 10
		{"jklmnopqrstu", [5]string{"jklmnopqrstu\n", "i\n", "abcd\nefgh\n", "-", "-"}},
		{"v", [5]string{"v\n", "jklmnopqrstu\n", "i\n", "-", "-"}}, // keep 2: the oldest goes
	}
	for i, st := range steps {
		if _, err := s.Send(ctx, docs(st.doc)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := files(t, path); got != st.want {
			t.Fatalf("step %d: files %q, want %q", i, got, st.want)
		}
	}

	// An empty file takes a batch larger than rotate_bytes without rotating.
	path2 := filepath.Join(t.TempDir(), "big.ndjson")
	s2, err := New(Options{Path: path2, RotateBytes: 10, Keep: 2, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	if _, err := s2.Send(ctx, docs("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if got, want := files(t, path2), [5]string{"0123456789abcdef\n", "-", "-", "-", "-"}; got != want {
		t.Errorf("oversized first batch: files %q, want %q", got, want)
	}
}

// TestDefaults: rotate_bytes 0 means the default (100 MiB, so small writes
// never rotate) and keep 0 means 1.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := New(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b", "c"} {
		if _, err := s.Send(ctx, docs(d)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(ctx)
	if got, want := files(t, path), [5]string{"a\nb\nc\n", "-", "-", "-", "-"}; got != want {
		t.Errorf("rotate_bytes 0: files %q, want %q", got, want)
	}

	path = filepath.Join(t.TempDir(), "keep.ndjson")
	s, err = New(Options{Path: path, RotateBytes: 2, Keep: 0, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, d := range []string{"a", "b", "c"} {
		if _, err := s.Send(ctx, docs(d)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := files(t, path), [5]string{"c\n", "b\n", "-", "-", "-"}; got != want {
		t.Errorf("keep 0: files %q, want %q", got, want)
	}
}

// TestRotateProblemIsLogged: a rotated file that cannot be shifted (here
// path.3 is a non-empty directory) is logged to the given Logger, and the
// rotation still completes.
func TestRotateProblemIsLogged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.MkdirAll(filepath.Join(path+".3", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".2", []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s, err := New(Options{Path: path, RotateBytes: 2, Keep: 3, NoSync: true, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, d := range []string{"a", "b"} {
		if _, err := s.Send(ctx, docs(d)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(log.String(), `level=WARN msg="file sink: rotate" from=`+path+".2") {
		t.Errorf("log %q lacks the failed shift of %s.2", log.String(), path)
	}
	for p, want := range map[string]string{path: "b\n", path + ".1": "a\n", path + ".2": "two\n"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestSendAfterClose: a closed sink refuses batches and writes nothing more;
// a second Close is a no-op.
func TestSendAfterClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := New(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, docs("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, docs("b")); err == nil || err.Error() != "file sink: closed" {
		t.Errorf("Send after Close = %v, want file sink: closed", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "a\n" {
		t.Errorf("file = %q, %v; want \"a\\n\"", got, err)
	}
}
