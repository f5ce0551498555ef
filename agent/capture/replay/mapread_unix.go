//go:build unix

package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// mapWindow is the size of the mapping mapReader reads through.
const mapWindow = 4 << 20

// mapReader reads the lines of a regular file through a read-only mapping
// that slides over it, mapWindow bytes at a time: a line is handed to the
// parser where it lies in the page cache, without read(2) copying it into a
// buffer first (at replay rates that copy was about a tenth of the agent's
// CPU). ReadSlice has bufio.Reader.ReadSlice's contract, which pass relies on:
// a line with its '\n', valid until the next call; bufio.ErrBufferFull with
// a piece of a line longer than the window; io.EOF with the last line when
// it has no '\n'. A file that grows while it is read is read to its new end,
// as read(2) would.
//
// A file that shrinks under the mapping makes the next access to the lost
// pages fault (SIGBUS): pass runs with debug.SetPanicOnFault and turns that
// into an error (errShrunk) instead of a crash.
type mapReader struct {
	f     *os.File
	size  int64  // the file's size as last seen
	off   int64  // file offset of win[0]
	win   []byte // the current mapping
	pos   int    // next byte to read in win
	page  int64
	size0 int64 // the window's size (mapWindow, or less in tests)
}

// errNoMap says the file cannot be mapped; pass reads it with read(2).
var errNoMap = errors.New("replay: input not mappable")

// newMapReader maps the start of f, a non-empty regular file, through a
// window of window bytes (mapWindow when 0).
func newMapReader(f *os.File, window int) (*mapReader, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, errNoMap
	}
	m := &mapReader{f: f, size: st.Size(), page: int64(os.Getpagesize()), size0: mapWindow}
	if window > 0 {
		m.size0 = max(int64(window), m.page)
	}
	if err := m.remap(0); err != nil {
		return nil, errNoMap
	}
	return m, nil
}

// remap maps the window that starts at the page holding file offset at.
func (m *mapReader) remap(at int64) error {
	start := at &^ (m.page - 1)
	n := min(m.size0, m.size-start)
	if m.win != nil {
		if err := unix.Munmap(m.win); err != nil {
			return fmt.Errorf("replay: munmap: %w", err)
		}
		m.win = nil
	}
	win, err := unix.Mmap(int(m.f.Fd()), start, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("replay: mmap: %w", err)
	}
	m.win, m.off, m.pos = win, start, int(at-start)
	return nil
}

// ReadSlice returns the next line, as bufio.Reader.ReadSlice('\n') does.
func (m *mapReader) ReadSlice() ([]byte, error) {
	fresh := false // the window was just moved to this line's start
	for {
		rest := m.win[m.pos:]
		if k := bytes.IndexByte(rest, '\n'); k >= 0 {
			m.pos += k + 1
			return rest[:k+1], nil
		}
		at := m.off + int64(m.pos)
		end := m.off + int64(len(m.win))
		if end >= m.size {
			st, err := m.f.Stat()
			if err != nil {
				return nil, fmt.Errorf("replay: stat: %w", err)
			}
			if st.Size() <= m.size {
				m.pos = len(m.win)
				if len(rest) == 0 {
					return nil, io.EOF
				}
				return rest, io.EOF
			}
			m.size = st.Size() // it grew: read on
		} else if fresh {
			// A line longer than the window: hand out this piece.
			m.pos = len(m.win)
			return rest, bufio.ErrBufferFull
		}
		if err := m.remap(at); err != nil {
			return nil, err
		}
		fresh = true
	}
}

// Close unmaps the window.
func (m *mapReader) Close() error {
	if m.win == nil {
		return nil
	}
	err := unix.Munmap(m.win)
	m.win = nil
	return err
}
