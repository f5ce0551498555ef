package file

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestPermissions: the NDJSON files hold event data: 0600 in a 0700
// directory by default, rotated files included, whatever the umask; Mode
// widens them (and the directory) for a local shipper.
func TestPermissions(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, umask := range []int{0, 0o077} {
		syscall.Umask(umask)
		testPermissions(t)
	}
}

func testPermissions(t *testing.T) {
	for _, tc := range []struct {
		mode      os.FileMode
		file, dir os.FileMode
	}{
		{0, 0o600, 0o700},
		{0o640, 0o640, 0o750},
		{0o644, 0o644, 0o755},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		path := filepath.Join(dir, "events.ndjson")
		s, err := New(Options{Path: path, RotateBytes: 1024, Keep: 2, Mode: tc.mode})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ { // 3 × ~1 KiB: rotates twice
			if _, err := s.Send(context.Background(), batch(i*16, 16)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close(context.Background())
		if m := mode(t, dir); m != tc.dir {
			t.Errorf("mode %#o: directory %#o, want %#o", tc.mode, m, tc.dir)
		}
		for _, p := range []string{path, path + ".1", path + ".2"} {
			if m := mode(t, p); m != tc.file {
				t.Errorf("mode %#o: %s is %#o, want %#o", tc.mode, filepath.Base(p), m, tc.file)
			}
		}
	}
}

// TestPermissionsNarrowed: a file an earlier version created 0640 is 0600
// once the sink opens it; an existing directory is not touched.
func TestPermissionsNarrowed(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(path, []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	s, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	if m := mode(t, path); m != 0o600 {
		t.Errorf("existing file is %#o, want 0600", m)
	}
	if m := mode(t, dir); m != 0o755 {
		t.Errorf("existing directory changed to %#o", m)
	}
}

func TestModeChecked(t *testing.T) {
	for _, m := range []os.FileMode{0o755, 0o400, 0o4600, 0o200} {
		if _, err := New(Options{Path: filepath.Join(t.TempDir(), "x"), Mode: m}); err == nil {
			t.Errorf("mode %#o accepted", m)
		}
	}
}
