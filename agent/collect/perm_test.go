package collect

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDeadLetterPermissions: the dead-letter file holds event data: 0600 in
// a 0700 directory, and a file an earlier version left 0640 is narrowed.
func TestDeadLetterPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dead-letter")
	path := filepath.Join(dir, "collector.ndjson")
	d, err := openDeadLetter(path)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, path, 0o600)

	old := filepath.Join(t.TempDir(), "old.ndjson")
	if err := os.WriteFile(old, []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o640)
	d, err = openDeadLetter(old)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	assertMode(t, old, 0o600)
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
	}
}
