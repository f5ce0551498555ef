// Package testfixtures finds the repository's shared test inputs,
// testdata/fixtures at the module root (see its SOURCES.md), for tests in any
// package. Nothing outside the module is read.
package testfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of testdata/fixtures at the module root,
// failing the test when it cannot be found: the fixtures are part of the
// repository, not optional.
func Dir(t testing.TB) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(root, "testdata", "fixtures")
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("fixtures not found in the module at %s: %v", d, err)
	}
	return d
}

// ModuleRoot returns the absolute path of the directory holding go.mod,
// walking up from the working directory (a test's package directory).
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", &os.PathError{Op: "find go.mod above", Path: wd, Err: os.ErrNotExist}
		}
	}
}

// EsloggerFiles returns every eslogger fixture file (real and synthesized).
func EsloggerFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(t), "eslogger", "*", "*.ndjson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no eslogger fixtures: %v", err)
	}
	return files
}
