package file

import (
	"runtime"
	"syscall"
	"unsafe"
)

// writevCall is one writev(2) of bufs (at most iovMax, the first not
// empty), with the sink's iovec array, reused from batch to batch.
func (s *Sink) writevCall(fd uintptr, bufs [][]byte) (int, error) {
	iov := s.iov[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	s.iov = iov
	n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	runtime.KeepAlive(bufs)
	clear(iov) // no pointers into the batch outlive the call
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
