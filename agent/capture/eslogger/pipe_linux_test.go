//go:build linux

package eslogger

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe: the read end of a fresh pipe (64 KiB) grows to the asked
// size, as the kernel reports it, and the fd keeps working.
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	got := growPipe(r, 1<<20)
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var kernel int
	var kerr error
	if err := rc.Control(func(fd uintptr) { kernel, kerr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil || kerr != nil {
		t.Fatal(err, kerr)
	}
	if got != kernel || kernel < 1<<20 {
		t.Fatalf("growPipe = %d, kernel says %d, want >= 1 MiB", got, kernel)
	}
	// The grown pipe holds 1 MiB without a reader, so the write completes.
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	n := 0
	for n < 1<<20 {
		k, err := r.Read(buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
}
