// Package testfixtures finds the shared fixtures (../shared/fixtures beside
// the project root) for tests in any package.
package testfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of shared/fixtures, failing the test when it
// cannot be found: the fixtures are part of the test set-up, not optional.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("FILEWARD_FIXTURES"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			f := filepath.Join(d, "..", "shared", "fixtures")
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("shared fixtures not found at %s (set FILEWARD_FIXTURES): %v", f, err)
			}
			abs, _ := filepath.Abs(f)
			return abs
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// EsloggerFiles returns every eslogger fixture file.
func EsloggerFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(t), "eslogger", "*", "*.ndjson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no eslogger fixtures: %v", err)
	}
	return files
}
