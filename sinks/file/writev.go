package file

import (
	"errors"
	"io"
	"syscall"

	"github.com/fileward/fileward/sinks"
)

// iovMax is the most buffers one writev(2) takes (IOV_MAX on Linux and
// macOS).
const iovMax = 1024

var newline = []byte{'\n'}

// writeLines writes every document of events, each followed by a newline,
// at the end of the file with writev(2), straight from the batch's memory
// (the documents alias the spool record's payload): no copy into a buffer
// of our own. A batch takes a few calls (two buffers an event, iovMax
// buffers a call); a short write goes on where it stopped. On an error
// the caller truncates whatever part of the batch reached the file.
func (s *Sink) writeLines(events []sinks.Event) error {
	bufs := s.bufs[:0]
	for i := range events {
		bufs = append(bufs, events[i].Doc, newline)
	}
	defer func() {
		clear(bufs) // drop the references to the batch's memory
		if cap(bufs) <= maxKeptBufs {
			s.bufs = bufs[:0]
		} else {
			s.bufs = nil
		}
	}()
	rc, err := s.f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		werr = s.writev(fd, bufs)
		return true // a regular file is never "not ready"
	})
	if err != nil {
		return err
	}
	return werr
}

// writev writes every byte of bufs to fd, iovMax buffers a call, going on
// after short writes. It may consume bufs.
func (s *Sink) writev(fd uintptr, bufs [][]byte) error {
	for len(bufs) > 0 {
		// Skip empty buffers (an empty document): writev would take them,
		// but a call of nothing but empty ones would look like a stall.
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		n, err := s.writevCall(fd, bufs[:min(len(bufs), iovMax)])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
	}
	return nil
}

// maxKeptBufs bounds the buffer list Send keeps for the next batch.
const maxKeptBufs = 1 << 16
