package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/fileward/fileward/sinks"
)

// Options configures a Sink.
type Options struct {
	// Path is the active file; rotated files are Path.1 (newest) … Path.Keep.
	Path string
	// RotateBytes rotates the active file before it would grow past this size.
	RotateBytes int64
	// Keep is how many rotated files to keep.
	Keep int
	// Mode is the permission of the output files; default 0600. A wider
	// mode (0640 for a local shipper in the file's group) also opens a
	// directory the sink creates to the same readers (0750). Only read and
	// write bits are allowed, and the owner's always.
	Mode os.FileMode
	// NoSync skips the fsync after each batch. By default each Send ends with
	// an fsync, so an acknowledged batch survives a power cut.
	NoSync bool
	Logger *slog.Logger
}

// Sink writes NDJSON. It implements sinks.Sink.
type Sink struct {
	o    Options
	log  *slog.Logger
	mu   sync.Mutex
	f    *os.File
	buf  []byte // one batch's lines, reused: a batch is one write(2)
	size int64
}

// New opens (or creates) the active file for appending.
func New(o Options) (*Sink, error) {
	if o.Path == "" {
		return nil, errors.New("file sink: path is required")
	}
	if o.RotateBytes <= 0 {
		o.RotateBytes = 100 << 20
	}
	if o.Keep < 1 {
		o.Keep = 1
	}
	if o.Mode == 0 {
		o.Mode = DefaultMode
	}
	if o.Mode&^0o666 != 0 || o.Mode&0o600 != 0o600 {
		return nil, fmt.Errorf("file sink: mode %#o: use read/write bits only, with the owner's read and write (e.g. 0600 or 0640)", o.Mode)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{o: o, log: log}
	if err := makeDir(filepath.Dir(o.Path), dirMode(o.Mode)); err != nil {
		return nil, fmt.Errorf("file sink: create directory: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// DefaultMode is the output files' permission: they hold event data.
const DefaultMode os.FileMode = 0o600

// dirMode is the mode of a directory the sink creates: the owner's rwx, and
// r-x for the group or others when mode lets them read the files.
func dirMode(mode os.FileMode) os.FileMode {
	d := os.FileMode(0o700)
	if mode&0o040 != 0 {
		d |= 0o050
	}
	if mode&0o004 != 0 {
		d |= 0o005
	}
	return d
}

// makeDir creates dir (and its parents) when missing and gives dir itself
// exactly mode, whatever the umask. An existing directory is left alone.
func makeDir(dir string, mode os.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

func (s *Sink) open() error {
	f, err := os.OpenFile(s.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, s.o.Mode)
	if err != nil {
		return fmt.Errorf("file sink: open %s: %w", s.o.Path, err)
	}
	// Exactly Mode, whatever the umask, and narrowed when an earlier
	// version (0640) or an operator left the file wider.
	if err := f.Chmod(s.o.Mode); err != nil {
		f.Close()
		return fmt.Errorf("file sink: chmod %s: %w", s.o.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: stat %s: %w", s.o.Path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Send appends every document of b as one line. On any error nothing of b
// remains in the file, and the error is retryable.
func (s *Sink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return sinks.Result{}, errors.New("file sink: closed")
	}
	var n int64
	for i := range b.Events {
		n += int64(len(b.Events[i].Doc)) + 1
	}
	if s.size > 0 && s.size+n > s.o.RotateBytes {
		if err := s.rotate(); err != nil {
			return sinks.Result{}, err
		}
	}
	start := s.size
	// The whole batch in one buffer and one write, not a write per
	// bufio-sized piece. A batch is at most batch.max_bytes of documents.
	buf := s.buf[:0]
	for i := range b.Events {
		buf = append(buf, b.Events[i].Doc...)
		buf = append(buf, '\n')
	}
	_, err := s.f.Write(buf)
	if cap(buf) <= maxKeptBuf {
		s.buf = buf[:0]
	} else {
		s.buf = nil // an unusually large batch: do not hold its memory
	}
	if err == nil && !s.o.NoSync {
		err = s.f.Sync()
	}
	if err != nil {
		s.undo(start)
		return sinks.Result{}, fmt.Errorf("file sink: write %s: %w", s.o.Path, err)
	}
	s.size = start + n
	return sinks.Result{}, nil
}

// maxKeptBuf is the largest batch buffer Send keeps for the next batch.
const maxKeptBuf = 16 << 20

// undo truncates a partly written batch away.
func (s *Sink) undo(size int64) {
	if err := s.f.Truncate(size); err != nil {
		s.log.Error("file sink: cannot truncate a failed write; the file may hold a partial batch", "path", s.o.Path, "err", err)
	}
}

// rotate shifts Path.(k) to Path.(k+1), drops the oldest beyond Keep and
// starts a new active file.
func (s *Sink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: close before rotate: %w", err)
	}
	s.f = nil
	os.Remove(s.o.Path + "." + strconv.Itoa(s.o.Keep))
	for k := s.o.Keep - 1; k >= 1; k-- {
		from := s.o.Path + "." + strconv.Itoa(k)
		if err := os.Rename(from, s.o.Path+"."+strconv.Itoa(k+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("file sink: rotate", "from", from, "err", err)
		}
	}
	if err := os.Rename(s.o.Path, s.o.Path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Keep appending to the active file, so that the next Send
		// retries the rotation instead of finding the sink closed.
		return errors.Join(fmt.Errorf("file sink: rotate %s: %w", s.o.Path, err), s.open())
	}
	return s.open()
}

// Close flushes and closes the active file.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
