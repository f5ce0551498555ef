//go:build linux

package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/schema"
)

func TestEnrichSelf(t *testing.T) {
	c := New(Options{Args: true, HostID: "h1"})
	defer c.Close()
	ev := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: int32(os.Getpid())}}
	if !c.Enrich(&ev) {
		t.Fatal("Enrich(self) = false")
	}
	exe, _ := os.Executable()
	p := ev.Process
	if p.Executable != exe || p.Name != filepath.Base(exe) {
		t.Errorf("executable %q name %q, want %q", p.Executable, p.Name, exe)
	}
	if p.PPID != int32(os.Getppid()) {
		t.Errorf("ppid %d, want %d", p.PPID, os.Getppid())
	}
	if !p.HasUser || p.UID != uint32(os.Geteuid()) || p.RUID != uint32(os.Getuid()) || p.GID != uint32(os.Getegid()) {
		t.Errorf("ids %+v", p)
	}
	if os.Geteuid() == 0 && p.UserName != "root" {
		t.Errorf("user name %q, want root", p.UserName)
	}
	if os.Getegid() == 0 && p.GroupName != "root" {
		t.Errorf("group name %q, want root", p.GroupName)
	}
	// The capability sets, as the kernel reports them for this process.
	st, _ := os.ReadFile("/proc/self/status")
	for _, c := range []struct {
		key string
		got uint64
	}{{"CapEff:", p.CapEff}, {"CapPrm:", p.CapPrm}} {
		want, ok := capLine(st, c.key)
		if !ok || !p.HasCaps || c.got != want {
			t.Errorf("%s %x, want %x (has %v)", c.key, c.got, want, p.HasCaps)
		}
	}
	if os.Geteuid() == 0 && p.CapEff&(1<<21) == 0 {
		t.Errorf("root without CAP_SYS_ADMIN in CapEff %x", p.CapEff)
	}
	if len(p.Args) == 0 || p.Args[0] != os.Args[0] {
		t.Errorf("args %q, want %q...", p.Args, os.Args[0])
	}
	if p.StartNS <= 0 || p.StartNS > time.Now().UnixNano() || time.Since(time.Unix(0, p.StartNS)) > 24*time.Hour {
		t.Errorf("start %v", time.Unix(0, p.StartNS))
	}
	if p.EntityID == "" {
		t.Error("no entity id")
	}
	// A second event from the same process is a cache hit with the same id.
	ev2 := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: int32(os.Getpid())}}
	if !c.Enrich(&ev2) || ev2.Process.EntityID != p.EntityID {
		t.Errorf("second enrich: entity %q, want %q", ev2.Process.EntityID, p.EntityID)
	}
	if c.Len() != 1 {
		t.Errorf("cache len %d, want 1", c.Len())
	}
}

// TestExecKeepsTheNewImage: an exec event that already names its new image
// (fanotify's exec record arrives before /proc shows it) keeps that
// executable, with its base name and no stale args, and the next event of
// the pid reads /proc again instead of trusting the cached entry.
func TestExecKeepsTheNewImage(t *testing.T) {
	c := New(Options{Args: true, TTL: time.Hour})
	defer c.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pid := int32(os.Getpid())
	ev := schema.Event{Action: schema.ActionOpen, Process: schema.Process{PID: pid}}
	if !c.Enrich(&ev) || ev.Process.Executable != self {
		t.Fatalf("open: %+v", ev.Process)
	}
	ev = schema.Event{Action: schema.ActionExec, Process: schema.Process{PID: pid, Executable: "/opt/new/prog"}}
	if !c.Enrich(&ev) {
		t.Fatal("exec unresolved")
	}
	if ev.Process.Executable != "/opt/new/prog" || ev.Process.Name != "prog" || ev.Process.Args != nil || ev.Process.PPID != int32(os.Getppid()) {
		t.Errorf("exec: %+v", ev.Process)
	}
	ev = schema.Event{Action: schema.ActionOpen, Process: schema.Process{PID: pid}}
	if !c.Enrich(&ev) || ev.Process.Executable != self || len(ev.Process.Args) == 0 {
		t.Errorf("open after exec: %+v", ev.Process)
	}
	// An exec whose image /proc already shows is filled from /proc.
	ev = schema.Event{Action: schema.ActionExec, Process: schema.Process{PID: pid, Executable: self}}
	if !c.Enrich(&ev) || ev.Process.Executable != self || len(ev.Process.Args) == 0 {
		t.Errorf("completed exec: %+v", ev.Process)
	}
}

// TestShortLivedProcessFromExec: a process that exited before its events
// were enriched is named by its exec event's image, for events after the
// exec and within execMemory, and by nothing else.
func TestShortLivedProcessFromExec(t *testing.T) {
	c := New(Options{})
	defer c.Close()
	t0 := time.Now().UnixNano()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	image := "/opt/tools/short"
	ev := schema.Event{Action: schema.ActionExec, TimeNS: t0, Process: schema.Process{PID: pid, Executable: image}}
	if !c.Enrich(&ev) || ev.Process.Executable != image || ev.Process.Name != "short" {
		t.Fatalf("exec of a gone process: %+v", ev.Process)
	}
	ev = schema.Event{Action: schema.ActionOpen, TimeNS: t0 + int64(time.Millisecond), Process: schema.Process{PID: pid}}
	if !c.Enrich(&ev) || ev.Process.Executable != image || ev.Process.Name != "short" || ev.Process.PPID != 0 {
		t.Errorf("open after the exec: %+v", ev.Process)
	}
	for _, at := range []int64{t0 - int64(time.Millisecond), t0 + int64(execMemory) + 1} {
		ev = schema.Event{Action: schema.ActionOpen, TimeNS: at, Process: schema.Process{PID: pid}}
		if c.Enrich(&ev) || ev.Process.Executable != "" {
			t.Errorf("event at exec%+dns resolved: %+v", at-t0, ev.Process)
		}
	}
}

func TestExitedProcessIsUnresolved(t *testing.T) {
	c := New(Options{})
	defer c.Close()
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	ev := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: pid}}
	if !c.Enrich(&ev) || !strings.HasSuffix(ev.Process.Executable, "/sleep") {
		t.Fatalf("live child: %+v", ev.Process)
	}
	cmd.Process.Kill()
	cmd.Wait()
	ev = schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: pid}}
	if c.Enrich(&ev) {
		t.Fatalf("exited child resolved: %+v", ev.Process)
	}
	if ev.Process.PID != pid || ev.Process.Executable != "" {
		t.Errorf("unresolved event must keep only the pid: %+v", ev.Process)
	}
	if c.Len() != 0 {
		t.Errorf("dead entry kept: len %d", c.Len())
	}
}

// TestPIDReuse makes the kernel hand a dead process's pid to a new process
// (through /proc/sys/kernel/ns_last_pid) and checks that neither process is
// credited with the other's events.
func TestPIDReuse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /proc/sys/kernel/ns_last_pid")
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other-sleep")
	data, err := os.ReadFile(mustLookPath(t, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(Options{})
	defer c.Close()

	var a, b *exec.Cmd
	for attempt := 0; ; attempt++ {
		if attempt == 200 {
			t.Skip("could not get the kernel to reuse a pid in 200 tries (other processes are forking)")
		}
		a = exec.Command("sleep", "10")
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		evA := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: int32(a.Process.Pid)}}
		if !c.Enrich(&evA) || !strings.HasSuffix(evA.Process.Executable, "/sleep") {
			t.Fatalf("first process: %+v", evA.Process)
		}
		a.Process.Kill()
		a.Wait()
		// An event that A caused just before it died, enriched late.
		lateA := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: int32(a.Process.Pid)}}
		time.Sleep(30 * time.Millisecond) // more than one clock tick between A's event and B's start
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(a.Process.Pid-1)), 0); err != nil {
			t.Skipf("cannot set ns_last_pid: %v", err)
		}
		b = exec.Command(other, "10")
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		if b.Process.Pid != a.Process.Pid {
			b.Process.Kill()
			b.Wait()
			continue
		}
		defer func() { b.Process.Kill(); b.Wait() }()
		if c.Enrich(&lateA) {
			t.Fatalf("A's late event was credited to B (pid %d reused): %+v", a.Process.Pid, lateA.Process)
		}
		evB := schema.Event{TimeNS: time.Now().UnixNano(), Process: schema.Process{PID: int32(b.Process.Pid)}}
		if !c.Enrich(&evB) {
			t.Fatal("B unresolved")
		}
		if evB.Process.Executable != other {
			t.Fatalf("B's event credited to %q, want %q (pid reuse misattributed)", evB.Process.Executable, other)
		}
		if evB.Process.EntityID == evA.Process.EntityID {
			t.Fatal("A and B share an entity id")
		}
		t.Logf("pid %d reused after %d attempts", b.Process.Pid, attempt+1)
		return
	}
}

func mustLookPath(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "a) b (c)" || st.ppid != 7 || st.startTicks != 12345 || st.state != 'S' {
		t.Fatalf("%+v", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1", "1 (x) S notanumber 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (a) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStat(b)
	})
}
