//go:build linux

package procfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

// Options configures a Cache.
type Options struct {
	// Size bounds the number of cached processes (each holds one pidfd).
	// Default 4096.
	Size int
	// Args fills process.args from /proc/<pid>/cmdline.
	Args bool
	// HostID goes into process.entity_id so ids differ across hosts.
	HostID string
	// TTL is how long an entry's executable, ids and args are trusted before
	// they are read again (a process may exec or change its ids without an
	// event we see). Default 2s. An exec event always refreshes.
	TTL time.Duration
	// HostRoot is source.fanotify.host_root: stripped from executable
	// paths read from /proc, as the fanotify source strips it from file
	// paths. "" leaves paths alone.
	HostRoot string
	// Logger receives debug messages. nil discards.
	Logger *slog.Logger
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat start times. It is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// Cache enriches events with process fields. It is safe for concurrent use.
type Cache struct {
	o   Options
	log *slog.Logger

	mu         sync.Mutex
	m          map[int32]*entry
	gone       map[int32]int64 // pid → wall time it was found free
	execs      map[int32]execSeen
	head, tail *entry
	users      map[uint32]string
	groups     map[uint32]string
	buf        []byte
	pfd        [1]unix.PollFd
	offset     int64
	offsetAt   time.Time
}

type entry struct {
	pid        int32
	startTicks uint64
	pidfd      int
	loaded     time.Time
	checkedNS  int64 // wall time the process was last known alive
	p          schema.Process
	prev, next *entry
}

// New returns an empty cache.
func New(o Options) *Cache {
	if o.Size <= 0 {
		o.Size = 4096
	}
	if o.TTL <= 0 {
		o.TTL = 2 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{o: o, log: log, m: make(map[int32]*entry), gone: make(map[int32]int64), execs: make(map[int32]execSeen), users: make(map[uint32]string), groups: make(map[uint32]string), buf: make([]byte, 64<<10)}
}

// Close releases every pidfd the cache holds. The cache stays usable.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.head; e != nil; e = e.next {
		unix.Close(e.pidfd)
	}
	c.m = make(map[int32]*entry)
	c.head, c.tail = nil, nil
}

// Len is the number of cached processes.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Enrich fills ev.Process from the process ev.Process.PID, if that process is
// still the one that caused the event. It returns false, leaving the pid and
// nothing else, when the process is gone or the pid now belongs to a process
// that started after the event (ev.TimeNS, a wall-clock time; 0 skips that
// check). The caller counts false as process_unresolved.
//
// For an exec event whose source already set ev.Process.Executable to the
// new image (fanotify's FAN_OPEN_EXEC names the file being executed, and it
// arrives while execve(2) is still running), that executable is kept: /proc
// may still show the image before the exec. The other fields come from /proc.
//
// A process that is gone by the time its event is enriched (a short-lived
// command) gets the executable of the exec event Enrich last saw for its pid,
// if that exec came before the event and at most execMemory earlier; its
// other fields stay empty.
func (c *Cache) Enrich(ev *schema.Event) bool {
	pid := ev.Process.PID
	if pid <= 0 {
		return false
	}
	var image string
	if ev.Action == schema.ActionExec {
		image = ev.Process.Executable
		if image != "" {
			// Outside the lock: let execve(2) finish, so /proc shows the new
			// image's arguments (see awaitExec).
			awaitExec(pid, image)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if image != "" && ev.TimeNS != 0 {
		if len(c.execs) >= c.o.Size {
			clear(c.execs)
		}
		c.execs[pid] = execSeen{image: image, atNS: ev.TimeNS}
	}
	if c.enrich(ev, image) {
		if ev.Action == schema.ActionExec {
			c.parent(ev)
		}
		return true
	}
	if x, ok := c.execs[pid]; ok && ev.TimeNS != 0 && ev.TimeNS >= x.atNS && ev.TimeNS-x.atNS <= int64(execMemory) {
		ev.Process.Executable = x.image
		ev.Process.Name = filepath.Base(x.image)
		return true
	}
	return false
}

// execMemory is how long after an exec event its image may name a process
// that has exited (a pid is seldom reused that soon).
const execMemory = 5 * time.Second

// execSeen is the image and time of the last exec event of a pid.
type execSeen struct {
	image string
	atNS  int64
}

// enrich is Enrich from /proc alone; c.mu is held.
func (c *Cache) enrich(ev *schema.Event, image string) bool {
	pid := ev.Process.PID
	now := time.Now()
	evBoot := int64(0)
	if ev.TimeNS != 0 {
		evBoot = ev.TimeNS - c.bootOffset(now)
	}
	if e := c.m[pid]; e != nil {
		// A process seen alive at checkedNS held its pid from its start
		// until then, so an event up to that time is its own: skip the
		// liveness syscall for it.
		if ev.TimeNS == 0 || ev.TimeNS > e.checkedNS {
			if c.alive(e) {
				e.checkedNS = now.UnixNano()
			} else {
				c.drop(e)
				e = nil
			}
		}
		if e != nil {
			if evBoot != 0 && startBootNS(e.startTicks) > evBoot {
				return false // this process started after the event: the pid was reused
			}
			if ev.Action == schema.ActionExec || now.Sub(e.loaded) > c.o.TTL {
				if err := c.load(e); err != nil {
					c.drop(e)
					return false
				}
				e.loaded = now
			}
			c.moveFront(e)
			c.fill(ev, e, image)
			return true
		}
	}
	// A pid found free at goneNS was free or held by an exited process at
	// any earlier time, so events up to then cannot be resolved: answer
	// without a syscall (the bulk of a backlog from a finished process).
	if g, ok := c.gone[pid]; ok && ev.TimeNS != 0 && ev.TimeNS <= g {
		return false
	}
	st, err := c.readStat(pid)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		c.markGone(pid, now)
		return false // gone, or exited and not yet reaped
	}
	delete(c.gone, pid)
	if evBoot != 0 && startBootNS(st.startTicks) > evBoot {
		return false
	}
	pidfd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return false
	}
	// The pidfd may name a newer process if the pid was reused between the
	// stat read and pidfd_open: read the start time again through it.
	st2, err := c.readStat(pid)
	if err != nil || st2.startTicks != st.startTicks {
		unix.Close(pidfd)
		return false
	}
	e := &entry{pid: pid, startTicks: st.startTicks, pidfd: pidfd, loaded: now, checkedNS: now.UnixNano()}
	e.p.PPID = st.ppid
	e.p.Name = st.comm
	if err := c.load(e); err != nil {
		unix.Close(pidfd)
		return false
	}
	c.insert(e)
	c.fill(ev, e, image)
	return true
}

func (c *Cache) markGone(pid int32, now time.Time) {
	if len(c.gone) >= c.o.Size {
		clear(c.gone)
	}
	c.gone[pid] = now.UnixNano()
}

// fill copies e's process into ev. image, when set, is the executable an
// exec event names: if /proc does not show it yet, the exec is still
// running, so the event and e take image (with its base name, and no args,
// which would be the old image's), and e is marked to be read again by the
// next event of its pid.
func (c *Cache) fill(ev *schema.Event, e *entry, image string) {
	keep := ev.Process
	ev.Process = e.p
	ev.Process.PID = keep.PID
	ev.Process.PIDVersion = keep.PIDVersion
	if image != "" && e.p.Executable != image {
		ev.Process.Executable = image
		ev.Process.Name = filepath.Base(image)
		ev.Process.Args = nil
		// The entry takes the new image too: if the process exits before
		// the next event re-reads /proc (a zombie has no exe link, and load
		// keeps what it has), that event still gets the new executable.
		e.p.Executable, e.p.Name, e.p.Args = image, filepath.Base(image), nil
		e.loaded = time.Time{}
	}
}

// alive reports whether e's process has not exited (its pidfd is not readable).
func (c *Cache) alive(e *entry) bool {
	c.pfd[0] = unix.PollFd{Fd: int32(e.pidfd), Events: unix.POLLIN}
	n, err := unix.Poll(c.pfd[:], 0)
	if err != nil {
		return false
	}
	return n == 0
}

type stat struct {
	comm       string
	state      byte
	ppid       int32
	startTicks uint64
}

// readStat parses /proc/<pid>/stat: comm (field 2), ppid (4), starttime (22).
func (c *Cache) readStat(pid int32) (stat, error) {
	b, err := c.readFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (stat, error) {
	var st stat
	lp := bytes.IndexByte(b, '(')
	rp := bytes.LastIndexByte(b, ')')
	if lp < 0 || rp < lp {
		return st, errors.New("procfs: malformed stat")
	}
	st.comm = string(b[lp+1 : rp])
	fields := bytes.Fields(b[rp+1:])
	// fields[0] is field 3 (state); field N is fields[N-3].
	if len(fields) < 20 {
		return st, errors.New("procfs: short stat")
	}
	ppid, err := strconv.ParseInt(string(fields[1]), 10, 32)
	if err != nil {
		return st, fmt.Errorf("procfs: ppid: %w", err)
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return st, fmt.Errorf("procfs: starttime: %w", err)
	}
	st.ppid, st.startTicks = int32(ppid), start
	st.state = fields[0][0]
	return st, nil
}

// load reads the executable, ids and args of e's process.
func (c *Cache) load(e *entry) error {
	dir := "/proc/" + strconv.Itoa(int(e.pid))
	exe, err := os.Readlink(dir + "/exe")
	if err == nil {
		exe, _ = strings.CutSuffix(exe, " (deleted)")
		exe = capture.StripHostRoot(c.o.HostRoot, exe)
		e.p.Executable = exe
		e.p.Name = filepath.Base(exe)
	} else if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		if _, serr := os.Stat(dir); serr != nil {
			return err
		}
		// A kernel thread has no exe; keep comm as the name.
	}
	b, err := c.readFile(dir + "/status")
	if err != nil {
		return err
	}
	if ruid, euid, ok := idLine(b, "Uid:"); ok {
		e.p.HasUser = true
		e.p.RUID, e.p.UID = ruid, euid
		e.p.UserName = c.userName(euid)
	}
	eff, ok1 := capLine(b, "CapEff:")
	prm, ok2 := capLine(b, "CapPrm:")
	e.p.CapEff, e.p.CapPrm, e.p.HasCaps = eff, prm, ok1 && ok2
	if _, egid, ok := idLine(b, "Gid:"); ok {
		e.p.GID = egid
		e.p.GroupName = c.groupName(egid)
	}
	if c.o.Args {
		if b, err := c.readFile(dir + "/cmdline"); err == nil {
			e.p.Args = splitArgs(b)
		}
	}
	st := startBootNS(e.startTicks) + c.bootOffset(time.Now())
	e.p.StartNS = st
	e.p.EntityID = entityID(c.o.HostID, e.pid, e.startTicks)
	if ppid, ok := statusInt(b, "PPid:"); ok {
		e.p.PPID = int32(ppid)
	}
	return nil
}

// readFile reads a small /proc file into the cache's buffer; the result
// aliases it until the next call.
func (c *Cache) readFile(name string) ([]byte, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(c.buf) {
		m, err := unix.Read(fd, c.buf[n:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return c.buf[:n], nil
}

// statusLine is the value of the line of /proc/<pid>/status that starts
// with key ("Uid:"), without its newline: false when there is none.
func statusLine(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte("\n"+key))
	if i < 0 {
		return nil, false
	}
	line := b[i+1+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return line, true
}

func idLine(b []byte, key string) (real, eff uint32, ok bool) {
	line, ok := statusLine(b, key)
	if !ok {
		return 0, 0, false
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, 0, false
	}
	r, err1 := strconv.ParseUint(string(f[0]), 10, 32)
	e, err2 := strconv.ParseUint(string(f[1]), 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(r), uint32(e), true
}

// capLine parses a capability set line of /proc/<pid>/status (hex).
func capLine(b []byte, key string) (uint64, bool) {
	line, ok := statusLine(b, key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 64)
	return v, err == nil
}

func statusInt(b []byte, key string) (int64, bool) {
	line, ok := statusLine(b, key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 10, 64)
	return v, err == nil
}

func splitArgs(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// groupName resolves a gid through os/user (the group file), cached.
func (c *Cache) groupName(gid uint32) string {
	return cachedName(c.groups, gid, func(id string) string {
		if g, err := user.LookupGroupId(id); err == nil {
			return g.Name
		}
		return ""
	})
}

// userName resolves a uid through os/user (the passwd file), cached.
func (c *Cache) userName(uid uint32) string {
	return cachedName(c.users, uid, func(id string) string {
		if u, err := user.LookupId(id); err == nil {
			return u.Username
		}
		return ""
	})
}

// cachedName is names[id], else lookup's name for id in decimal ("" when
// unknown), which it keeps in names; names is emptied when it holds 1,024.
func cachedName(names map[uint32]string, id uint32, lookup func(id string) string) string {
	if n, ok := names[id]; ok {
		return n
	}
	name := lookup(strconv.FormatUint(uint64(id), 10))
	if len(names) >= 1024 {
		clear(names)
	}
	names[id] = name
	return name
}

// execWait bounds how long awaitExec waits for an execve(2) to finish, and
// execPoll is its polling step. An exec event is read while the kernel is
// still inside execve(2) (FAN_OPEN_EXEC comes when the image is opened);
// the switch to the new image follows within a millisecond unless the
// machine is overloaded, and the wait ends as soon as it has happened. The
// bound is for an overloaded machine (seen at a load of 20 on 2 cores: 20 ms
// was too short and the start event lost its parent and arguments); it
// costs the pipeline, never capture, and only while the kernel is slow.
const (
	execWait = 100 * time.Millisecond
	execPoll = 100 * time.Microsecond
)

// awaitExec waits, at most execWait, until execve(2) of image by pid has
// got far enough for /proc to show the new image's arguments: the comm is
// the one execve gives the new image (the base name of the executed path,
// cut to 15 bytes), and /proc/<pid>/cmdline is not empty (the new memory
// map has no arguments until the loader has copied them, after the comm
// changed). It runs in the pipeline, never in the capture path, and gives
// up early when the process is gone.
func awaitExec(pid int32, image string) {
	want := filepath.Base(image)
	if len(want) > 15 {
		want = want[:15]
	}
	dir := "/proc/" + strconv.Itoa(int(pid))
	var buf [512]byte
	read := func(name string) ([]byte, bool) {
		fd, err := unix.Open(dir+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, false
		}
		n, err := unix.Read(fd, buf[:])
		unix.Close(fd)
		if err != nil || n < 0 {
			return nil, false
		}
		return buf[:n], true
	}
	deadline := time.Now().Add(execWait)
	for {
		b, ok := read("/stat")
		if !ok {
			return
		}
		lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if lp < 0 || rp < lp {
			return
		}
		if string(b[lp+1:rp]) == want {
			if a, ok := read("/cmdline"); !ok || len(a) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(execPoll)
	}
}

// parent fills ev.Process.Parent from /proc/<ppid>: its executable, name,
// start time and entity id (computed exactly as the parent's own events
// get it), and its arguments when Options.Args. A parent that is gone or
// unreadable leaves only the pid. c.mu is held.
func (c *Cache) parent(ev *schema.Event) {
	ppid := ev.Process.PPID
	if ppid <= 0 {
		return
	}
	st, err := c.readStat(ppid)
	if err != nil {
		return
	}
	pp := &ev.Process.Parent
	pp.Name = st.comm
	pp.EntityID = entityID(c.o.HostID, ppid, st.startTicks)
	pp.StartNS = startBootNS(st.startTicks) + c.bootOffset(time.Now())
	dir := "/proc/" + strconv.Itoa(int(ppid))
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		exe, _ = strings.CutSuffix(exe, " (deleted)")
		exe = capture.StripHostRoot(c.o.HostRoot, exe)
		pp.Executable = exe
		pp.Name = filepath.Base(exe)
	}
	if c.o.Args {
		if b, err := c.readFile(dir + "/cmdline"); err == nil {
			pp.Args = splitArgs(b)
		}
	}
	// The pid may have been reused while we read: keep the fields only if
	// the start time is unchanged.
	if st2, err := c.readStat(ppid); err != nil || st2.startTicks != st.startTicks {
		*pp = schema.Parent{}
	}
}

// entityID is stable for one process instance: host, pid and start time.
func entityID(host string, pid int32, startTicks uint64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d", host, pid, startTicks)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

func startBootNS(ticks uint64) int64 { return int64(ticks) * (1e9 / clockTicks) }

// bootOffset is wall-clock time minus CLOCK_BOOTTIME, which converts
// between event times (wall clock) and process start times (boot clock). It
// changes only when the wall clock is stepped, so it is read at most once a
// second (clock_gettime(CLOCK_BOOTTIME) is a real syscall from Go).
func (c *Cache) bootOffset(now time.Time) int64 {
	if c.offsetAt.IsZero() || now.Sub(c.offsetAt) > time.Second || now.Before(c.offsetAt) {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err == nil {
			c.offset = time.Now().UnixNano() - ts.Nano()
			c.offsetAt = now
		}
	}
	return c.offset
}

func (c *Cache) insert(e *entry) {
	if len(c.m) >= c.o.Size {
		c.drop(c.tail)
	}
	c.m[e.pid] = e
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Cache) drop(e *entry) {
	if e == nil {
		return
	}
	unix.Close(e.pidfd)
	delete(c.m, e.pid)
	c.unlink(e)
}

func (c *Cache) moveFront(e *entry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	e.next = c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Cache) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if c.head == e {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if c.tail == e {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
