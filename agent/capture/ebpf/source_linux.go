//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

const (
	defaultRingBytes  = 8 << 20
	defaultMapEntries = 32768
	maxMute           = 8
	batchSize         = 4096 // aggregation map entries per batch syscall
	// pollEvery is how often the read loop looks at the ring buffer when
	// the kernel has not woken it (it wakes it only past an eighth full).
	pollEvery = 20 * time.Millisecond
)

// Kernel counters (enum fw_counter).
const (
	cRingbufFull  = 0
	cMapFull      = 1
	cUnaggregated = 2
	cMuted        = 3
	cPathTrunc    = 4
	cAggregated   = 5
	cStashFull    = 6
	cPathCacheHit = 7
	cCount        = 8
)

// Record flags (F_* in the C source).
const (
	flagTruncated = 1
	flagAgg       = 2 // an aggregation entry in the kernel counts this record's repeats
	flagOpen      = 4 // a creation that is also its open: two events, the creation first
)

// Event selection bits (EV_* in the C source).
const (
	evOpen   = 1 << 0
	evClose  = 1 << 1
	evCreate = 1 << 2
	evModify = 1 << 3
	evRename = 1 << 4
	evDelete = 1 << 5
	evAttrib = 1 << 6
	evExec   = 1 << 7
)

// Source is the eBPF capture source. Create it with New, run it once with
// Run. It is a capture.Source.
type Source struct {
	o       Options
	log     *slog.Logger
	objs    filewardObjects
	links   []link.Link
	mask    uint32
	started atomic.Bool
	closeMu sync.Mutex
	closed  bool

	records, events, repeats, malformed, ignoredN atomic.Uint64
	kernel                                        [cCount]atomic.Uint64 // last totals of the kernel counters

	enr     enricher
	ignores []string // IgnorePaths, cleaned: dropped by prefix in the read loop too
}

var _ capture.Source = (*Source)(nil)

// parseEvents maps config event names to the kernel's selection bits and
// returns the names eBPF capture does not give (access, write).
func parseEvents(names []string) (uint32, []string) {
	if len(names) == 0 {
		names = []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"}
	}
	var m uint32
	var unknown []string
	for _, n := range names {
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "open":
			m |= evOpen
		case "close":
			m |= evClose
		case "create":
			m |= evCreate
		case "modify":
			m |= evModify
		case "rename":
			m |= evRename
		case "delete":
			m |= evDelete
		case "attrib":
			m |= evAttrib
		case "exec":
			m |= evExec
		default:
			unknown = append(unknown, n)
		}
	}
	return m, unknown
}

// muted is one in-kernel muted directory or file: a path that passes
// through it is not reported.
type muted struct {
	path string
	dev  uint32 // the kernel's dev_t (major<<20 | minor)
	ino  uint64
}

// muteInodes picks what the kernel filters: the agent's own paths first,
// then exclude_paths, by the (device, inode) of each that exists now, at
// most 8. It returns the paths left to user space (the pipeline filters
// every one of them by prefix anyway).
func muteInodes(ignore, exclude []string) (kernel []muted, rest []string) {
	seen := map[string]bool{}
	add := func(p string) {
		if p == "" {
			return
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		p = filepath.Clean(p)
		if seen[p] {
			return
		}
		seen[p] = true
		var st unix.Stat_t
		if p == "/" || len(kernel) >= maxMute || unix.Stat(p, &st) != nil {
			rest = append(rest, p)
			return
		}
		dev := unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)
		kernel = append(kernel, muted{path: p, dev: uint32(dev), ino: st.Ino})
	}
	for _, p := range ignore {
		add(p)
	}
	for _, p := range exclude {
		add(p)
	}
	return kernel, rest
}

// Supported says why this machine cannot run eBPF capture, or nil. It
// checks what New needs without loading anything: root and kernel BTF. The
// hooks are syscall tracepoints and a BTF tracepoint, so the BPF LSM need
// not be active (docs/linux.md).
func Supported() error {
	return supported(unix.Geteuid(), "/sys/kernel/btf/vmlinux")
}

func supported(euid int, btf string) error {
	if euid != 0 {
		return fmt.Errorf("ebpf capture needs root (CAP_BPF and CAP_PERFMON to load and attach tracepoint programs); this process is uid %d", euid)
	}
	if _, err := os.Stat(btf); err != nil {
		return fmt.Errorf("ebpf capture needs kernel BTF (%s, CONFIG_DEBUG_INFO_BTF): %w", btf, err)
	}
	return nil
}

// New loads the BPF programs, sets their constants (the agent's pid, the
// muted prefixes, the events, the window) and attaches them. Every error
// says what is missing; the agent's source.type auto falls back to fanotify
// on any of them.
func New(o Options) (*Source, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.RingBytes <= 0 {
		o.RingBytes = defaultRingBytes
	}
	if o.RingBytes&(o.RingBytes-1) != 0 || o.RingBytes < os.Getpagesize() {
		return nil, fmt.Errorf("ebpf: ring buffer size %d must be a power of two of at least one page (%d)", o.RingBytes, os.Getpagesize())
	}
	if o.MapEntries <= 0 {
		o.MapEntries = defaultMapEntries
	}
	mask, unknown := parseEvents(o.Events)
	if len(unknown) > 0 {
		log.Warn("ebpf capture cannot report these source.events; they are ignored", "events", unknown)
	}
	if mask == 0 {
		return nil, errors.New("ebpf: no events to capture: check source.events")
	}
	if err := Supported(); err != nil {
		return nil, err
	}
	spec, err := loadFileward()
	if err != nil {
		return nil, fmt.Errorf("ebpf: %w", err)
	}
	kernelMute, rest := muteInodes(o.IgnorePaths, o.ExcludePaths)
	if len(rest) > 0 {
		log.Info("ebpf: these paths are filtered by the pipeline, not in the kernel (missing now, /, or past the kernel's 8 entries)", "paths", rest)
	}
	var muteDev [maxMute]uint32
	var muteIno [maxMute]uint64
	for i, m := range kernelMute {
		muteDev[i], muteIno[i] = m.dev, m.ino
	}
	window := uint64(0)
	if o.AggregateWindow > 0 {
		window = uint64(o.AggregateWindow)
	}
	for name, v := range map[string]any{
		"self_tgid": uint32(o.SelfPID), "target_tgid": uint32(o.targetPID), "event_mask": mask,
		"path_cache": boolU32(!o.noPathCache), "wakeup_bytes": wakeupBytes(o),
		"window_ns": window, "mute_dev": muteDev, "mute_ino": muteIno, "mute_count": uint32(len(kernelMute)),
	} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("ebpf: the BPF object has no variable %s (regenerate it: make generate)", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("ebpf: set %s: %w", name, err)
		}
	}
	spec.Maps["events"].MaxEntries = uint32(o.RingBytes)
	spec.Maps["agg"].MaxEntries = uint32(o.MapEntries)
	spec.Maps["wfiles"].MaxEntries = uint32(o.MapEntries)
	if o.InjectLoadFailure {
		// A program the verifier refuses: it returns without setting R0.
		spec.Programs["fw_open_exit"].Instructions = asm.Instructions{asm.Return()}
	}
	if err := mountTracefs(); err != nil {
		return nil, err
	}
	s := &Source{o: o, log: log, mask: mask, enr: newEnricher(o.HostRoot)}
	for _, p := range o.IgnorePaths {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		s.ignores = append(s.ignores, filepath.Clean(p))
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("ebpf: the kernel refused fileward's BPF programs (verifier): %w", err)
		}
		return nil, fmt.Errorf("ebpf: load BPF programs: %w", err)
	}
	o2 := &s.objs
	for _, tp := range []struct {
		name     string
		prog     *ebpf.Program
		optional bool // absent on some architectures (arm64 has only the *at calls)
	}{
		{"sys_exit_openat", o2.FwOpenExit, false}, {"sys_exit_openat2", o2.FwOpenExit, true},
		{"sys_exit_open", o2.FwOpenExit, true}, {"sys_exit_creat", o2.FwOpenExit, true},
		{"sys_enter_write", o2.FwWrite, false}, {"sys_enter_pwrite64", o2.FwWrite, false},
		{"sys_enter_writev", o2.FwWrite, false}, {"sys_enter_pwritev", o2.FwWrite, false}, {"sys_enter_pwritev2", o2.FwWrite, true},
		{"sys_enter_close", o2.FwClose, false}, {"sys_enter_dup2", o2.FwDup2, true}, {"sys_enter_dup3", o2.FwDup2, false},
		{"sys_enter_unlinkat", o2.FwUnlinkat, false}, {"sys_enter_unlink", o2.FwUnlink, true}, {"sys_enter_rmdir", o2.FwRmdir, true},
		{"sys_enter_mkdirat", o2.FwMkdirat, false}, {"sys_enter_mkdir", o2.FwMkdir, true},
		{"sys_enter_symlinkat", o2.FwSymlinkat, false}, {"sys_enter_symlink", o2.FwSymlink, true},
		{"sys_enter_renameat2", o2.FwRenameat2, false}, {"sys_enter_renameat", o2.FwRenameat, true}, {"sys_enter_rename", o2.FwRename, true},
		{"sys_enter_linkat", o2.FwLinkat, false}, {"sys_enter_link", o2.FwLink, true},
		{"sys_enter_fchmodat", o2.FwFchmodat, false}, {"sys_enter_fchmodat2", o2.FwFchmodat, true}, {"sys_enter_chmod", o2.FwChmod, true},
		{"sys_enter_fchownat", o2.FwFchownat, false}, {"sys_enter_chown", o2.FwChown, true}, {"sys_enter_lchown", o2.FwLchown, true},
		{"sys_enter_fchmod", o2.FwFchmod, false}, {"sys_enter_fchown", o2.FwFchown, false},
		{"sys_exit_unlinkat", o2.FwPathExit, false}, {"sys_exit_unlink", o2.FwPathExit, true}, {"sys_exit_rmdir", o2.FwPathExit, true},
		{"sys_exit_mkdirat", o2.FwPathExit, false}, {"sys_exit_mkdir", o2.FwPathExit, true},
		{"sys_exit_symlinkat", o2.FwPathExit, false}, {"sys_exit_symlink", o2.FwPathExit, true},
		{"sys_exit_renameat2", o2.FwPathExit, false}, {"sys_exit_renameat", o2.FwPathExit, true}, {"sys_exit_rename", o2.FwPathExit, true},
		{"sys_exit_linkat", o2.FwPathExit, false}, {"sys_exit_link", o2.FwPathExit, true},
		{"sys_exit_fchmodat", o2.FwPathExit, false}, {"sys_exit_fchmodat2", o2.FwPathExit, true}, {"sys_exit_chmod", o2.FwPathExit, true},
		{"sys_exit_fchownat", o2.FwPathExit, false}, {"sys_exit_chown", o2.FwPathExit, true}, {"sys_exit_lchown", o2.FwPathExit, true},
	} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			if tp.optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			s.release()
			return nil, fmt.Errorf("ebpf: attach to tracepoint syscalls:%s: %w (the kernel needs CONFIG_FTRACE_SYSCALLS)", tp.name, err)
		}
		s.links = append(s.links, l)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: o2.FwExec})
	if err != nil {
		s.release()
		return nil, fmt.Errorf("ebpf: attach to BTF tracepoint sched_process_exec: %w", err)
	}
	s.links = append(s.links, l)
	return s, nil
}

func (s *Source) release() {
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
	s.objs.Close()
}

// Close detaches and releases a Source whose Run was never called. Run
// releases everything itself when it returns.
func (s *Source) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed || s.started.Load() {
		return nil
	}
	s.closed = true
	s.release()
	return nil
}

// Name returns "ebpf".
func (s *Source) Name() string { return "ebpf" }

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	return Stats{
		Records: s.records.Load(), Events: s.events.Load(), Repeats: s.repeats.Load(), Malformed: s.malformed.Load(), Ignored: s.ignoredN.Load(),
		Aggregated: s.kernel[cAggregated].Load(), RingbufFull: s.kernel[cRingbufFull].Load(), MapFull: s.kernel[cMapFull].Load(),
		Unaggregated: s.kernel[cUnaggregated].Load(), Muted: s.kernel[cMuted].Load(), PathsTruncated: s.kernel[cPathTrunc].Load(),
		StashFull: s.kernel[cStashFull].Load(), PathCacheHits: s.kernel[cPathCacheHit].Load(),
	}
}

// procKey is one process instance: its tgid and start time.
type procKey struct {
	tgid  uint32
	start uint64
}

// loop is Run's state; only Run's goroutine touches it.
type loop struct {
	s         *Source
	out       *capture.Ring
	drops     *capture.Drops
	stream    uint64
	seq       uint64
	bootToTS  int64 // Unix ns minus CLOCK_BOOTTIME ns
	templates map[filewardAggKey]template
	deleted   int              // templates deleted since the map was last rebuilt
	keys      []filewardAggKey // sweep buffers
	vals      []filewardAggVal
	done      []filewardAggKey
	exes      map[procKey]string
	maxExes   int
}

// Run reads the ring buffer until ctx is done, pushing events to out. On
// cancellation it detaches the programs, reads what is left, reports every
// open aggregation window with its count and returns nil. It may be called
// once.
func (s *Source) Run(ctx context.Context, out *capture.Ring, drops *capture.Drops) error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return errors.New("ebpf: source is closed")
	}
	if !s.started.CompareAndSwap(false, true) {
		s.closeMu.Unlock()
		return errors.New("ebpf: Run called twice")
	}
	s.closeMu.Unlock()
	defer s.release()

	rd, err := ringbuf.NewReader(s.objs.Events)
	if err != nil {
		return fmt.Errorf("ebpf: ring buffer reader: %w", err)
	}
	defer rd.Close()
	l := &loop{s: s, out: out, drops: drops, stream: uint64(time.Now().UnixNano()) &^ 0xff,
		templates: map[filewardAggKey]template{}, exes: map[procKey]string{}, maxExes: 16384,
		keys: make([]filewardAggKey, batchSize), vals: make([]filewardAggVal, batchSize)}
	l.clock()
	if s.o.stall != nil {
		select {
		case <-s.o.stall:
		case <-ctx.Done():
		}
	}
	tick := 500 * time.Millisecond
	if w := s.o.AggregateWindow; w > 0 && w/2 < tick {
		tick = max(w/2, 20*time.Millisecond)
	}
	// The kernel wakes this reader only when an eighth of the ring buffer
	// is unread (see submit in the C source): it looks every pollEvery, and
	// does its housekeeping every tick. One clock read per record: the
	// deadline is set again only when the ring ran dry (a record that is
	// there is returned whatever the deadline), not before every read.
	now := time.Now()
	next := now.Add(tick)
	deadline := func(now time.Time) {
		dl := now.Add(pollEvery)
		if next.Before(dl) {
			dl = next
		}
		rd.SetDeadline(dl)
	}
	deadline(now)
	var rec ringbuf.Record
	for {
		err := rd.ReadInto(&rec)
		now = time.Now()
		switch {
		case err == nil:
			l.record(rec.RawSample, now.UnixNano())
			if now.Before(next) {
				continue
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if now.Before(next) && ctx.Err() == nil {
				deadline(now)
				continue
			}
		default:
			return fmt.Errorf("ebpf: read ring buffer: %w", err)
		}
		if ctx.Err() != nil {
			l.shutdown(rd)
			return nil
		}
		l.clock()
		l.sweep(false)
		l.counters()
		now = time.Now()
		next = now.Add(tick)
		deadline(now)
	}
}

// shutdown detaches the programs, reads the records left in the ring buffer,
// and reports every aggregation window and the last losses.
func (l *loop) shutdown(rd *ringbuf.Reader) {
	for _, ln := range l.s.links {
		ln.Close()
	}
	l.s.links = nil
	var rec ringbuf.Record
	for {
		rd.SetDeadline(time.Now())
		if err := rd.ReadInto(&rec); err != nil {
			break
		}
		l.record(rec.RawSample, time.Now().UnixNano())
	}
	l.sweep(true)
	l.counters()
}

func (l *loop) clock() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err == nil {
		l.bootToTS = time.Now().UnixNano() - ts.Nano()
	}
}

// counters turns the kernel's counters into drops and stats.
func (l *loop) counters() {
	var vals []uint64
	for i := uint32(0); i < cCount; i++ {
		if err := l.s.objs.Counters.Lookup(i, &vals); err != nil {
			continue
		}
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		prev := l.s.kernel[i].Swap(sum)
		if sum <= prev {
			continue
		}
		switch i {
		case cRingbufFull:
			l.drops.Add(schema.LossEBPFRingbufFull, sum-prev)
		case cMapFull, cStashFull:
			l.drops.Add(schema.LossEBPFMapFull, sum-prev)
		}
	}
}

// record decodes one ring buffer record and pushes its event; now is the
// clock at its read (event.created).
func (l *loop) record(b []byte, now int64) {
	l.s.records.Add(1)
	var r record
	if err := decode(b, &r); err != nil {
		l.s.malformed.Add(1)
		l.drops.Add(schema.LossMalformed, 1)
		return
	}
	if l.s.ignored(r.path) || (r.path2 != "" && l.s.ignored(r.path2)) {
		// The agent's own paths that did not exist when the kernel's table
		// was filled (a file sink's directory made later), used by another
		// process.
		l.s.ignoredN.Add(1)
		return
	}
	ev := schema.Event{
		TimeNS:        int64(r.timeNS) + l.bootToTS,
		CreatedNS:     now,
		Provider:      schema.ProviderEBPF,
		Access:        uint8(r.access),
		Stream:        l.stream,
		Path:          l.host(r.path),
		PathTruncated: r.flags&flagTruncated != 0,
		Process: schema.Process{
			PID:     int32(r.tgid),
			PPID:    int32(r.ppid),
			StartNS: int64(r.startNS) + l.bootToTS,
			HasUser: true,
			UID:     r.euid,
			RUID:    r.uid,
			GID:     r.egid,
		},
	}
	switch r.action {
	case kOpen:
		ev.Action = schema.ActionOpen
	case kClose:
		ev.Action = schema.ActionClose
	case kModify:
		ev.Action = schema.ActionModification
	case kCreate:
		ev.Action = schema.ActionCreation
	case kDelete:
		ev.Action = schema.ActionDeletion
	case kRename:
		ev.Action = schema.ActionRename
		ev.OrigPath = l.host(r.path2)
	case kAttrib:
		ev.Action = schema.ActionAttributesModification
	case kExec:
		ev.Action = schema.ActionExec
	case kLink:
		ev.Action = schema.ActionLink
		ev.OrigPath = l.host(r.path2)
	}
	pk := procKey{tgid: r.tgid, start: r.startNS}
	if r.action == kExec {
		if len(l.exes) >= l.maxExes {
			clear(l.exes)
		}
		l.exes[pk] = ev.Path
		ev.Process.Executable = ev.Path
	} else if exe, ok := l.exes[pk]; ok {
		ev.Process.Executable = exe
	}
	if ev.Process.Executable == "" {
		ev.Process.Name = string(r.comm)
	}
	action := r.action
	if r.flags&flagOpen != 0 && r.action == kCreate {
		// One record for an open(2) that created the file: the creation
		// (no access, as a creation alone), then the open, which is what
		// the kernel's aggregation entry counts.
		cr := ev
		cr.Access = 0
		l.push(&cr)
		ev.Action = schema.ActionOpen
		action = kOpen
	}
	if r.flags&flagAgg != 0 && l.s.o.AggregateWindow > 0 {
		k := filewardAggKey{Dentry: r.keyDentry, Mnt: r.keyMnt, Epoch: r.timeNS / uint64(l.s.o.AggregateWindow),
			StartNs: r.startNS, Tgid: r.tgid, Action: action, Access: r.access}
		l.templates[k] = template{path: ev.Path, exe: ev.Process.Executable, name: ev.Process.Name, start: ev.Process.StartNS,
			pid: ev.Process.PID, ppid: ev.Process.PPID, uid: r.euid, ruid: r.uid, gid: r.egid, action: ev.Action, access: ev.Access}
	}
	l.push(&ev)
}

// template is what the read loop keeps of a record whose repeats the kernel
// counts, to report them when the window is over: the fields of an open,
// close or modification document (about 100 bytes, not a whole event).
type template struct {
	path, exe, name string
	start           int64
	pid, ppid       int32
	uid, ruid, gid  uint32
	action          schema.Action
	access          uint8
}

func (t *template) event() schema.Event {
	return schema.Event{Action: t.action, Provider: schema.ProviderEBPF, Access: t.access, Path: t.path,
		Process: schema.Process{PID: t.pid, PPID: t.ppid, StartNS: t.start, Executable: t.exe, Name: t.name,
			HasUser: true, UID: t.uid, RUID: t.ruid, GID: t.gid}}
}

// ignored says whether p is one of the agent's own paths or under one.
func (s *Source) ignored(p string) bool {
	for _, ig := range s.ignores {
		if p == ig || (len(p) > len(ig) && p[len(ig)] == '/' && p[:len(ig)] == ig) || ig == "/" {
			return true
		}
	}
	return false
}

func (l *loop) host(p string) string {
	if l.s.o.HostRoot == "" {
		return p
	}
	return capture.StripHostRoot(l.s.o.HostRoot, p)
}

func (l *loop) push(ev *schema.Event) {
	ev.Seq = l.seq
	l.seq++
	l.s.events.Add(1)
	l.out.TryPush(ev)
}

// sweep reports the aggregation windows that are over (all: every window)
// as one document each whose fileward.count is the number of repeats the
// kernel counted, and deletes them. A window is over one full window after
// it ends: the kernel only counts into the window of the current time.
func (l *loop) sweep(all bool) {
	w := uint64(l.s.o.AggregateWindow)
	if w == 0 {
		return
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return
	}
	cur := uint64(ts.Nano()) / w
	// Read the map in batches (one syscall per 4096 entries, not two per
	// entry), then delete the finished windows' entries in batches too.
	var cursor ebpf.MapBatchCursor
	done := l.done[:0]
	for {
		n, err := l.s.objs.Agg.BatchLookup(&cursor, l.keys, l.vals, nil)
		for i := 0; i < n; i++ {
			k, v := l.keys[i], l.vals[i]
			if !all && k.Epoch+1 >= cur {
				continue
			}
			if v.Muted == 0 && v.Count > 0 {
				tp, ok := l.templates[k]
				if !ok && !all {
					continue // its first record is not read yet: next sweep
				}
				if ok {
					t := tp.event()
					t.Stream = l.stream
					t.TimeNS = int64(v.LastNs) + l.bootToTS
					t.CreatedNS = time.Now().UnixNano()
					t.Count = uint32(min(v.Count, uint64(^uint32(0))))
					l.s.repeats.Add(1)
					l.push(&t)
				}
			}
			done = append(done, k)
		}
		if err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				l.s.log.Warn("ebpf: reading the aggregation map failed; its counts will be reported at the next sweep", "err", err)
			}
			break
		}
	}
	for i := 0; i < len(done); i += batchSize {
		if _, err := l.s.objs.Agg.BatchDelete(done[i:min(i+batchSize, len(done))], nil); err != nil {
			// One by one, so that one vanished key does not keep the rest.
			for _, k := range done[i:min(i+batchSize, len(done))] {
				l.s.objs.Agg.Delete(&k)
			}
		}
	}
	l.done = done[:0]
	for k := range l.templates {
		if all || k.Epoch+1 < cur {
			delete(l.templates, k)
			l.deleted++
		}
	}
	// A Go map keeps its size after deletes: start a new one with the
	// survivors once it has shed eight times what it holds. Not
	// maps.Clone: a clone keeps the original's size (its tables), which
	// kept the burst's peak alive (10 MiB of the agent's heap).
	if l.deleted > 8*len(l.templates)+8192 {
		m := make(map[filewardAggKey]template, len(l.templates))
		for k, v := range l.templates {
			m[k] = v
		}
		l.templates = m
		l.deleted = 0
	}
}

// mountTracefs mounts tracefs at /sys/kernel/tracing when it is not mounted
// there or under /sys/kernel/debug: the syscall tracepoints' ids are read
// from it.
func mountTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("ebpf: tracefs is not mounted and mounting it at /sys/kernel/tracing failed: %w (mount -t tracefs tracefs /sys/kernel/tracing)", err)
	}
	return nil
}

// enricher fills the executable of processes whose exec the source did not
// see (started before the agent) from /proc/<pid>/exe, after the ring. It is
// used by the pipeline's goroutine only.
type enricher struct {
	mu       sync.Mutex
	hostRoot string
	cache    map[[2]int64]string // (pid, start) → executable
}

func newEnricher(hostRoot string) enricher {
	return enricher{hostRoot: hostRoot, cache: map[[2]int64]string{}}
}

// Enrich fills process.executable when the kernel side could not (the
// process started before the agent and has not exec'd since). It reports
// whether the executable is known.
func (s *Source) Enrich(ev *schema.Event) bool {
	if ev.Process.Executable != "" {
		return true
	}
	e := &s.enr
	e.mu.Lock()
	defer e.mu.Unlock()
	pid := ev.Process.PID
	key := [2]int64{int64(pid), ev.Process.StartNS}
	if exe, ok := e.cache[key]; ok {
		ev.Process.Executable, ev.Process.Name = exe, ""
		return true
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe")
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	if e.hostRoot != "" {
		exe = capture.StripHostRoot(e.hostRoot, exe)
	}
	if len(e.cache) >= 16384 {
		clear(e.cache)
	}
	e.cache[key] = exe
	ev.Process.Executable, ev.Process.Name = exe, ""
	return true
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// wakeupBytes is when the kernel wakes the reader: an eighth of the ring
// buffer unread, or 0 for the kernel's adaptive wake-up (benchmarks).
func wakeupBytes(o Options) uint64 {
	if o.adaptiveWakeup {
		return 0
	}
	return uint64(o.RingBytes / 8)
}
