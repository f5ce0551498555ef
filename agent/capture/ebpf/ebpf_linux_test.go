//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ebpf capture needs root (CI runs as root)")
	}
}

type collector struct {
	mu  sync.Mutex
	evs []schema.Event
}

func (c *collector) snapshot() []schema.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]schema.Event(nil), c.evs...)
}

type running struct {
	src   *Source
	drops *capture.Drops
	col   *collector
	stop  func() error
}

// start runs a Source and drains its ring into col, until stop (or the
// test's end) cancels Run and the ring is empty.
func start(t testing.TB, o Options) *running {
	t.Helper()
	if o.RingBytes == 0 {
		// The source sees the whole machine, and go test runs other
		// packages' tests (fanotify floods among them) beside these, under
		// -race: a ring 8 times the default absorbs their bursts.
		o.RingBytes = 64 << 20
	}
	src, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	drops := &capture.Drops{}
	ring := capture.NewRing(1<<16, drops)
	ctx, cancel := context.WithCancel(context.Background())
	col := &collector{}
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx, ring, drops) }()
	drainCtx, stopDrain := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ev schema.Event
		// Keep what the tests look at: paths under the temporary directory
		// (every test works in one) and anything of this process. The
		// source sees the whole machine; kept whole, other packages' tests
		// running beside these filled the collector, and each waitFor scan
		// of it under the lock held this drain back until the ring between
		// source and collector dropped events (ring_full).
		tmp, self := os.TempDir()+"/", int32(os.Getpid())
		for ring.Pop(drainCtx, &ev) {
			if !strings.HasPrefix(ev.Path, tmp) && !strings.HasPrefix(ev.OrigPath, tmp) && ev.Process.PID != self {
				continue
			}
			col.mu.Lock()
			col.evs = append(col.evs, ev)
			col.mu.Unlock()
		}
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-runErr:
			// Run detaches the programs, then reads what is left in the
			// ring buffer (64 MiB here) and the aggregation map: under -race
			// beside other jobs that took over 10 s once. A deadline, not a
			// timing: a hang still fails.
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("Run did not return 60s after cancel")
			}
			for ring.Len() > 0 {
				time.Sleep(time.Millisecond)
			}
			stopDrain()
			wg.Wait()
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{src: src, drops: drops, col: col, stop: stop}
}

func (r *running) waitFor(d time.Duration, ok func([]schema.Event) bool) ([]schema.Event, bool) {
	deadline := time.Now().Add(d)
	for {
		evs := r.col.snapshot()
		if ok(evs) {
			return evs, true
		}
		if time.Now().After(deadline) {
			return evs, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func under(evs []schema.Event, dir string) []schema.Event {
	var out []schema.Event
	for _, e := range evs {
		if strings.HasPrefix(e.Path, dir+"/") || strings.HasPrefix(e.OrigPath, dir+"/") {
			out = append(out, e)
		}
	}
	return out
}

func dump(evs []schema.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-24s pid=%-7d ppid=%-7d uid=%-5d count=%-5d exe=%s %s", e.Action, e.Process.PID, e.Process.PPID, e.Process.UID, e.Count, e.Process.Executable, e.Path)
		if e.OrigPath != "" {
			fmt.Fprintf(&b, " (from %s)", e.OrigPath)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type want struct {
	action schema.Action
	path   string
	orig   string
	pid    int
	exe    string
}

// TestFileOperations performs each operation of the fanotify end-to-end test
// (agent/capture/fanotify TestFileOperations) in a tmpfs, plus a copied cat
// that lives about a millisecond as another user, and checks that each
// arrives with the right action, path, original path, pid and executable,
// and the cat with its parent pid and uid, all read in the kernel.
func TestFileOperations(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "1g")
	r := start(t, Options{AggregateWindow: 100 * time.Millisecond})
	self := os.Getpid()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := func(parts ...string) string { return filepath.Join(append([]string{dir}, parts...)...) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var wants []want
	expect := func(a schema.Action, path, orig string) {
		wants = append(wants, want{action: a, path: path, orig: orig, pid: self, exe: exe})
	}
	sync := func() {
		t.Helper()
		w := wants[len(wants)-1]
		evs, ok := r.waitFor(60*time.Second, func(evs []schema.Event) bool {
			for _, e := range evs {
				if e.Action == w.action && e.Path == w.path && e.OrigPath == w.orig {
					return true
				}
			}
			return false
		})
		if !ok {
			t.Fatalf("no %v %s (orig %q) within 60s; got:\n%s", w.action, w.path, w.orig, dump(under(evs, dir)))
		}
	}
	must(os.WriteFile(p("a.txt"), []byte("hello"), 0o644))
	expect(schema.ActionCreation, p("a.txt"), "")
	expect(schema.ActionOpen, p("a.txt"), "")
	expect(schema.ActionModification, p("a.txt"), "")
	sync()
	_, err = os.ReadFile(p("a.txt"))
	must(err)
	expect(schema.ActionOpen, p("a.txt"), "")
	expect(schema.ActionClose, p("a.txt"), "")
	sync()
	must(os.Rename(p("a.txt"), p("b.txt")))
	expect(schema.ActionRename, p("b.txt"), p("a.txt"))
	sync()
	must(os.Mkdir(p("sub"), 0o755))
	expect(schema.ActionCreation, p("sub"), "")
	sync()
	must(os.Rename(p("b.txt"), p("sub", "c.txt")))
	expect(schema.ActionRename, p("sub", "c.txt"), p("b.txt"))
	sync()
	must(os.Chmod(p("sub", "c.txt"), 0o600))
	expect(schema.ActionAttributesModification, p("sub", "c.txt"), "")
	sync()
	must(os.Chown(p("sub", "c.txt"), 1234, 1234))
	expect(schema.ActionAttributesModification, p("sub", "c.txt"), "")
	sync()
	// A link is a creation (schema.ActionLink encodes as "creation", as
	// fanotify reports it), with the existing name as the original path.
	must(os.Link(p("sub", "c.txt"), p("l.txt")))
	expect(schema.ActionLink, p("l.txt"), p("sub", "c.txt"))
	sync()
	must(os.Remove(p("l.txt")))
	expect(schema.ActionDeletion, p("l.txt"), "")
	sync()
	must(os.Rename(p("sub"), p("sub2")))
	expect(schema.ActionRename, p("sub2"), p("sub"))
	sync()
	must(os.Remove(p("sub2", "c.txt")))
	expect(schema.ActionDeletion, p("sub2", "c.txt"), "")
	sync()
	must(os.Remove(p("sub2")))
	expect(schema.ActionDeletion, p("sub2"), "")
	sync()

	// exec of a copied binary.
	must(os.Mkdir(p("bin"), 0o755))
	copyBin := func(name, to string) string {
		t.Helper()
		src, err := exec.LookPath(name)
		must(err)
		b, err := os.ReadFile(src)
		must(err)
		must(os.WriteFile(to, b, 0o755))
		return to
	}
	copied := copyBin("sleep", p("bin", "mysleep"))
	cmd := exec.Command(copied, "5")
	must(cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	wants = append(wants, want{action: schema.ActionExec, path: copied, pid: cmd.Process.Pid, exe: copied})

	// A copied cat that reads one file and exits, as uid/gid 1234.
	must(os.WriteFile(p("note.txt"), []byte("note\n"), 0o644))
	cat := copyBin("cat", p("bin", "mycat"))
	c := exec.Command(cat, p("note.txt"))
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234}}
	must(c.Run())
	catPID := c.Process.Pid

	evs, ok := r.waitFor(60*time.Second, func(evs []schema.Event) bool {
		var sawExec, sawCat bool
		for _, e := range evs {
			sawExec = sawExec || (e.Action == schema.ActionExec && e.Path == copied)
			sawCat = sawCat || (e.Action == schema.ActionOpen && e.Path == p("note.txt") && int(e.Process.PID) == catPID)
		}
		return sawExec && sawCat
	})
	if !ok {
		t.Fatalf("no exec of %s or open by the cat; got:\n%s", copied, dump(under(evs, dir)))
	}

	i := 0
	for _, w := range wants {
		found := false
		for ; i < len(evs); i++ {
			e := evs[i]
			if e.Action == w.action && e.Path == w.path && e.OrigPath == w.orig {
				if int(e.Process.PID) != w.pid {
					t.Errorf("%v %s: pid %d, want %d", w.action, w.path, e.Process.PID, w.pid)
				}
				if e.Process.Executable != w.exe && !(w.exe == exe && e.Process.Executable == "") {
					t.Errorf("%v %s: executable %q, want %q", w.action, w.path, e.Process.Executable, w.exe)
				}
				if e.Provider != schema.ProviderEBPF {
					t.Errorf("%v %s: provider %v", w.action, w.path, e.Provider)
				}
				found = true
				i++
				break
			}
		}
		if !found {
			t.Errorf("missing (or out of order) %v %s (orig %q); got:\n%s", w.action, w.path, w.orig, dump(under(evs, dir)))
		}
	}

	// The cat: exec and open, with parent pid and uid read in the kernel
	// although the process was gone long before its events were read.
	var catExec, catOpen *schema.Event
	for i := range evs {
		e := &evs[i]
		if int(e.Process.PID) != catPID {
			continue
		}
		if e.Action == schema.ActionExec && e.Path == cat {
			catExec = e
		}
		if e.Action == schema.ActionOpen && e.Path == p("note.txt") {
			catOpen = e
		}
	}
	if catExec == nil || catOpen == nil {
		t.Fatalf("cat (pid %d): exec %v, open %v; got:\n%s", catPID, catExec != nil, catOpen != nil, dump(under(evs, dir)))
	}
	for _, e := range []*schema.Event{catExec, catOpen} {
		if int(e.Process.PPID) != self || e.Process.UID != 1234 || e.Process.RUID != 1234 || e.Process.GID != 1234 || !e.Process.HasUser {
			t.Errorf("cat %v: ppid %d uid %d ruid %d gid %d, want ppid %d and 1234", e.Action, e.Process.PPID, e.Process.UID, e.Process.RUID, e.Process.GID, self)
		}
		if e.Process.Executable != cat {
			t.Errorf("cat %v: executable %q, want %q", e.Action, e.Process.Executable, cat)
		}
		if e.Process.StartNS == 0 || e.Process.StartNS > e.TimeNS {
			t.Errorf("cat %v: start %d, event time %d", e.Action, e.Process.StartNS, e.TimeNS)
		}
	}
	if catOpen.Access != schema.AccessRead {
		t.Errorf("cat open: access %d, want read", catOpen.Access)
	}
}

// TestExactCounts opens and closes one file 10,000 times: the open
// documents' fileward.count sums to exactly 10,000, and so do the closes'.
func TestExactCounts(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "1g")
	f := filepath.Join(dir, "hot.txt")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, Options{AggregateWindow: 100 * time.Millisecond, targetPID: os.Getpid(), Events: []string{"open", "close"}})
	const n = 10000
	for i := 0; i < n; i++ {
		fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	sum := func(evs []schema.Event, a schema.Action) (total uint64, docs int) {
		for _, e := range evs {
			if e.Action == a && e.Path == f {
				docs++
				total += uint64(max(e.Count, 1))
			}
		}
		return total, docs
	}
	_, ok := r.waitFor(15*time.Second, func(evs []schema.Event) bool {
		o, _ := sum(evs, schema.ActionOpen)
		c, _ := sum(evs, schema.ActionClose)
		return o >= n && c >= n
	})
	// Stop: every window is reported, so nothing more can come.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	evs := r.col.snapshot()
	o, od := sum(evs, schema.ActionOpen)
	c, cd := sum(evs, schema.ActionClose)
	if !ok || o != n || c != n {
		t.Fatalf("opens sum to %d in %d documents, closes %d in %d, want exactly %d each", o, od, c, cd, n)
	}
	if od > 200 {
		t.Errorf("%d open documents for %d opens: the kernel did not aggregate", od, n)
	}
	st := r.src.Stats()
	if st.RingbufFull != 0 || st.Unaggregated != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("10000 opens: %d open documents, %d close documents; stats %+v", od, cd, st)
}

// TestNoSelfEvents runs capture for 10 s with this test process as the
// agent: it writes in its data dir all along, and a child writes both in the
// data dir and outside. No event names this process or the data dir; the
// child's writes outside do arrive.
func TestNoSelfEvents(t *testing.T) {
	needRoot(t)
	base := testtool.Tmpfs(t, "1g")
	data := filepath.Join(base, "data")
	other := filepath.Join(base, "other")
	for _, d := range []string{data, filepath.Join(data, "spool"), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, Options{SelfPID: os.Getpid(), IgnorePaths: []string{data}, AggregateWindow: 100 * time.Millisecond})
	script := fmt.Sprintf("i=0; while [ $i -lt 200 ]; do echo $i > %s/spool/child-$i; echo $i > %s/out-$i; i=$((i+1)); sleep 0.04; done",
		data, other)
	child := exec.Command("sh", "-c", script)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		p := filepath.Join(data, "spool", fmt.Sprintf("seg-%d", i%50))
		if err := os.WriteFile(p, []byte("segment"), 0o600); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			os.Rename(p, p+".done")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}
	evs, ok := r.waitFor(60*time.Second, func(evs []schema.Event) bool {
		for _, e := range evs {
			if e.Path == filepath.Join(other, "out-199") && e.Action == schema.ActionModification {
				return true
			}
		}
		return false
	})
	if !ok {
		// The source sees the whole machine: another job's flood can fill
		// the ring buffers, and what is lost is counted. Then the child's
		// last writes may be among the lost, and what arrived is judged
		// below; with nothing counted lost, a missing write is a failure.
		lost := r.drops.Load(schema.LossEBPFRingbufFull) + r.drops.Load(schema.LossEBPFMapFull) + r.drops.Load(schema.LossRingFull)
		if lost == 0 {
			t.Fatalf("the child's writes outside the data dir did not arrive, and nothing was counted lost; got:\n%s", dump(under(evs, base)))
		}
		t.Logf("the child's last write did not arrive: %d events were lost on the machine-wide source (ebpf_ringbuf_full %d, ebpf_map_full %d, ring_full %d), counted; judging the %d events that arrived",
			lost, r.drops.Load(schema.LossEBPFRingbufFull), r.drops.Load(schema.LossEBPFMapFull), r.drops.Load(schema.LossRingFull), len(evs))
	}
	self := int32(os.Getpid())
	bad := 0
	for _, e := range evs {
		if e.Process.PID == self || strings.HasPrefix(e.Path, data) || strings.HasPrefix(e.OrigPath, data) {
			if bad < 10 {
				t.Errorf("self event: %s", dump([]schema.Event{e}))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d events name the agent or its data dir", bad)
	}
	if st := r.src.Stats(); st.Muted == 0 {
		t.Errorf("the kernel muted nothing: %+v", st)
	}
}

// TestRingbufLossCounted stalls the reader on a one-page ring buffer while
// this process creates files: every creation is either read or counted as
// ebpf_ringbuf_full, exactly.
func TestRingbufLossCounted(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "1g")
	stall := make(chan struct{})
	r := start(t, Options{RingBytes: os.Getpagesize(), stall: stall, targetPID: os.Getpid(), Events: []string{"create"}})
	const n = 500
	createFiles(t, dir, n)
	close(stall)
	got := func(evs []schema.Event) int {
		k := 0
		for _, e := range evs {
			if e.Action == schema.ActionCreation && strings.HasPrefix(e.Path, dir+"/") {
				k++
			}
		}
		return k
	}
	_, ok := r.waitFor(60*time.Second, func(evs []schema.Event) bool {
		return uint64(got(evs))+r.drops.Load(schema.LossEBPFRingbufFull) >= n
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	evs := r.col.snapshot()
	read, lost := got(evs), r.drops.Load(schema.LossEBPFRingbufFull)
	if !ok || uint64(read)+lost != n {
		t.Fatalf("%d creations read + %d counted ebpf_ringbuf_full = %d, want exactly %d", read, lost, uint64(read)+lost, n)
	}
	if lost == 0 || read == 0 {
		t.Fatalf("read %d, lost %d: a one-page ring buffer should have held some and lost the rest", read, lost)
	}
	t.Logf("%d created: %d read, %d counted lost (ebpf_ringbuf_full)", n, read, lost)
}

// createFiles creates n empty files f000… in dir, each with one open(2)
// that creates it, and closes them.
func createFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("f%03d", i)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
}

// TestCreatingOpenLossCounted: an open(2) that creates its file is one
// record carrying two events (the creation, then the open). Read in full,
// each file gives a creation followed by a write open of the same path;
// lost, the record counts as two ebpf_ringbuf_full. So with a stalled
// one-page ring, events read + counted lost = 2 per file, exactly.
func TestCreatingOpenLossCounted(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "1g")
	stall := make(chan struct{})
	r := start(t, Options{RingBytes: os.Getpagesize(), stall: stall, targetPID: os.Getpid(), Events: []string{"create", "open"}})
	const n = 300
	createFiles(t, dir, n)
	close(stall)
	ours := func(evs []schema.Event) []schema.Event {
		var k []schema.Event
		for _, e := range evs {
			if (e.Action == schema.ActionCreation || e.Action == schema.ActionOpen) && strings.HasPrefix(e.Path, dir+"/") {
				k = append(k, e)
			}
		}
		return k
	}
	_, ok := r.waitFor(60*time.Second, func(evs []schema.Event) bool {
		return uint64(len(ours(evs)))+r.drops.Load(schema.LossEBPFRingbufFull) >= 2*n
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	evs := ours(r.col.snapshot())
	read, lost := uint64(len(evs)), r.drops.Load(schema.LossEBPFRingbufFull)
	if !ok || read+lost != 2*n {
		t.Fatalf("%d events read + %d counted ebpf_ringbuf_full = %d, want exactly %d (a creation and an open per file)", read, lost, read+lost, 2*n)
	}
	if lost == 0 || read == 0 {
		t.Fatalf("read %d, lost %d: a one-page ring buffer should have held some and lost the rest", read, lost)
	}
	if read%2 != 0 {
		t.Fatalf("%d events read: a creating open's two events arrive together or not at all", read)
	}
	for i := 0; i+1 < len(evs); i += 2 {
		c, o := evs[i], evs[i+1]
		if c.Action != schema.ActionCreation || o.Action != schema.ActionOpen || c.Path != o.Path ||
			c.Process.PID != o.Process.PID || c.TimeNS != o.TimeNS || c.Access != 0 || o.Access != schema.AccessWrite {
			t.Fatalf("events %d and %d: got %s %q (access %d) then %s %q (access %d), want the creation then the write open of one file",
				i, i+1, c.Action, c.Path, c.Access, o.Action, o.Path, o.Access)
		}
	}
	t.Logf("%d files created: %d events read, %d counted lost (ebpf_ringbuf_full)", n, read, lost)
}

// TestLoadRefused hands the kernel a program its verifier refuses: New fails
// with an error that says so, and leaves nothing attached.
func TestLoadRefused(t *testing.T) {
	needRoot(t)
	_, err := New(Options{InjectLoadFailure: true})
	if err == nil || !strings.Contains(err.Error(), "the kernel refused fileward's BPF programs") {
		t.Fatalf("New with a refused program: %v", err)
	}
}

// TestNewRefusesBadOptions: options New cannot use are refused with a
// message naming the option, before anything is loaded.
func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"ring not a power of two", Options{RingBytes: 3 * 4096}, "must be a power of two"},
		{"ring under a page", Options{RingBytes: 64}, "must be a power of two of at least one page"},
		{"no known events", Options{Events: []string{"nonsense"}}, "no events to capture"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%+v) = %v, want an error containing %q", c.o, err, c.want)
			}
		})
	}
}

// TestSupported: root with BTF is supported; another uid, or a kernel
// without BTF, is not, and the reason says which.
func TestSupported(t *testing.T) {
	dir := t.TempDir()
	btf := dir + "/vmlinux"
	if err := os.WriteFile(btf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := supported(0, btf); err != nil {
		t.Errorf("root with BTF: %v", err)
	}
	if err := supported(1000, btf); err == nil || !strings.Contains(err.Error(), "needs root") || !strings.Contains(err.Error(), "uid 1000") {
		t.Errorf("uid 1000: %v", err)
	}
	if err := supported(0, dir+"/missing"); err == nil || !strings.Contains(err.Error(), "needs kernel BTF") {
		t.Errorf("no BTF: %v", err)
	}
}

// TestPathCache: the kernel's path cache gives the directory part of a
// walked path, and a rename or rmdir by any process (here a child, `mv` and
// `rm`, not the reported process) makes it forget: after the directory
// holding a file moves, and after a directory is removed and another made
// in its place, the file's open names its new path.
func TestPathCache(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "1g")
	r := start(t, Options{targetPID: os.Getpid(), Events: []string{"open"}})
	open := func(p string) {
		t.Helper()
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	opened := func(p string) bool {
		_, ok := r.waitFor(30*time.Second, func(evs []schema.Event) bool {
			for _, e := range evs {
				if e.Action == schema.ActionOpen && e.Path == p && e.Process.PID == int32(os.Getpid()) {
					return true
				}
			}
			return false
		})
		return ok
	}
	sub := filepath.Join(dir, "a", "deep", "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f := filepath.Join(sub, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		open(f)
		if !opened(f) {
			t.Fatalf("no open of %s:\n%s", f, dump(under(r.col.snapshot(), dir)))
		}
	}
	// An ancestor of the cached directory moves.
	run("mv", filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	moved := filepath.Join(dir, "b", "deep", "sub", "f0")
	open(moved)
	if !opened(moved) {
		t.Fatalf("no open of %s after the rename (a stale cached path?):\n%s", moved, dump(under(r.col.snapshot(), dir)))
	}
	// The directory is removed, and another is made in its place.
	run("rm", "-r", filepath.Join(dir, "b"))
	again := filepath.Join(dir, "c", "deep", "sub")
	if err := os.MkdirAll(again, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(again, "g")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	open(f)
	if !opened(f) {
		t.Fatalf("no open of %s after rmdir and mkdir:\n%s", f, dump(under(r.col.snapshot(), dir)))
	}
	for _, e := range under(r.col.snapshot(), dir) {
		if e.Process.PID == int32(os.Getpid()) && (strings.Contains(e.Path, "/a/") && e.Path != filepath.Join(sub, "f0") && e.Path != filepath.Join(sub, "f1") && e.Path != filepath.Join(sub, "f2")) {
			t.Errorf("an event names a path that no longer exists: %s %s", e.Action, e.Path)
		}
	}
	if err := r.stop(); err != nil { // the last kernel counters
		t.Fatal(err)
	}
	if st := r.src.Stats(); st.PathCacheHits == 0 {
		t.Errorf("no walk used the path cache: stats %+v", st)
	} else {
		t.Logf("stats %+v", st)
	}
}
