//go:build linux

package fanotify

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

const (
	defaultReadBuffer   = 256 << 10
	defaultDirCacheSize = 16384
	defaultBatchDelay   = 5 * time.Millisecond
)

// Source is the fanotify capture source. Create it with New, run it once
// with Run. It is a capture.Source.
type Source struct {
	o       Options
	log     *slog.Logger
	groups  []*group
	ignores []string
	started atomic.Bool
	closeMu sync.Mutex
	closed  bool

	reads, records, events, overflows atomic.Uint64
	selfDropped, ignored, unresolved  atomic.Uint64
	malformed, nameless               atomic.Uint64
	maxWork                           atomic.Int64

	// onRead, when set (tests), is called after every read with its time
	// and the bytes read, before they are processed.
	onRead func(t time.Time, b []byte)
}

var _ capture.Source = (*Source)(nil)

// group is one fanotify group and everything its read loop owns.
type group struct {
	fd     int
	fid    bool // FID group (handles); false: descriptor group (fds)
	stream uint64
	seq    uint64
	mounts map[uint64]int // fsid → O_PATH fd on that filesystem, for open_by_handle_at
	cache  *dirCache
	split  *splitter
	lnkBuf []byte

	// The program of the last execve seen: its pid, path and read time.
	execPID  int32
	execPath string
	execAt   int64
}

// execBurst is how close the exec records of one execve are: the program's,
// then its interpreters'.
const execBurst = 100 * time.Millisecond

// kernel is the running kernel's version.
type kernel struct {
	release      string
	major, minor int
}

func (k kernel) atLeast(major, minor int) bool {
	return k.major > major || (k.major == major && k.minor >= minor)
}

func runningKernel() kernel {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernel{release: "unknown"}
	}
	return parseKernel(unix.ByteSliceToString(u.Release[:]))
}

// parseKernel reads "6.18.0-1-amd64" as 6.18.
func parseKernel(rel string) kernel {
	k := kernel{release: rel}
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) >= 2 {
		k.major, _ = strconv.Atoi(parts[0])
		minor := parts[1]
		if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			minor = minor[:i]
		}
		k.minor, _ = strconv.Atoi(minor)
	}
	return k
}

// New checks privileges and kernel features, creates the fanotify groups and
// adds the marks. Every error says what to change. Warnings (an event name
// fanotify cannot give, a fallback) go to o.Logger once.
func New(o Options) (*Source, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(o.Marks) == 0 {
		o.Marks = []string{"/"}
	}
	if o.MarkType == "" {
		o.MarkType = "filesystem"
	}
	if o.Queue == "" {
		o.Queue = "default"
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = defaultReadBuffer
	}
	if o.ReadBuffer < 4096 {
		o.ReadBuffer = 4096
	}
	if o.DirCacheSize <= 0 {
		o.DirCacheSize = defaultDirCacheSize
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = defaultBatchDelay
	}
	var markFlag uint
	switch o.MarkType {
	case "filesystem":
		markFlag = unix.FAN_MARK_FILESYSTEM
	case "mount":
		markFlag = unix.FAN_MARK_MOUNT
	case "inode":
		markFlag = 0
	default:
		return nil, fmt.Errorf("source.fanotify.mark_type: %q is not filesystem, mount or inode", o.MarkType)
	}
	if o.Queue != "default" && o.Queue != "unlimited" {
		return nil, fmt.Errorf("source.fanotify.queue: %q is not default or unlimited", o.Queue)
	}
	if err := checkPrivilege(); err != nil {
		return nil, err
	}
	k := runningKernel()
	if o.kernelRelease != "" {
		k = parseKernel(o.kernelRelease)
	}
	ev, unknown := parseEvents(o.Events)
	if len(unknown) > 0 {
		log.Warn("fanotify cannot report these source.events; they are ignored on Linux", "events", unknown)
	}
	if !k.atLeast(5, 9) {
		return nil, fmt.Errorf("fanotify: Linux %s is too old: fileward needs Linux 5.9 or later for file-handle reporting with names (FAN_REPORT_DFID_NAME), which every event (%s) uses; upgrade the kernel", k.release, strings.Join(eventNames(ev), ", "))
	}
	legacyRename := !k.atLeast(5, 17) || o.forceLegacyRename
	if legacyRename && ev.rename {
		log.Warn("fanotify: FAN_RENAME needs Linux 5.17; this kernel reports the old and new names of a rename as two separate rename events (FAN_MOVED_FROM, FAN_MOVED_TO)", "kernel", k.release)
	}
	for _, m := range o.Marks {
		if !filepath.IsAbs(m) {
			return nil, fmt.Errorf("source.fanotify.marks: %q must be an absolute path", m)
		}
		if _, err := os.Stat(m); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("source.fanotify.marks: %q does not exist: create it or remove it from the list", m)
			}
			return nil, fmt.Errorf("source.fanotify.marks: %q: %w", m, err)
		}
	}

	s := &Source{o: o, log: log}
	for _, p := range o.IgnorePaths {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		s.ignores = append(s.ignores, filepath.Clean(p))
	}
	streamBase := uint64(time.Now().UnixNano()) &^ 0xff

	fidEvents := ev
	var descEvents eventSet
	var descMarks []string
	if o.forceDescriptor {
		descEvents = descriptorSubset(ev)
		descMarks = o.Marks
		fidEvents = eventSet{}
	} else {
		if o.MarkType == "mount" && ev.dirent() {
			log.Warn("fanotify: mount marks cannot report create, delete, rename or attrib (a kernel limitation); use mark_type filesystem or inode to get them", "marks", o.Marks)
			fidEvents.create, fidEvents.delete, fidEvents.rename, fidEvents.attrib = false, false, false, false
		}
		g, fallback, err := s.newFIDGroup(fidEvents, legacyRename, markFlag, k)
		if err != nil {
			s.Close()
			return nil, err
		}
		if g != nil {
			g.stream = streamBase | uint64(len(s.groups))
			s.groups = append(s.groups, g)
		}
		if len(fallback) > 0 {
			descEvents = descriptorSubset(ev)
			descMarks = fallback
			log.Warn("fanotify: these filesystems cannot give file handles; falling back to a descriptor group with mount marks, which reports open, close, modify, exec and access but not create, delete, rename or attrib there", "marks", fallback)
		}
	}
	if len(descMarks) > 0 && descEvents != (eventSet{}) {
		g, err := s.newDescriptorGroup(descEvents, descMarks, k)
		if err != nil {
			s.Close()
			return nil, err
		}
		g.stream = streamBase | uint64(len(s.groups))
		s.groups = append(s.groups, g)
	}
	if len(s.groups) == 0 {
		return nil, errors.New("fanotify: no events to capture on these marks: check source.events and source.fanotify.mark_type")
	}
	return s, nil
}

func eventNames(ev eventSet) []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{ev.open, "open"}, {ev.close, "close"}, {ev.create, "create"}, {ev.modify, "modify"}, {ev.rename, "rename"},
		{ev.delete, "delete"}, {ev.attrib, "attrib"}, {ev.exec, "exec"}, {ev.access, "access"}, {ev.write, "write"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// descriptorSubset is what a descriptor group on a mount mark can report.
func descriptorSubset(ev eventSet) eventSet {
	return eventSet{open: ev.open, close: ev.close, modify: ev.modify, exec: ev.exec, access: ev.access, write: ev.write}
}

// checkPrivilege returns an actionable error unless the process is root or
// holds CAP_SYS_ADMIN, which fanotify_init requires.
func checkPrivilege() error {
	if unix.Geteuid() == 0 {
		return nil
	}
	if hasCapSysAdmin() {
		return nil
	}
	return fmt.Errorf("fanotify needs root or CAP_SYS_ADMIN, and this process (uid %d) has neither: run fileward as root, or grant the capability (systemd: AmbientCapabilities=CAP_SYS_ADMIN; or setcap cap_sys_admin,cap_dac_read_search+ep on the binary)", unix.Geteuid())
}

func hasCapSysAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && bits&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return false
}

func initError(err error, k kernel, what string) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("fanotify_init: %w: run fileward as root or with CAP_SYS_ADMIN", err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("fanotify_init: %w: Linux %s does not support %s; upgrade to Linux 5.17 or later", err, k.release, what)
	case errors.Is(err, unix.EMFILE):
		return fmt.Errorf("fanotify_init: %w: too many fanotify groups (fs.fanotify.max_user_groups)", err)
	}
	return fmt.Errorf("fanotify_init: %w", err)
}

// newFIDGroup creates the FID group and marks every path. Paths whose
// filesystem cannot encode file handles are returned as fallback.
func (s *Source) newFIDGroup(ev eventSet, legacyRename bool, markFlag uint, k kernel) (*group, []string, error) {
	mask := ev.kernelMask(legacyRename)
	if mask&^fanOnDir == 0 {
		return nil, nil, nil
	}
	// Records carry the parent directory's handle and the entry name
	// (FAN_REPORT_DFID_NAME). The object's own handle (FAN_REPORT_FID,
	// plus FAN_REPORT_TARGET_FID for entry events) costs the workload a
	// second handle encoding per event, about 10% more kernel time in
	// BenchmarkCaptureOverhead, and buys little: it is off by default.
	flags := uint(unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME)
	what := "FAN_REPORT_DFID_NAME"
	if s.o.childFID {
		flags |= unix.FAN_REPORT_FID
		what += " with FAN_REPORT_FID"
		if !legacyRename {
			flags |= unix.FAN_REPORT_TARGET_FID
			what += " and FAN_REPORT_TARGET_FID"
		}
	}
	if s.o.Queue == "unlimited" {
		flags |= unix.FAN_UNLIMITED_QUEUE
	}
	fd, err := unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, nil, initError(err, k, what)
	}
	g := &group{fd: fd, fid: true, mounts: map[uint64]int{}, cache: newDirCache(s.o.DirCacheSize), split: newSplitter(ev, 65536)}
	if s.o.MarkType == "inode" {
		mask |= fanEventOnChild
	}
	var fallback []string
	for _, m := range s.o.Marks {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|markFlag, mask, unix.AT_FDCWD, m); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EXDEV) {
				fallback = append(fallback, m)
				continue
			}
			unix.Close(fd)
			return nil, nil, markError(err, m, s.o.MarkType, k)
		}
		if err := g.addMount(m); err != nil {
			g.close()
			return nil, nil, fmt.Errorf("source.fanotify.marks: %q: %w", m, err)
		}
	}
	if len(g.mounts) == 0 {
		g.close()
		return nil, fallback, nil
	}
	s.addIgnoreMarks(g, mask, k)
	return g, fallback, nil
}

func (s *Source) newDescriptorGroup(ev eventSet, marks []string, k kernel) (*group, error) {
	flags := uint(unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK)
	if s.o.Queue == "unlimited" {
		flags |= unix.FAN_UNLIMITED_QUEUE
	}
	fd, err := unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC|unix.O_NOATIME)
	if err != nil {
		return nil, initError(err, k, "a descriptor group")
	}
	g := &group{fd: fd, cache: newDirCache(1), split: newSplitter(ev, 65536), lnkBuf: make([]byte, unix.PathMax)}
	mask := ev.kernelMask(true) &^ fanOnDir
	for _, m := range marks {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, mask, unix.AT_FDCWD, m); err != nil {
			unix.Close(fd)
			return nil, markError(err, m, "mount", k)
		}
	}
	s.addIgnoreMarks(g, mask, k)
	return g, nil
}

func markError(err error, path, markType string, k kernel) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("source.fanotify.marks: %q does not exist: create it or remove it from the list", path)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("fanotify_mark %s %q: %w: Linux %s rejects this mark and event mask; check mark_type and source.events (mount marks cannot carry create/delete/rename/attrib)", markType, path, err, k.release)
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("fanotify_mark %q: %w: too many marks (fs.fanotify.max_user_marks)", path, err)
	}
	return fmt.Errorf("fanotify_mark %s %q: %w", markType, path, err)
}

// addMount opens a descriptor on the filesystem of path and files it
// under the filesystem's fsid, which is what FID records carry.
func (g *group) addMount(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	var b [8]byte
	binary.NativeEndian.PutUint32(b[0:4], uint32(st.Fsid.Val[0]))
	binary.NativeEndian.PutUint32(b[4:8], uint32(st.Fsid.Val[1]))
	fsid := binary.NativeEndian.Uint64(b[:])
	if _, ok := g.mounts[fsid]; ok {
		return nil
	}
	// Not O_PATH: open_by_handle_at rejects an O_PATH mount descriptor (EBADF).
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	g.mounts[fsid] = fd
	return nil
}

// addIgnoreMarks puts in-kernel ignore marks (FAN_MARK_IGNORE, Linux 6.0)
// on each ignored path: a directory and its existing subdirectories (an
// ignore mark on a directory covers only its direct children), or a file.
// Failures are warnings: the read loop's prefix check still drops the events.
func (s *Source) addIgnoreMarks(g *group, mask uint64, k kernel) {
	if len(s.ignores) == 0 {
		return
	}
	if !k.atLeast(6, 0) {
		s.log.Warn("fanotify: in-kernel ignore marks need Linux 6.0 (FAN_MARK_IGNORE); the agent's own paths are filtered in the read loop instead", "kernel", k.release)
		return
	}
	evMask := mask &^ (fanOnDir | fanEventOnChild)
	const maxDirs = 4096
	dirs := 0
	for _, p := range s.ignores {
		fi, err := os.Stat(p)
		if err != nil {
			s.log.Debug("fanotify: ignore path does not exist yet; filtered in the read loop", "path", p)
			continue
		}
		if !fi.IsDir() {
			// Directory-entry events (create, delete, rename) are invalid
			// on a file's mark (ENOTDIR); the parent's entry events are not
			// ignored, but the file's own are.
			fileMask := evMask &^ (fanCreate | fanDelete | fanRename | fanMovedFrom | fanMovedTo)
			if err := unix.FanotifyMark(g.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV, fileMask, unix.AT_FDCWD, p); err != nil {
				s.log.Warn("fanotify: ignore mark failed; filtered in the read loop", "path", p, "err", err)
			}
			continue
		}
		_ = filepath.WalkDir(p, func(d string, de fs.DirEntry, err error) error {
			if err != nil || !de.IsDir() {
				return nil
			}
			if dirs >= maxDirs {
				return filepath.SkipAll
			}
			dirs++
			if err := unix.FanotifyMark(g.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV, evMask|fanOnDir|fanEventOnChild, unix.AT_FDCWD, d); err != nil {
				s.log.Warn("fanotify: ignore mark failed; filtered in the read loop", "path", d, "err", err)
			}
			return nil
		})
	}
}

func (g *group) close() {
	for _, fd := range g.mounts {
		unix.Close(fd)
	}
	g.mounts = nil
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
}

// Close releases the groups of a Source whose Run was never called. Run
// releases them itself when it returns.
func (s *Source) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed || s.started.Load() {
		return nil
	}
	s.closed = true
	for _, g := range s.groups {
		g.close()
	}
	return nil
}

// Name returns "fanotify".
func (s *Source) Name() string { return "fanotify" }

// Stats returns the read loops' counters.
func (s *Source) Stats() Stats {
	return Stats{
		Reads: s.reads.Load(), Records: s.records.Load(), Events: s.events.Load(),
		Overflows: s.overflows.Load(), SelfDropped: s.selfDropped.Load(), Ignored: s.ignored.Load(),
		Unresolved: s.unresolved.Load(), Malformed: s.malformed.Load(), Nameless: s.nameless.Load(),
		MaxWork: time.Duration(s.maxWork.Load()),
	}
}

// Run reads every group until ctx is done, pushing events to out. It returns
// nil on cancellation and an error if a group can no longer be read. It may
// be called once.
func (s *Source) Run(ctx context.Context, out *capture.Ring, drops *capture.Drops) error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return errors.New("fanotify: source is closed")
	}
	if !s.started.CompareAndSwap(false, true) {
		s.closeMu.Unlock()
		return errors.New("fanotify: Run called twice")
	}
	s.closeMu.Unlock()

	// The read loops wait in poll(2) on their group and on this eventfd,
	// which cancellation (or the first loop to fail) makes readable.
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		for _, g := range s.groups {
			g.close()
		}
		return fmt.Errorf("fanotify: eventfd: %w", err)
	}
	signal := func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1) // eventfd counters are in host byte order
		unix.Write(wake, one[:])
	}
	errs := make(chan error, len(s.groups))
	for _, g := range s.groups {
		go func() { errs <- s.loop(ctx, g, wake, out, drops) }()
	}
	stop := context.AfterFunc(ctx, signal)
	var first error
	for range s.groups {
		if err := <-errs; err != nil && first == nil {
			first = err
			signal() // stop the other loops too
		}
	}
	stop()
	for _, g := range s.groups {
		g.close()
	}
	unix.Close(wake)
	return first
}

// loop reads one group until wake becomes readable.
//
// It does not use the Go runtime's poller. The poller registers a
// descriptor with epoll for its whole life, so the kernel would run epoll's
// wakeup callback inside the workload's own syscall for every event it
// queues, even while this loop is busy or asleep. Waiting in poll(2) only
// when the queue is empty puts a waiter on the group just while nobody
// reads it. In a raw-reader experiment on BenchmarkCaptureOverhead's
// workload (100k files), the workload's CPU was 1.21–1.54× of baseline
// with an epoll-registered reader against 1.02× with this one, both
// pausing 1 ms after small reads (docs/linux.md, Overhead).
func (s *Source) loop(ctx context.Context, g *group, wake int, out *capture.Ring, drops *capture.Drops) error {
	buf := make([]byte, s.o.ReadBuffer)
	fds := []unix.PollFd{{Fd: int32(g.fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	var ev schema.Event
	for {
		n, err := unix.Read(g.fd, buf)
		if errors.Is(err, unix.EAGAIN) || (err == nil && n == 0) {
			// Nothing queued: wait for the kernel or for cancellation.
			fds[0].Revents, fds[1].Revents = 0, 0
			if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll fanotify: %w", err)
			}
			if fds[1].Revents != 0 || ctx.Err() != nil {
				return nil
			}
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read fanotify: %w", err)
		}
		t := time.Now()
		s.reads.Add(1)
		if s.onRead != nil {
			s.onRead(t, buf[:n])
		}
		s.process(g, buf[:n], t.UnixNano(), &ev, out, drops)
		if w := int64(time.Since(t)); w > s.maxWork.Load() {
			s.maxWork.Store(w)
		}
		if ctx.Err() != nil {
			return nil
		}
		if s.o.BatchDelay > 0 && n < len(buf)/16 {
			// A small read: let the kernel gather a batch before the next
			// wakeup. A busy host fills the buffer and never sleeps here;
			// the kernel queue (16384 events) absorbs far more than one
			// delay's worth of events.
			time.Sleep(s.o.BatchDelay)
		}
	}
}

// process decodes one read's buffer and pushes its events.
func (s *Source) process(g *group, b []byte, now int64, ev *schema.Event, out *capture.Ring, drops *capture.Drops) {
	var steps [maxSteps]step
	var records, events, selfDropped, ignored, unresolved, malformed, nameless uint64
	for len(b) > 0 {
		r, n, err := decode(b)
		if err != nil {
			malformed++
			drops.Add(schema.LossMalformed, 1)
			if n == 0 {
				break
			}
			b = b[n:]
			continue
		}
		b = b[n:]
		records++
		if r.mask&fanQOverflow != 0 {
			// The kernel queued more than it could hold and says only that
			// something was lost, not how much: count one per overflow record.
			s.overflows.Add(1)
			drops.Add(schema.LossKernelOverflow, 1)
			if r.fd >= 0 {
				unix.Close(int(r.fd))
			}
			continue
		}
		var path, orig string
		var key []byte
		truncated := false
		if !g.fid {
			if r.fd < 0 {
				continue
			}
			path = g.fdPath(int(r.fd))
			unix.Close(int(r.fd))
			if path == "" {
				unresolved++
			}
		}
		if s.o.SelfPID != 0 && int(r.pid) == s.o.SelfPID {
			selfDropped++
			continue
		}
		if g.fid {
			var ok bool
			if r.mask&fanRename != 0 && r.oldDir.ok() && r.newDir.ok() {
				orig, ok = g.resolve(r.oldDir, r.oldName)
				var ok2 bool
				path, ok2 = g.resolve(r.newDir, r.newName)
				ok = ok && ok2
			} else if r.dir.ok() {
				path, ok = g.resolve(r.dir, r.name)
			} else {
				// An event on an inode with no name: the link-count change
				// (FAN_ATTRIB) of every link and unlink, reported on the
				// inode alone. The link or unlink's own entry event already
				// says what happened, so drop it without a syscall.
				nameless++
				continue
			}
			if !ok {
				unresolved++
				truncated = true
			}
			if r.mask&fanOnDir != 0 && r.mask&(fanRename|fanMovedFrom|fanDelete) != 0 {
				// A directory moved or went away: forget its handle and every
				// cached path under its old name.
				old := path
				if r.mask&fanRename != 0 {
					old = orig
				}
				g.cache.invalidatePrefix(old)
				if r.obj.ok() {
					g.cache.remove(r.obj.key)
				}
			}
			if ok && r.obj.ok() && r.mask&fanOnDir != 0 && r.mask&(fanCreate|fanRename|fanMovedTo) != 0 && r.mask&fanDelete == 0 {
				// Learn a new or moved directory's handle from the event
				// itself, so events under it resolve even if it is renamed
				// or removed before they are read.
				g.cache.put(r.obj.key, path, true)
			}
			key = r.obj.key
			if key == nil {
				key = r.dir.key
			}
		}
		if s.isIgnored(path) || (orig != "" && s.isIgnored(orig)) {
			ignored++
			continue
		}
		if s.o.HostRoot != "" {
			path = capture.StripHostRoot(s.o.HostRoot, path)
			orig = capture.StripHostRoot(s.o.HostRoot, orig)
		}
		var mk uint64
		if r.mask&(fanModify|fanCloseWrite) != 0 {
			if g.fid {
				mk = modKey(r.pid, key, nil)
				if r.obj.key == nil {
					mk = modKey(r.pid, key, r.name)
				}
			} else {
				mk = modKey(r.pid, nil, []byte(path))
			}
		}
		if r.pid == g.execPID && r.mask&fanOpenExec == 0 && r.mask&^(fanAccess|fanOnDir) != 0 {
			// The pid did something else after its execve: a later exec
			// record is a new program, not an interpreter of the last.
			g.execPID = 0
		}
		k := g.split.split(r.mask, mk, &steps)
		for i := 0; i < k; i++ {
			*ev = schema.Event{
				TimeNS:        now,
				CreatedNS:     now,
				Action:        steps[i].action,
				Provider:      schema.ProviderFanotify,
				Access:        steps[i].access,
				Seq:           g.seq,
				Stream:        g.stream,
				Path:          path,
				PathTruncated: truncated,
				Process:       schema.Process{PID: r.pid},
			}
			if steps[i].action == schema.ActionExec && !truncated {
				// FAN_OPEN_EXEC comes while execve(2) runs, before /proc
				// shows the new image. The first exec record of a pid names
				// the program; exec records that follow it from that pid
				// with nothing else between (the ELF interpreter, a
				// script's interpreter) belong to the same execve, whose
				// program is still the first. For a script that is the
				// script's path, where /proc/<pid>/exe shows the
				// interpreter.
				if r.pid != g.execPID || now-g.execAt > int64(execBurst) {
					g.execPID, g.execPath = r.pid, path
				}
				g.execAt = now
				ev.Process.Executable = g.execPath
			}
			if steps[i].action == schema.ActionRename {
				ev.OrigPath = orig
				if r.mask&fanMovedFrom != 0 && r.mask&fanRename == 0 {
					// Unpaired old half of a rename (kernels before 5.17):
					// the old path is all there is.
					ev.OrigPath = path
				}
			}
			g.seq++
			events++
			out.TryPush(ev)
		}
	}
	s.records.Add(records)
	s.events.Add(events)
	if selfDropped > 0 {
		s.selfDropped.Add(selfDropped)
	}
	if ignored > 0 {
		s.ignored.Add(ignored)
	}
	if unresolved > 0 {
		s.unresolved.Add(unresolved)
	}
	if malformed > 0 {
		s.malformed.Add(malformed)
	}
	if nameless > 0 {
		s.nameless.Add(nameless)
	}
}

func (s *Source) isIgnored(p string) bool {
	for _, ig := range s.ignores {
		if underPath(p, ig) {
			return true
		}
	}
	return false
}

// resolve turns a directory identifier and an entry name into a path. On a
// cache miss it opens the handle (open_by_handle_at, O_PATH) and reads the
// descriptor's link in /proc/self/fd. When the directory cannot be opened any
// more it returns the bare name and false.
func (g *group) resolve(dir fidRef, name []byte) (string, bool) {
	p, ok, found := g.cache.get(dir.key)
	if !found {
		var final bool
		p, ok, final = g.openDir(dir)
		if ok || final {
			g.cache.put(dir.key, p, ok)
		}
	}
	if !ok {
		return string(name), false
	}
	return joinPath(p, name), true
}

// final reports a failure that cannot change (the handle is stale: the
// directory is gone), which the caller may cache.
func (g *group) openDir(dir fidRef) (path string, ok, final bool) {
	mfd, have := g.mounts[dir.fsid]
	if !have {
		return "", false, true
	}
	h := unix.NewFileHandle(dir.htype, dir.handle)
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", false, errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT)
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !strings.HasPrefix(p, "/") {
		return "", false, false
	}
	if strings.HasSuffix(p, " (deleted)") {
		return "", false, true
	}
	return p, true, false
}

// fdPath reads the path of an event descriptor (descriptor groups).
func (g *group) fdPath(fd int) string {
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), g.lnkBuf)
	if err != nil || n <= 0 {
		return ""
	}
	p := string(g.lnkBuf[:n])
	p, _ = strings.CutSuffix(p, " (deleted)")
	return p
}
