package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/capture/eslogger"
	"github.com/fileward/fileward/schema"
)

// Stream is the ev.Stream of replayed events: "replay" in ASCII, so replayed
// ids never collide with a live source's.
const Stream uint64 = 0x7265706c6179

// Options configures a Source.
type Options struct {
	Path   string
	Format string  // "eslogger" or "ecs"
	Rate   float64 // events per second; 0 = as fast as possible
	Loop   bool
	// DropWhenFull never waits for ring space: a full ring drops the event
	// and counts ring_full, as live capture does. By default replay waits,
	// so that a backfill loses nothing.
	DropWhenFull bool
	// MaxLine bounds one line (source.max_line_bytes; default 1 MiB): a
	// longer line is read past in pieces, never held whole, and counted
	// malformed.
	MaxLine int
	Logger  *slog.Logger
	// Now is the clock for event.created (default time.Now). At rate 0 it
	// is read once per createdEvery events, and after the ring was full.
	Now func() time.Time
}

// Source replays a file. It implements capture.Source.
type Source struct {
	o   Options
	log *slog.Logger
	// window is the mapped reader's window in bytes (0: mapWindow); tests
	// set a small one.
	window int
}

// New checks the options and that the file can be read.
func New(o Options) (*Source, error) {
	switch o.Format {
	case "", "eslogger":
		o.Format = "eslogger"
	case "ecs":
	default:
		return nil, fmt.Errorf("replay: unknown format %q (use eslogger or ecs)", o.Format)
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("replay: rate %v is negative", o.Rate)
	}
	f, err := os.Open(o.Path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	f.Close()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 1 << 20
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{o: o, log: log}, nil
}

// Name is the metrics label.
func (s *Source) Name() string { return "replay" }

// Run replays the file (over and over when Loop is set). It returns nil at
// the end of the input, or when ctx is done.
func (s *Source) Run(ctx context.Context, out *capture.Ring, drops *capture.Drops) error {
	parse := s.parser()
	var seq uint64
	start := time.Now()
	var lastWarn time.Time
	for pass := 0; ; pass++ {
		mapped, err := s.pass(ctx, parse, &seq, start, out, drops, &lastWarn)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if !s.o.Loop {
			s.log.Info("replay reached the end of its input", "path", s.o.Path, "events", seq)
			return nil
		}
		if mapped == 0 {
			s.log.Warn("replay input holds no event Fileward maps; not looping", "path", s.o.Path)
			return nil
		}
	}
}

// parser returns the line decoder of the configured format.
func (s *Source) parser() func(line []byte, ev *schema.Event) (bool, error) {
	if s.o.Format == "ecs" {
		return func(line []byte, ev *schema.Event) (bool, error) {
			*ev = schema.Event{}
			err := schema.DecodeECS(line, ev)
			if errors.Is(err, schema.ErrNotFileEvent) {
				return false, nil // a loss or heartbeat document of an earlier run
			}
			return err == nil, err
		}
	}
	return eslogger.NewParser().Parse
}

func (s *Source) pass(ctx context.Context, parse func([]byte, *schema.Event) (bool, error), seq *uint64, start time.Time,
	out *capture.Ring, drops *capture.Drops, lastWarn *time.Time) (mapped int, err error) {
	f, err := os.Open(s.o.Path)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	var r lineReader
	if m, merr := newMapReader(f, s.window); merr == nil {
		defer m.Close()
		// A file that shrinks under the mapping faults on the lost pages:
		// an error for this pass, not a crash of the agent.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if v := recover(); v != nil {
				if _, fault := v.(interface{ Addr() uintptr }); !fault {
					panic(v)
				}
				err = fmt.Errorf("replay: read %s: %w", s.o.Path, errShrunk)
			}
		}()
		r = m
	} else {
		r = bufLines{bufio.NewReaderSize(f, 1<<20)}
	}
	var ev schema.Event
	var long []byte
	// event.created is read from the clock once per createdEvery events
	// (see nextCreated), not per event.
	var created int64
	fresh := 0
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadSlice()
		overlong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice()
				if !overlong {
					long = append(long, line...)
					overlong = len(long) > s.o.MaxLine+1
				}
			}
			line = long
		}
		if cap(long) > 2*s.o.MaxLine+(1<<20) {
			long = nil // keep no huge buffer after a huge line
		}
		if overlong || len(bytes.TrimRight(line, "\r\n")) > s.o.MaxLine {
			drops.Add(schema.LossMalformed, 1)
			if now := time.Now(); now.Sub(*lastWarn) >= time.Second {
				*lastWarn = now
				s.log.Warn("replay: line longer than source.max_line_bytes skipped (counted as malformed)", "path", s.o.Path, "line", lineNo, "limit", s.o.MaxLine)
			}
		} else if len(bytes.TrimSpace(line)) > 0 {
			ok, perr := parse(line, &ev)
			switch {
			case perr != nil:
				drops.Add(schema.LossMalformed, 1)
				if now := time.Now(); now.Sub(*lastWarn) >= time.Second {
					*lastWarn = now
					s.log.Warn("replay: malformed line skipped", "path", s.o.Path, "line", lineNo, "err", perr)
				}
			case ok:
				mapped++
				*seq++
				ev.Seq, ev.Stream = *seq, Stream
				if fresh == 0 || s.o.Rate > 0 {
					created, fresh = s.o.Now().UnixNano(), createdEvery
				}
				fresh--
				ev.CreatedNS = created
				// A full ring makes Push wait: the next event reads the
				// clock again.
				if out.Len() >= out.Cap() {
					fresh = 0
				}
				if s.o.DropWhenFull {
					out.TryPush(&ev)
				} else if !out.Push(ctx, &ev) {
					return mapped, nil // ctx is done
				}
				if s.o.Rate > 0 {
					if err := pace(ctx, start, *seq, s.o.Rate); err != nil {
						return mapped, nil
					}
				}
			}
		}
		if err == io.EOF {
			return mapped, nil
		}
		if err != nil {
			return mapped, fmt.Errorf("replay: read %s: %w", s.o.Path, err)
		}
		if lineNo&255 == 0 {
			if ctx.Err() != nil {
				return mapped, nil
			}
			// A replay at rate 0 never blocks: let the pipeline and the
			// shippers, which wait on I/O and on each other, run in
			// between instead of at the scheduler's 10 ms preemptions.
			runtime.Gosched()
		}
	}
}

// createdEvery is how many consecutive events of a replay at full speed
// share one reading of the clock for event.created: at the agent's 100k to
// 300k events/s, 32 events are 0.1 to 0.3 ms apart, and a clock reading
// cost about 2% of the replay's CPU per event. A paced replay (rate > 0)
// reads it for every event, and any replay after the ring was found full
// (Push may have waited).
const createdEvery = 32

// lineReader is bufio.Reader.ReadSlice('\n')'s contract, which mapReader
// also keeps.
type lineReader interface {
	ReadSlice() ([]byte, error)
}

// bufLines reads a file that cannot be mapped (a pipe, an empty file).
type bufLines struct{ *bufio.Reader }

func (b bufLines) ReadSlice() ([]byte, error) { return b.Reader.ReadSlice('\n') }

// errShrunk: the input file lost bytes while it was replayed.
var errShrunk = errors.New("the file shrank while it was replayed")

// pace sleeps until event n is due at rate events/s after start.
func pace(ctx context.Context, start time.Time, n uint64, rate float64) error {
	due := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
