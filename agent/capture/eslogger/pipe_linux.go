//go:build linux

package eslogger

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks the kernel for a pipe buffer of size bytes on the read end
// of the child's stdout (F_SETPIPE_SZ). A larger pipe lets eslogger run ahead
// of a briefly busy reader and lets one read return up to a whole buffer,
// which halves the reader's system time. Without privilege the kernel caps it
// at /proc/sys/fs/pipe-max-size; then the cap is tried. Failure is harmless:
// the pipe keeps its default 64 KiB. It returns the size in effect.
func growPipe(f *os.File, size int) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		n, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
		if err != nil {
			if b, rerr := os.ReadFile("/proc/sys/fs/pipe-max-size"); rerr == nil {
				var max int
				for _, c := range b {
					if c >= '0' && c <= '9' {
						max = max*10 + int(c-'0')
					}
				}
				if max > 0 && max < size {
					n, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, max)
				}
			}
		}
		if err == nil {
			got = n
		} else if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil {
			got = n
		}
	})
	return got
}
