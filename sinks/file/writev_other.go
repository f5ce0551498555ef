//go:build !linux

package file

import "golang.org/x/sys/unix"

// writevCall is one writev(2) of bufs (at most iovMax, the first not
// empty).
func (s *Sink) writevCall(fd uintptr, bufs [][]byte) (int, error) {
	return unix.Writev(int(fd), bufs)
}
