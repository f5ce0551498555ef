package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefusesUnusablePaths: no path, a directory that cannot be created
// (its parent is a file) and a path that is a directory are refused with
// the path and the reason.
func TestNewRefusesUnusablePaths(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	isDir := filepath.Join(dir, "adir")
	if err := os.Mkdir(isDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{"", []string{"file sink: path is required"}},
		{filepath.Join(notDir, "sub", "events.ndjson"), []string{"file sink: create directory", "not a directory"}},
		{isDir, []string{"file sink: open " + isDir, "is a directory"}},
	} {
		s, err := New(Options{Path: c.path})
		if err == nil {
			s.Close(context.Background())
			t.Errorf("New(%q) accepted", c.path)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%q): %q does not say %q", c.path, err, w)
			}
		}
	}
}

// TestFailedRotationIsRetryable: when the active file cannot be renamed
// away (events.ndjson.1 is a non-empty directory), Send fails with the
// reason and writes nothing; once the obstacle is gone the same batch is
// delivered and rotation resumes, without the sink needing a restart.
func TestFailedRotationIsRetryable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := New(Options{Path: path, RotateBytes: 10, Keep: 1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Send(ctx, docs("aaaa")); err != nil {
		t.Fatal(err)
	}
	obstacle := path + ".1"
	if err := os.MkdirAll(filepath.Join(obstacle, "busy"), 0o700); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = s.Send(ctx, docs("bbbbbbbb"))
		if err == nil || !strings.Contains(err.Error(), "file sink: rotate "+path) {
			t.Fatalf("Send with the rotation blocked: %v, want a rotate error naming %s", err, path)
		}
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "aaaa\n" {
		t.Fatalf("active file %q (%v) after failed rotations, want only the first batch", got, err)
	}
	if err := os.RemoveAll(obstacle); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, docs("bbbbbbbb")); err != nil {
		t.Fatalf("Send after the obstacle is gone: %v", err)
	}
	if got := files(t, path); got[0] != "bbbbbbbb\n" || got[1] != "aaaa\n" {
		t.Fatalf("files %q, want the new batch active and the first rotated to .1", got)
	}
}
