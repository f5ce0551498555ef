package fstree

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCopy(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files := map[string]string{"a.go": "package a\n", "sub/b.go": "package b\n", "sub/deeper/c.txt": "c"}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.go", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	n, err := Copy(src, dst, 100)
	if err != nil || n != len(files) {
		t.Fatalf("Copy = %d, %v; want %d files", n, err, len(files))
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != body {
			t.Errorf("%s: %q, %v; want %q", name, b, err, body)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "link")); !os.IsNotExist(err) {
		t.Errorf("the symlink was copied (%v): only regular files are", err)
	}

	capped := t.TempDir()
	if n, err := Copy(src, capped, 2); err != nil || n != 2 {
		t.Fatalf("Copy with max 2 = %d, %v", n, err)
	}

	if _, err := Copy(src, filepath.Join(dst, "a.go", "not-a-dir"), 100); err == nil {
		t.Error("Copy into a path under a regular file succeeded")
	}
}
