package eslogger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/usercache"
	"github.com/fileward/fileward/schema"
)

// ErrNotPermitted is wrapped by Run's error when eslogger reports
// ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED: the agent lacks Full Disk Access.
var ErrNotPermitted = errors.New("eslogger: ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED: the agent has no Full Disk Access; " +
	"grant it in System Settings > Privacy & Security > Full Disk Access to /usr/local/bin/fileward, " +
	"or deploy deploy/macos/fileward-pppc.mobileconfig through your MDM, then restart the agent")

// notPermittedText is what eslogger prints on stderr without Full Disk Access.
const notPermittedText = "ERR_NOT_PERMITTED"

// Backoff is the restart backoff for the eslogger child (backoff/v4's
// exponential backoff). Zero fields take the defaults: Initial 1s, Max 60s,
// Multiplier 2, Jitter 0 (a randomization factor in [0,1)).
type Backoff struct {
	Initial, Max time.Duration
	Multiplier   float64
	Jitter       float64
}

// Options configure the eslogger source.
type Options struct {
	// Path is the eslogger executable (/usr/bin/eslogger). Off macOS it is a
	// stand-in that prints recorded eslogger lines.
	Path string
	// Args are extra arguments placed before the event names (tests).
	Args []string
	// Events are source.events config names: open close create modify rename
	// delete attrib exec write truncate link clone exchange setextattr (and
	// access, which ESF cannot report and is skipped with a warning).
	Events []string
	// Select are --select executable path prefixes, passed only when
	// `eslogger --help` lists --select.
	Select []string
	// SelfPID is the agent's pid; its events and eslogger's are dropped.
	SelfPID int
	// MutePaths are directories (the agent's data_dir) whose events are
	// dropped when Path or OrigPath is inside one. Relative paths are made
	// absolute and symlinks resolved too (/var → /private/var on macOS).
	MutePaths []string
	// Backoff is the restart backoff.
	Backoff Backoff
	// HealthyAfter is how long a child must run for the backoff to reset;
	// default 30s.
	HealthyAfter time.Duration
	// Stream, when set, gives ev.Stream for the child started start-th (0 for
	// the first, +1 for each restart). By default ev.Stream is the message's
	// own mach_time, which keeps ids unique across restarts and agent runs
	// (every eslogger start numbers from 1 again) and equal to the ids
	// `fileward convert` derives from the same line; a message without
	// mach_time gets (agent start time in ms << 16) + start.
	Stream func(start uint64) uint64
	// ReadBuffer is the stdout read buffer; default 1 MiB. Longer lines are
	// assembled in a side buffer up to MaxLine (source.max_line_bytes,
	// default 1 MiB); a line longer still is read past in ReadBuffer-sized
	// pieces, never held whole, and counted malformed.
	ReadBuffer, MaxLine int
	// PipeBuffer is the kernel buffer asked for the child's stdout pipe on
	// Linux (F_SETPIPE_SZ; default 1 MiB, capped by fs.pipe-max-size).
	// macOS pipes cannot be resized and ignore it.
	PipeBuffer int
	// ResolveNames fills user.name and group.name from the ids in the audit
	// token, through usercache (dscacheutil on macOS), off the capture
	// path: an id not yet known is sent without a name and learnt in the
	// background.
	ResolveNames bool
	// NameResolver replaces the platform's resolver (tests).
	NameResolver usercache.Resolver
	// Logger receives warnings, stderr lines and restart reports; nil discards.
	Logger *slog.Logger
}

// Source runs eslogger as a supervised child and pushes its events into the
// ring. It implements capture.Source.
type Source struct {
	o          Options
	log        *slog.Logger
	wantEvents []string
	dropClose  bool // "modify" without "close": drop unmodified closes
	dropClosed bool // "close" without "modify": drop modified closes
	parser     *Parser
	// streamOverride is set when Options.Stream was given.
	streamOverride bool
	restarts       atomic.Uint64
	gaps           atomic.Uint64
	// names is set while Run runs with Options.ResolveNames.
	names *usercache.Cache
}

// New validates o and returns the source. It does not start anything.
func New(o Options) (*Source, error) {
	if o.Path == "" {
		return nil, errors.New("eslogger: path is empty")
	}
	events, skipped, err := EsloggerEvents(o.Events)
	if err != nil {
		return nil, fmt.Errorf("eslogger: %w", err)
	}
	if len(events) == 0 {
		return nil, errors.New("eslogger: source.events selects no event eslogger can report")
	}
	if o.Backoff.Initial <= 0 {
		o.Backoff.Initial = time.Second
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = time.Minute
	}
	if o.Backoff.Multiplier < 1 {
		o.Backoff.Multiplier = 2
	}
	if o.HealthyAfter <= 0 {
		o.HealthyAfter = 30 * time.Second
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = 1 << 20
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 1 << 20
	}
	if o.PipeBuffer <= 0 {
		o.PipeBuffer = 1 << 20
	}
	override := o.Stream != nil
	if !override {
		base := uint64(time.Now().UnixMilli()) << 16
		o.Stream = func(start uint64) uint64 { return base + start }
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", "eslogger")
	for _, n := range skipped {
		log.Warn("source.events: macOS cannot report this event (Endpoint Security has no read event); ignoring it", "event", n)
	}
	o.MutePaths = mutePrefixes(o.MutePaths)
	s := &Source{o: o, log: log, wantEvents: events, parser: NewParser(), streamOverride: override}
	s.dropClose = slices.Contains(o.Events, "modify") && !slices.Contains(o.Events, "close")
	s.dropClosed = slices.Contains(o.Events, "close") && !slices.Contains(o.Events, "modify")
	return s, nil
}

// Name is the source label in metrics.
func (s *Source) Name() string { return "eslogger" }

// Restarts is how many times the child was restarted.
func (s *Source) Restarts() uint64 { return s.restarts.Load() }

// ParserStats returns the parser's counters (unknown and unmapped event types).
func (s *Source) ParserStats() Stats { return s.parser.Stats() }

// Run checks the platform, resolves the event list against
// `eslogger --list-events`, then runs eslogger until ctx is done, restarting
// it with backoff whenever it exits. It returns nil when ctx is cancelled and
// an error when capture cannot go on: a failed platform check, eslogger
// missing, or no Full Disk Access (wrapping ErrNotPermitted).
//
// Loss accounting: each restart adds 1 to source_restart (it marks a window of
// unknown loss, not a count of lost events); a global_seq_num gap adds the
// missing count to seq_gap; when messages lack global_seq_num (version < 4)
// per-event-type seq_num gaps are counted instead, never both, so nothing is
// counted twice. A restart starts a new numbering, which is not a gap.
func (s *Source) Run(ctx context.Context, out *capture.Ring, drops *capture.Drops) error {
	if err := checkPlatform(s.o.Path, s.log); err != nil {
		return err
	}
	events, err := s.resolveEvents(ctx)
	if err != nil {
		return err
	}
	args := append(slices.Clone(s.o.Args), s.selectArgs(ctx)...)
	args = append(args, events...)
	if s.o.ResolveNames {
		nctx, cancel := context.WithCancel(ctx)
		s.names = usercache.New(nctx, s.o.NameResolver, s.log)
		defer func() { cancel(); <-s.names.Done() }()
	}

	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.o.Backoff.Initial),
		backoff.WithMaxInterval(s.o.Backoff.Max),
		backoff.WithMultiplier(s.o.Backoff.Multiplier),
		backoff.WithRandomizationFactor(s.o.Backoff.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
	for start := uint64(0); ; start++ {
		res := s.runOnce(ctx, args, start, out, drops)
		if ctx.Err() != nil {
			return nil
		}
		if res.notPermitted {
			return ErrNotPermitted
		}
		if res.startErr != nil {
			if start == 0 {
				return fmt.Errorf("eslogger: start %s: %w", s.o.Path, res.startErr)
			}
			s.log.Error("eslogger: cannot start", "path", s.o.Path, "err", res.startErr)
		}
		if res.ran >= s.o.HealthyAfter {
			bo.Reset()
		}
		delay := bo.NextBackOff()
		drops.Add(schema.LossSourceRestart, 1)
		n := s.restarts.Add(1)
		s.log.Warn("eslogger exited; restarting (events are lost while it is down)",
			"exit", res.exit, "last_stderr", res.lastStderr, "ran", res.ran.Round(time.Millisecond),
			"restart_in", delay, "restarts", n)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// resolveEvents intersects the wanted eslogger names with --list-events.
func (s *Source) resolveEvents(ctx context.Context) ([]string, error) {
	out, err := s.probe(ctx, "--list-events")
	if err != nil {
		return nil, fmt.Errorf("eslogger: %s --list-events: %w", s.o.Path, err)
	}
	known := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		known[f] = true
	}
	var events []string
	for _, e := range s.wantEvents {
		if known[e] {
			events = append(events, e)
		} else {
			s.log.Warn("this macOS's eslogger does not know the event; not subscribing it", "event", e)
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("eslogger: none of the events %v is known to %s --list-events", s.wantEvents, s.o.Path)
	}
	return events, nil
}

// selectArgs returns --select arguments when asked for and supported.
func (s *Source) selectArgs(ctx context.Context) []string {
	if len(s.o.Select) == 0 {
		return nil
	}
	help, _ := s.probe(ctx, "--help") // eslogger may exit non-zero after printing help
	if !bytes.Contains(help, []byte("--select")) {
		s.log.Warn("this eslogger has no --select option; capturing all processes", "select", s.o.Select)
		return nil
	}
	var a []string
	for _, p := range s.o.Select {
		a = append(a, "--select", p)
	}
	return a
}

// probe runs eslogger with one informational flag and returns stdout+stderr.
func (s *Source) probe(ctx context.Context, flag string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.o.Path, append(slices.Clone(s.o.Args), flag)...)
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

type runResult struct {
	startErr     error
	exit         string
	lastStderr   string
	ran          time.Duration
	notPermitted bool
}

// runOnce starts one child and reads it until its stdout ends.
func (s *Source) runOnce(ctx context.Context, args []string, start uint64, out *capture.Ring, drops *capture.Drops) runResult {
	var res runResult
	pr, pw, err := os.Pipe()
	if err != nil {
		res.startErr = err
		return res
	}
	pipeSize := growPipe(pr, s.o.PipeBuffer)
	er, ew, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		res.startErr = err
		return res
	}
	// No Setpgid: eslogger mutes its own process group, which is the agent's.
	cmd := exec.Command(s.o.Path, args...)
	cmd.Stdout, cmd.Stderr = pw, ew
	began := time.Now()
	err = cmd.Start()
	pw.Close()
	ew.Close()
	if err != nil {
		pr.Close()
		er.Close()
		res.startErr = err
		return res
	}
	childPID := cmd.Process.Pid
	s.log.Info("eslogger started", "pid", childPID, "path", s.o.Path, "args", args, "pipe_buffer", pipeSize)

	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	se := &stderrState{log: s.log}
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		se.loop(er)
	}()

	readDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-exited:
		case <-readDone: // stdout closed: a child that cannot report is useless
		}
		// Make sure the child ends: SIGTERM, then SIGKILL after a grace.
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(2 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		// The child is gone; a grandchild could still hold the pipes open.
		rd, sd := readDone, stderrDone
		grace := time.After(2 * time.Second)
		for rd != nil || sd != nil {
			select {
			case <-rd:
				rd = nil
			case <-sd:
				sd = nil
			case <-grace:
				pr.Close()
				er.Close()
				return
			}
		}
	}()

	s.readLoop(pr, childPID, s.o.Stream(start), out, drops)
	close(readDone)
	pr.Close()
	<-exited
	<-stderrDone
	er.Close()

	res.ran = time.Since(began)
	res.exit = "exit status 0"
	if waitErr != nil {
		res.exit = waitErr.Error()
	}
	res.lastStderr = se.last()
	res.notPermitted = se.notPermitted.Load()
	return res
}

// readLoop is the capture loop: it reads lines, parses, checks sequence
// numbers, filters and pushes. It never waits on anything but the pipe.
func (s *Source) readLoop(r io.Reader, childPID int, stream uint64, out *capture.Ring, drops *capture.Drops) {
	br := bufio.NewReaderSize(r, s.o.ReadBuffer)
	var (
		ev        schema.Event
		long      []byte
		overlong  bool
		lineNo    uint64
		gap       gapState
		malformed uint64 // malformed lines since the last good one
		bad       = sampler{every: time.Minute, burst: 5}
		unknown   = map[string]bool{} // unknown event names already logged
	)
	handle := func(line []byte) {
		lineNo++
		mapped, err := s.parser.Parse(line, &ev)
		if err != nil {
			drops.Add(schema.LossMalformed, 1)
			malformed++
			if bad.allow(time.Now()) {
				sample := line
				if len(sample) > 256 {
					sample = sample[:256]
				}
				s.log.Warn("malformed eslogger line dropped", "line", lineNo, "err", err, "sample", string(sample), "suppressed", bad.takeSuppressed())
			}
			return
		}
		if missing := gap.observe(&ev); missing > 0 {
			// A malformed line was a message ESF did deliver; it is already
			// counted as malformed.
			if ev.HasGlobalSeq {
				m := min(missing, malformed)
				missing -= m
			}
			if missing > 0 {
				drops.Add(schema.LossSeqGap, missing)
				s.gaps.Add(missing)
			}
		}
		malformed = 0
		if !mapped {
			if eventKinds[ev.ESFEvent] == kindUnknown && len(unknown) < maxUnknownNames && !unknown[ev.ESFEvent] {
				unknown[ev.ESFEvent] = true
				s.log.Warn("eslogger sent an event type this agent does not know; counting and skipping it", "event", ev.ESFEvent)
			}
			return
		}
		if !ev.HasGlobalSeq {
			ev.Seq = lineNo
		}
		if p := int(ev.Process.PID); p == childPID || (s.o.SelfPID != 0 && p == s.o.SelfPID) {
			return
		}
		if (s.dropClose && ev.Action == schema.ActionClose) ||
			(s.dropClosed && ev.Action == schema.ActionModification && ev.ESFEvent == "close") {
			return // eslogger has one close event for two config names
		}
		for _, m := range s.o.MutePaths {
			if underDir(ev.Path, m) || (ev.OrigPath != "" && underDir(ev.OrigPath, m)) {
				return
			}
		}
		if s.streamOverride || ev.Stream == 0 {
			ev.Stream = stream
		}
		if s.names != nil && ev.Process.HasUser {
			ev.Process.UserName = s.names.Name(usercache.User, ev.Process.UID)
			ev.Process.GroupName = s.names.Name(usercache.Group, ev.Process.GID)
		}
		ev.CreatedNS = time.Now().UnixNano()
		out.TryPush(&ev)
	}
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !overlong {
				long = append(long, chunk...)
				if len(long) > s.o.MaxLine {
					overlong, long = true, long[:0]
				}
			}
			continue
		}
		line := chunk
		if !overlong && len(long) > 0 {
			long = append(long, chunk...)
			line = long
		}
		if overlong || len(trimEOL(line)) > s.o.MaxLine {
			lineNo++
			drops.Add(schema.LossMalformed, 1)
			malformed++
			if bad.allow(time.Now()) {
				s.log.Warn("eslogger line longer than source.max_line_bytes skipped (counted as malformed)", "line", lineNo, "limit", s.o.MaxLine,
					"suppressed", bad.takeSuppressed())
			}
			overlong = false
		} else if t := trimEOL(line); len(bytes.TrimSpace(t)) > 0 {
			handle(t)
		}
		long = long[:0]
		if cap(long) > 4*s.o.ReadBuffer {
			long = nil // do not keep a huge side buffer after one huge line
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, os.ErrClosed) {
				s.log.Warn("reading eslogger stdout", "err", err)
			}
			return
		}
	}
}

// trimEOL is bytes.TrimRight(line, "\r\n") without building a byte set per
// call.
func trimEOL(line []byte) []byte {
	n := len(line)
	for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
		n--
	}
	return line[:n]
}

// gapState tracks ESF sequence numbers of one eslogger run.
type gapState struct {
	haveGlobal bool
	lastGlobal uint64
	perType    map[string]uint64
}

// observe returns how many messages are missing before ev.
func (g *gapState) observe(ev *schema.Event) uint64 {
	var missing uint64
	if ev.HasGlobalSeq {
		if g.haveGlobal && ev.GlobalSeq > g.lastGlobal+1 {
			missing = ev.GlobalSeq - g.lastGlobal - 1
		}
		if !g.haveGlobal || ev.GlobalSeq > g.lastGlobal {
			g.lastGlobal = ev.GlobalSeq
		}
		g.haveGlobal = true
		return missing
	}
	if g.perType == nil {
		g.perType = make(map[string]uint64)
	}
	last, ok := g.perType[ev.ESFEvent]
	if ok && ev.ESFSeqNum > last+1 {
		missing = ev.ESFSeqNum - last - 1
	}
	if !ok || ev.ESFSeqNum > last {
		g.perType[ev.ESFEvent] = ev.ESFSeqNum
	}
	return missing
}

// sampler allows burst events per window and counts the rest.
type sampler struct {
	every      time.Duration
	burst      int
	start      time.Time
	n          int
	suppressed int
}

func (s *sampler) allow(now time.Time) bool {
	if now.Sub(s.start) >= s.every {
		s.start, s.n = now, 0
	}
	if s.n < s.burst {
		s.n++
		return true
	}
	s.suppressed++
	return false
}

func (s *sampler) takeSuppressed() int {
	n := s.suppressed
	s.suppressed = 0
	return n
}

// stderrState logs the child's stderr, rate-limited, and remembers its last line.
type stderrState struct {
	log          *slog.Logger
	mu           sync.Mutex
	lastLine     string
	notPermitted atomic.Bool
}

func (e *stderrState) last() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastLine
}

func (e *stderrState) loop(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	lim := sampler{every: time.Minute, burst: 20}
	for {
		line, err := br.ReadSlice('\n')
		if t := strings.TrimSpace(string(line)); t != "" {
			if len(t) > 1024 {
				t = t[:1024]
			}
			e.mu.Lock()
			e.lastLine = t
			e.mu.Unlock()
			if strings.Contains(t, notPermittedText) {
				if !e.notPermitted.Swap(true) {
					e.log.Error(ErrNotPermitted.Error())
				}
			}
			if lim.allow(time.Now()) {
				e.log.Warn("eslogger stderr", "line", t, "suppressed", lim.takeSuppressed())
			}
		}
		if err == bufio.ErrBufferFull {
			// Drain the rest of an overlong line.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil {
			return
		}
	}
}

// mutePrefixes makes each muted directory absolute and adds its resolved
// real path: ESF reports real paths (/private/var/… for /var/…), and a
// relative data_dir would never match.
func mutePrefixes(dirs []string) []string {
	var out []string
	add := func(p string) {
		p = strings.TrimRight(p, "/")
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			abs = d
		}
		add(abs)
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			add(real)
		}
	}
	return out
}

// underDir reports whether p is dir or inside it.
func underDir(p, dir string) bool {
	return strings.HasPrefix(p, dir) && (len(p) == len(dir) || p[len(dir)] == '/')
}
