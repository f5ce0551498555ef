package ship

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// deadLetterFile appends to <dir>/<name>.ndjson and rotates it by size:
// when a write would take the file past maxBytes, the file becomes
// <name>.ndjson.1 (the older ones move up by one) and a new file starts.
// Files beyond keep are deleted, and the events they held (one per line)
// are reported through discarded. The files together stay within
// (keep+1) × maxBytes, plus one write larger than maxBytes.
type deadLetterFile struct {
	dir, name string
	maxBytes  int64
	keep      int
	discarded func(events uint64)

	f    *os.File
	size int64
}

func (d *deadLetterFile) path(i int) string {
	p := filepath.Join(d.dir, d.name+".ndjson")
	if i > 0 {
		p += "." + strconv.Itoa(i)
	}
	return p
}

func (d *deadLetterFile) open() error {
	if d.f != nil {
		return nil
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(d.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	d.f, d.size = f, st.Size()
	return nil
}

// write appends b (whole lines) and syncs.
func (d *deadLetterFile) write(b []byte) error {
	if err := d.open(); err != nil {
		return err
	}
	if d.maxBytes > 0 && d.size > 0 && d.size+int64(len(b)) > d.maxBytes {
		if err := d.rotate(); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	n, err := d.f.Write(b)
	d.size += int64(n)
	if err == nil {
		err = d.f.Sync()
	}
	return err
}

func (d *deadLetterFile) rotate() error {
	d.f.Close()
	d.f = nil
	// The file that falls off the end is counted, then removed.
	last := d.path(d.keep)
	if d.keep == 0 {
		last = d.path(0)
	}
	if n, err := countLines(last); err == nil {
		if err := os.Remove(last); err != nil {
			return err
		}
		if n > 0 {
			d.discarded(n)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	for i := d.keep - 1; i >= 0; i-- {
		if err := os.Rename(d.path(i), d.path(i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return d.open()
}

func (d *deadLetterFile) Name() string { return d.path(0) }

func (d *deadLetterFile) close() {
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
}

func countLines(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	buf := make([]byte, 64<<10)
	for {
		k, err := f.Read(buf)
		n += uint64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
