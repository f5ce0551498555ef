//go:build linux

package testtool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
}

// mounted reports whether dir is a mount point, from /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestTmpfs: Tmpfs gives a tmpfs of the size asked for, on a directory
// another user can reach; it fills up with ENOSPC; when the test ends it is
// unmounted and its directory removed.
func TestTmpfs(t *testing.T) {
	needRoot(t)
	var dir string
	t.Run("mounted", func(t *testing.T) {
		dir = Tmpfs(t, "1m")
		if !mounted(t, dir) {
			t.Fatalf("%s is not a mount point", dir)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Errorf("filesystem type %#x, want tmpfs (%#x)", st.Type, unix.TMPFS_MAGIC)
		}
		if size := uint64(st.Blocks) * uint64(st.Bsize); size != 1<<20 {
			t.Errorf("size %d bytes, want %d", size, 1<<20)
		}
		for _, d := range []string{filepath.Dir(dir), dir} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o755 {
				t.Errorf("%s: mode %v, want 0755", d, m)
			}
		}
		err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2<<20), 0o644)
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("writing 2 MiB on a 1 MiB tmpfs: %v, want ENOSPC", err)
		}
	})
	if mounted(t, dir) {
		t.Errorf("%s is still mounted after the test", dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the test: %v", dir, err)
	}
}

// TestMountTmpfs: MountTmpfs creates the directory, applies the flags
// (read-only here) and unmounts when the test ends.
func TestMountTmpfs(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "a", "ro")
	t.Run("mounted", func(t *testing.T) {
		MountTmpfs(t, dir, unix.MS_RDONLY, "size=64k")
		if !mounted(t, dir) {
			t.Fatalf("%s is not a mount point", dir)
		}
		err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("writing on a read-only tmpfs: %v, want EROFS", err)
		}
	})
	if mounted(t, dir) {
		t.Errorf("%s is still mounted after the test", dir)
	}
}

// TestFillDisk: FillDisk leaves no byte free on its filesystem; removing
// its file gives the space back.
func TestFillDisk(t *testing.T) {
	needRoot(t)
	dir := Tmpfs(t, "1m")
	filler := filepath.Join(dir, "filler")
	FillDisk(t, filler)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Errorf("%d blocks still free after FillDisk", st.Bavail)
	}
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 1<<20 {
		t.Errorf("filler holds %d bytes, want the whole 1 MiB", fi.Size())
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing a byte on the full disk: %v, want ENOSPC", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644); err != nil {
		t.Errorf("writing after removing the filler: %v", err)
	}
}
