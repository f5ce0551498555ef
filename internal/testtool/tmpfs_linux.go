//go:build linux

package testtool

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a fresh tmpfs of the given size (a tmpfs size option: "1m",
// "256m", "4g") on a new t.TempDir and returns that directory; the mount is
// detached when the test ends. A test gets a filesystem of its own: a
// fanotify filesystem mark on it sees only the test's files, and a small
// one fills up (ENOSPC) without touching the machine's disks. The mount's
// root is mode 0755, and so are the temporary directory and its parent
// (t.TempDir makes them 0700), so that a process of another user can reach
// and read the files in it. Mounting needs root (the tests run as root).
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	MountTmpfs(t, dir, 0, "size="+size+",mode=0755")
	return dir
}

// MountTmpfs mounts a tmpfs with the mount flags (unix.MS_RDONLY, …) and
// options (a tmpfs option string: "size=1m,mode=0755") at dir, creating dir
// when it is missing; the mount is detached when the test ends. For a tmpfs
// on a directory of its own, use Tmpfs.
func MountTmpfs(t testing.TB, dir string, flags uintptr, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Fatalf("mount tmpfs (%s) at %s (the tests run as root): %v", opts, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs at %s: %v", dir, err)
		}
	})
}

// FillDisk creates the file path and writes into it until its filesystem
// is full to the last byte (64 KiB chunks, then ever smaller ones, down to
// one byte, each until ENOSPC). Removing the file frees the space again.
func FillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for size := 64 << 10; size > 0; size /= 2 {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					t.Fatalf("fill %s: %v", path, err)
				}
				break
			}
		}
	}
}
