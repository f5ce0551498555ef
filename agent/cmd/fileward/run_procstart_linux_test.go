//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

// runAgent starts `fileward run` with the fanotify source on marks and a
// file sink at out, and returns a stop function. extra is YAML appended
// under source.fanotify (for example host_root).
func runAgent(t *testing.T, dir, data, out, mark, extra string) func() {
	t.Helper()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s, heartbeat: 0s}
source:
  type: fanotify
  events: [open, close, create, modify, rename, delete, attrib, exec]
  fanotify: {marks: [%[2]s], mark_type: filesystem, process_args: true%[4]s}
filters: {aggregate_window: 0s}
batch: {max_wait: 100ms}
sinks:
  - {name: local, type: file, file: {path: %[3]s}}
metrics: {listen: ""}
`, data, mark, out, extra), 0o644)
	_, stop := startFanotifyAgent(t, cfg)
	return stop
}

// startFanotifyAgent starts `fileward run -c cfg` (startAgent) and checks
// that it captures with fanotify.
func startFanotifyAgent(t *testing.T, cfg string) (*testtool.SyncBuffer, func()) {
	t.Helper()
	errb, stop := startAgent(t, cfg)
	if !strings.Contains(errb.String(), "fanotify on") {
		t.Fatalf("the agent did not start fanotify capture:\n%s", errb.String())
	}
	return errb, stop
}

// TestExecStartEventJoinsFileEvents runs the real agent on the real kernel:
// a copied shell execs (its start event), writes a file, and keeps running.
// The start event and the file event must share process.entity_id, so an
// EQL sequence by process.entity_id joins them; the start event must carry
// the parent's pid (this test process) and the arguments.
func TestExecStartEventJoinsFileEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
	dir := t.TempDir()
	mnt := testtool.Tmpfs(t, "256m")
	work := filepath.Join(mnt, "work")
	os.Mkdir(work, 0o755)
	out := filepath.Join(mnt, "out", "events.ndjson")
	stop := runAgent(t, dir, filepath.Join(mnt, "data"), out, mnt, "")

	mysh := filepath.Join(work, "mysh")
	copyProgram(t, "sh", mysh)
	time.Sleep(50 * time.Millisecond)
	target := filepath.Join(work, "dropped.txt")
	// The shell writes the file itself (a redirection, no child), then
	// waits on stdin so that it is alive while the pipeline reads /proc.
	child := exec.Command(mysh, "-c", "echo x > "+target+"; read _")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	defer func() { stdin.Close(); child.Wait() }()

	var start, file *schema.Event
	ok := waitDocs(t, out, 15*time.Second, func(evs []schema.Event) bool {
		start, file = nil, nil
		for i := range evs {
			e := &evs[i]
			if int(e.Process.PID) != pid {
				continue
			}
			switch {
			case e.Action == schema.ActionExec && e.Path == mysh:
				start = e
			case e.Path == target && (e.Action == schema.ActionCreation || e.Action == schema.ActionModification):
				file = e
			}
		}
		return start != nil && file != nil
	})
	stdin.Close()
	child.Wait()
	stop()
	if !ok {
		t.Fatalf("no exec and file event of pid %d in:\n%s", pid, dumpDocs(readDocs(t, out)))
	}
	if start.Process.EntityID == "" || start.Process.EntityID != file.Process.EntityID {
		t.Errorf("start event entity_id %q, file event entity_id %q", start.Process.EntityID, file.Process.EntityID)
	}
	if int(start.Process.PPID) != os.Getpid() {
		t.Errorf("start event parent.pid %d, want %d (this test)", start.Process.PPID, os.Getpid())
	}
	wantArgs := []string{mysh, "-c", "echo x > " + target + "; read _"}
	if strings.Join(start.Process.Args, "\x00") != strings.Join(wantArgs, "\x00") {
		t.Errorf("start event args %q, want %q", start.Process.Args, wantArgs)
	}
	if start.Process.Executable != mysh {
		t.Errorf("start event executable %q", start.Process.Executable)
	}
	self, _ := os.Executable()
	if pp := start.Process.Parent; pp.EntityID == "" || pp.Executable != self {
		t.Errorf("start event parent %+v, want executable %s and an entity id", pp, self)
	}
	// The raw document: category process, type start, its own data stream.
	raw, _ := os.ReadFile(out)
	found := false
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, `"action":"exec"`) && strings.Contains(l, fmt.Sprintf(`"pid":%d,`, pid)) {
			found = true
			for _, want := range []string{`"category":["process"]`, `"type":["start"]`, `"outcome":"success"`, `"dataset":"fileward.process"`, `"args_count":3`, `"command_line":`, `"thread":{"capabilities":{"effective":["CAP_CHOWN",`} {
				if !strings.Contains(l, want) {
					t.Errorf("start document lacks %s: %s", want, l)
				}
			}
		}
	}
	if !found {
		t.Error("no raw exec document")
	}
}

// TestHostRootStripped is the DaemonSet case: the host's filesystem is seen
// by the agent under a bind mount (here <tmp>/host, as /host in the pod), and
// source.fanotify.host_root makes documents carry the host's own paths.
func TestHostRootStripped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root (CI runs as root)")
	}
	dir := t.TempDir()
	// The "host" filesystem, and the agent's view of it under hostRoot.
	hostFS := filepath.Join(dir, "node")
	testtool.MountTmpfs(t, hostFS, 0, "size=256m,mode=0755")
	hostRoot := filepath.Join(dir, "host")
	view := filepath.Join(hostRoot, "srv")
	if err := os.MkdirAll(view, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(hostFS, view, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(view, unix.MNT_DETACH) })
	os.MkdirAll(filepath.Join(hostFS, "etc"), 0o755)
	outDir := filepath.Join(dir, "out")
	os.Mkdir(outDir, 0o755)
	out := filepath.Join(outDir, "events.ndjson")
	stop := runAgent(t, dir, filepath.Join(dir, "data"), out, view, ", host_root: "+hostRoot)

	// A process on the "host" writes through the host's own path; the
	// agent's mark sees it under <hostRoot>/srv.
	if err := os.WriteFile(filepath.Join(hostFS, "etc", "shadow"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(hostFS, "etc", "shadow"), filepath.Join(hostFS, "etc", "shadow-")); err != nil {
		t.Fatal(err)
	}
	var got []schema.Event
	ok := waitDocs(t, out, 15*time.Second, func(evs []schema.Event) bool {
		got = evs
		for _, e := range evs {
			if e.Action == schema.ActionRename {
				return true
			}
		}
		return false
	})
	stop()
	if !ok {
		t.Fatalf("no rename event in:\n%s", dumpDocs(readDocs(t, out)))
	}
	sawCreate := false
	for _, e := range got {
		for _, p := range []string{e.Path, e.OrigPath} {
			if strings.HasPrefix(p, hostRoot) {
				t.Errorf("%s event keeps the container prefix: %s", e.Action, p)
			}
		}
		if e.Action == schema.ActionCreation && e.Path == "/srv/etc/shadow" {
			sawCreate = true
		}
		if e.Action == schema.ActionRename && (e.Path != "/srv/etc/shadow-" || e.OrigPath != "/srv/etc/shadow") {
			t.Errorf("rename %s -> %s, want /srv/etc/shadow -> /srv/etc/shadow-", e.OrigPath, e.Path)
		}
	}
	if !sawCreate {
		t.Errorf("no creation of /srv/etc/shadow in:\n%s", dumpDocs(got))
	}
}

func dumpDocs(evs []schema.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-14s pid=%-7d %s %q entity=%s\n", e.Action, e.Process.PID, e.Path, e.Process.Executable, e.Process.EntityID)
	}
	return b.String()
}
