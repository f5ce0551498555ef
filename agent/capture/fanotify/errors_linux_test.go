//go:build linux

package fanotify

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
)

func TestNewErrors(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Marks: []string{filepath.Join(dir, "nope")}}, "does not exist"},
		{Options{Marks: []string{"relative/path"}}, "must be an absolute path"},
		{Options{Marks: []string{dir}, MarkType: "volume"}, "not filesystem, mount or inode"},
		{Options{Marks: []string{dir}, Queue: "huge"}, "not default or unlimited"},
		{Options{Marks: []string{dir}, Events: []string{"truncate"}}, "no events to capture"},
	}
	for _, c := range cases {
		s, err := New(c.o)
		if err == nil {
			s.Close()
			t.Errorf("%+v: no error", c.o)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want it to say %q", c.o, err, c.want)
		}
	}
}

func TestKernelVersionParse(t *testing.T) {
	k := runningKernel()
	if k.major < 5 {
		t.Fatalf("parsed %+v", k)
	}
	if !(kernel{major: 6, minor: 0}).atLeast(5, 17) || (kernel{major: 5, minor: 16}).atLeast(5, 17) || !(kernel{major: 5, minor: 17}).atLeast(5, 17) {
		t.Fatal("atLeast")
	}
}

// TestUnknownEventsWarnOnce: names fanotify cannot give are ignored with one
// warning, and capture still starts.
func TestUnknownEventsWarnOnce(t *testing.T) {
	needRoot(t)
	var logs testtool.SyncBuffer
	s, err := New(Options{Marks: []string{t.TempDir()}, Events: []string{"open", "truncate", "clone"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := strings.Count(logs.String(), "cannot report"); n != 1 || !strings.Contains(logs.String(), "truncate") {
		t.Fatalf("logs: %s", logs.String())
	}
}

// TestMountMarkDropsDirentEvents: the kernel refuses dirent events on mount
// marks; New says so once and captures the rest.
func TestMountMarkDropsDirentEvents(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "4g")
	var logs testtool.SyncBuffer
	r := start(t, Options{Marks: []string{dir}, MarkType: "mount", Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 1024, true)
	if !strings.Contains(logs.String(), "mount marks cannot report create") {
		t.Fatalf("no warning: %s", logs.String())
	}
	f := filepath.Join(dir, "m.txt")
	os.WriteFile(f, []byte("x"), 0o644)
	evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool {
		for _, e := range evs {
			if e.Path == f && e.Action == schema.ActionModification {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("got:\n%s", dump(evs))
	}
	for _, e := range evs {
		if e.Action == schema.ActionCreation {
			t.Errorf("creation on a mount mark: %s", e.Path)
		}
	}
}

// TestDescriptorFallback: a filesystem that cannot give file handles (procfs
// here) falls back to a descriptor group with a mount mark, with one warning.
// The descriptor path itself is exercised on a tmpfs.
func TestDescriptorFallback(t *testing.T) {
	needRoot(t)
	var logs testtool.SyncBuffer
	s, err := New(Options{Marks: []string{"/proc"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New on /proc: %v", err)
	}
	defer s.Close()
	if len(s.groups) != 1 || s.groups[0].fid {
		t.Fatalf("want one descriptor group, got %d groups", len(s.groups))
	}
	if n := strings.Count(logs.String(), "cannot give file handles"); n != 1 {
		t.Fatalf("want one fallback warning, logs: %s", logs.String())
	}

	dir := testtool.Tmpfs(t, "4g")
	r := start(t, Options{Marks: []string{dir}, forceDescriptor: true}, 1024, true)
	f := filepath.Join(dir, "d.txt")
	os.WriteFile(f, []byte("x"), 0o644)
	os.ReadFile(f)
	evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool {
		n := 0
		for _, e := range evs {
			if e.Path == f && (e.Action == schema.ActionModification || e.Action == schema.ActionClose) {
				n++
			}
		}
		return n >= 2
	})
	if !ok {
		t.Fatalf("descriptor group events:\n%s", dump(evs))
	}
	for _, e := range evs {
		if e.Process.PID != int32(os.Getpid()) || e.Path != f {
			t.Errorf("unexpected event %v %s pid %d", e.Action, e.Path, e.Process.PID)
		}
	}
	// Every event descriptor was closed: our fd count is back to normal.
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == f {
			t.Errorf("leaked descriptor %s → %s", e.Name(), l)
		}
	}
}

// TestLegacyRename: before Linux 5.17 a rename arrives as two unpaired
// events, the old path (file.Ext.original.path) then the new one.
func TestLegacyRename(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "4g")
	var logs testtool.SyncBuffer
	r := start(t, Options{Marks: []string{dir}, Events: []string{"rename"}, forceLegacyRename: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 1024, true)
	if !strings.Contains(logs.String(), "FAN_RENAME needs Linux 5.17") {
		t.Errorf("no legacy warning: %s", logs.String())
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, nil, 0o644)
	os.Rename(a, b)
	evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool { return len(evs) >= 2 })
	if !ok || len(evs) != 2 {
		t.Fatalf("got:\n%s", dump(evs))
	}
	if evs[0].Action != schema.ActionRename || evs[0].OrigPath != a || evs[1].Action != schema.ActionRename || evs[1].Path != b || evs[1].OrigPath != "" {
		t.Fatalf("got:\n%s", dump(evs))
	}
}

// TestKernelChecks: a kernel too old for file-handle reporting is refused
// with its version and the events named; one too old for FAN_RENAME warns,
// naming its version, and falls back to unpaired renames.
func TestKernelChecks(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	_, err := New(Options{Marks: []string{dir}, Events: []string{"open", "create", "rename"}, kernelRelease: "5.4.0-150-generic"})
	if err == nil {
		t.Fatal("Linux 5.4 accepted")
	}
	for _, want := range []string{"Linux 5.4.0-150-generic is too old", "5.9", "FAN_REPORT_DFID_NAME", "open", "rename", "upgrade the kernel"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var logs testtool.SyncBuffer
	s, err := New(Options{Marks: []string{dir}, Events: []string{"open", "rename"}, kernelRelease: "5.15.0-91-generic", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Linux 5.15: %v", err)
	}
	s.Close()
	if l := logs.String(); !strings.Contains(l, "FAN_RENAME needs Linux 5.17") || !strings.Contains(l, "5.15.0-91-generic") {
		t.Errorf("no rename warning naming the kernel: %s", l)
	}
}

// TestNotRoot runs New in a child process as uid 65534 with no
// capabilities: it must refuse with an error that says what to do.
func TestNotRoot(t *testing.T) {
	needRoot(t)
	// The child needs an executable it may run: copy the test binary into
	// a directory everyone can read.
	dir, err := os.MkdirTemp("", "fileward-notroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "fanotify.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "FILEWARD_TRY_NEW="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("New succeeded as uid 65534: %s", out)
	}
	for _, want := range []string{"fanotify needs root or CAP_SYS_ADMIN", "uid 65534", "AmbientCapabilities=CAP_SYS_ADMIN"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output %q does not say %q", out, want)
		}
	}
}

// tryNew is TestNotRoot's child: it runs New on dir and reports the error.
func tryNew(dir string) {
	s, err := New(Options{Marks: []string{dir}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.Close()
	fmt.Println("ok")
	os.Exit(0)
}
