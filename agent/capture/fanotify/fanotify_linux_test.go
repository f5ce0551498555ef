//go:build linux

package fanotify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/procfs"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
)

type want struct {
	action schema.Action
	path   string
	orig   string
	pid    int
	exe    string
}

// TestFileOperations performs each operation of issue 5's list inside a
// tmpfs the test mounts, and checks that each arrives with the right action,
// path, original path, pid and executable (after procfs enrichment).
func TestFileOperations(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "4g")
	r := start(t, Options{Marks: []string{dir}, Events: []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"}}, 4096, true)
	pc := procfs.New(procfs.Options{HostID: "test"})
	defer pc.Close()
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

	// Each operation waits for its last expected event before the next one
	// runs, so the kernel cannot merge records of different steps (merging
	// has its own test).
	var wants []want
	expect := func(a schema.Action, path, orig string) {
		wants = append(wants, want{action: a, path: path, orig: orig, pid: self, exe: exe})
	}
	sync := func() {
		t.Helper()
		w := wants[len(wants)-1]
		evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool {
			for _, e := range evs {
				if e.Action == w.action && e.Path == w.path && e.OrigPath == w.orig {
					return true
				}
			}
			return false
		})
		if !ok {
			t.Fatalf("no %v %s (orig %q) within 5s; got:\n%s", w.action, w.path, w.orig, dump(evs))
		}
	}
	// create, write, close
	must(os.WriteFile(p("a.txt"), []byte("hello"), 0o644))
	expect(schema.ActionCreation, p("a.txt"), "")
	expect(schema.ActionOpen, p("a.txt"), "")
	expect(schema.ActionModification, p("a.txt"), "")
	sync()
	// open for read, close
	_, err = os.ReadFile(p("a.txt"))
	must(err)
	expect(schema.ActionOpen, p("a.txt"), "")
	expect(schema.ActionClose, p("a.txt"), "")
	sync()
	// rename within a directory
	must(os.Rename(p("a.txt"), p("b.txt")))
	expect(schema.ActionRename, p("b.txt"), p("a.txt"))
	sync()
	// mkdir, rename across directories
	must(os.Mkdir(p("sub"), 0o755))
	expect(schema.ActionCreation, p("sub"), "")
	sync()
	must(os.Rename(p("b.txt"), p("sub", "c.txt")))
	expect(schema.ActionRename, p("sub", "c.txt"), p("b.txt"))
	sync()
	// chmod, chown
	must(os.Chmod(p("sub", "c.txt"), 0o600))
	expect(schema.ActionAttributesModification, p("sub", "c.txt"), "")
	sync()
	must(os.Chown(p("sub", "c.txt"), 1234, 1234))
	expect(schema.ActionAttributesModification, p("sub", "c.txt"), "")
	sync()
	// link (fanotify reports the new name as a creation), unlink
	must(os.Link(p("sub", "c.txt"), p("l.txt")))
	expect(schema.ActionCreation, p("l.txt"), "")
	sync()
	must(os.Remove(p("l.txt")))
	expect(schema.ActionDeletion, p("l.txt"), "")
	sync()
	// rename a directory, then a file event under its new name
	must(os.Rename(p("sub"), p("sub2")))
	expect(schema.ActionRename, p("sub2"), p("sub"))
	sync()
	must(os.Remove(p("sub2", "c.txt")))
	expect(schema.ActionDeletion, p("sub2", "c.txt"), "")
	sync()
	// rmdir
	must(os.Remove(p("sub2")))
	expect(schema.ActionDeletion, p("sub2"), "")
	sync()

	// exec of a copied binary: the exec event comes from the child, whose
	// executable is the copy once exec completes.
	sleep, err := exec.LookPath("sleep")
	must(err)
	bin, err := os.ReadFile(sleep)
	must(err)
	must(os.Mkdir(p("bin"), 0o755))
	copied := p("bin", "mysleep")
	must(os.WriteFile(copied, bin, 0o755))
	cmd := exec.Command(copied, "5")
	must(cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	wants = append(wants, want{action: schema.ActionExec, path: copied, pid: cmd.Process.Pid, exe: copied})

	evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool {
		for _, e := range evs {
			if e.Action == schema.ActionExec && e.Path == copied {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no exec event; got:\n%s", dump(evs))
	}
	time.Sleep(50 * time.Millisecond) // let the exec complete before enrichment
	evs = r.col.snapshot()

	// Each wanted event must appear, in order, with the right fields.
	i := 0
	for _, w := range wants {
		found := false
		for ; i < len(evs); i++ {
			e := evs[i]
			if e.Action != w.action || e.Path != w.path || e.OrigPath != w.orig || int(e.Process.PID) != w.pid {
				continue
			}
			if e.Provider != schema.ProviderFanotify || e.TimeNS == 0 || e.PathTruncated {
				t.Errorf("%v %s: provider %v time %d truncated %v", w.action, w.path, e.Provider, e.TimeNS, e.PathTruncated)
			}
			if !pc.Enrich(&e) {
				t.Errorf("%v %s: process %d unresolved", w.action, w.path, e.Process.PID)
			} else if e.Process.Executable != w.exe {
				t.Errorf("%v %s: executable %q, want %q", w.action, w.path, e.Process.Executable, w.exe)
			}
			found = true
			i++
			break
		}
		if !found {
			t.Errorf("missing (in order) %v %s (orig %q, pid %d)", w.action, w.path, w.orig, w.pid)
		}
	}
	// Sequence numbers are strictly increasing within the stream.
	for j := 1; j < len(evs); j++ {
		if evs[j].Stream == evs[0].Stream && evs[j].Seq <= evs[j-1].Seq {
			t.Errorf("seq not increasing at %d: %d after %d", j, evs[j].Seq, evs[j-1].Seq)
		}
	}
	// The open for writing of a.txt carries the write bit, the read-only one the read bit.
	var accs []uint8
	for _, e := range evs {
		if e.Action == schema.ActionOpen && e.Path == p("a.txt") {
			accs = append(accs, e.Access)
		}
	}
	// In FID mode the kernel gives no open flags: the write bit comes from
	// FAN_MODIFY merged into the open's record, and a lone open has none.
	// The kernel merges only while the open's record is still queued: when
	// the reader has taken it before the write (a loaded machine), the
	// modification comes in a record of its own (expected above) and the
	// open carries no write bit. The mapping of a merged record is
	// TestModifyThenCloseAcrossRecords' and TestMergedRecordOrder's.
	if len(accs) != 2 || accs[1]&schema.AccessWrite != 0 {
		t.Errorf("open access bits %v, want [write (when merged), not write]", accs)
	} else if accs[0]&schema.AccessWrite == 0 {
		t.Logf("the write open's FAN_MODIFY came in a record of its own: no write bit on the open")
	}
	if t.Failed() {
		t.Logf("events:\n%s", dump(evs))
	}
	st := r.src.Stats()
	t.Logf("stats %+v", st)
	if st.Unresolved != 0 {
		t.Errorf("%d unresolved paths", st.Unresolved)
	}
	// Link-count changes (link, unlink) are nameless FAN_ATTRIB records;
	// with only directory handles requested the kernel does not queue them.
	if st.Nameless != 0 {
		t.Errorf("%d nameless records reached the loop", st.Nameless)
	}
	if !strings.HasPrefix(copied, dir) {
		t.Fatal("copied binary outside the mount")
	}
}

// TestExecNamesTheProgram: FAN_OPEN_EXEC arrives while execve(2) runs, so
// the source names the program itself. A script on the mount runs through
// an interpreter copied onto the mount: both exec records of that execve
// name the script. The script then reads a file and execs a copied binary:
// that later execve names the binary.
func TestExecNamesTheProgram(t *testing.T) {
	needRoot(t)
	dir := testtool.Tmpfs(t, "4g")
	copyBin := func(name, to string) {
		t.Helper()
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh, sleep := filepath.Join(dir, "mysh"), filepath.Join(dir, "mysleep")
	copyBin("sh", sh)
	copyBin("sleep", sleep)
	data := filepath.Join(dir, "data.txt")
	script := filepath.Join(dir, "run.sh")
	os.WriteFile(data, []byte("x"), 0o644)
	os.WriteFile(script, []byte("#!"+sh+"\nread x < "+data+"\nexec "+sleep+" 0.01\n"), 0o755)

	r := start(t, Options{Marks: []string{dir}, Events: []string{"open", "exec"}}, 4096, true)
	cmd := exec.Command(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	pid := int32(cmd.Process.Pid)
	evs, ok := r.waitFor(5*time.Second, func(evs []schema.Event) bool {
		for _, e := range evs {
			if e.Action == schema.ActionExec && e.Path == sleep {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no exec of %s:\n%s", sleep, dump(evs))
	}
	want := map[string]string{script: script, sh: script, sleep: sleep}
	seen := 0
	for _, e := range evs {
		if e.Action != schema.ActionExec || e.Process.PID != pid {
			continue
		}
		if w, ok := want[e.Path]; ok {
			seen++
			if e.Process.Executable != w {
				t.Errorf("exec of %s: process.executable %q, want %q", e.Path, e.Process.Executable, w)
			}
		}
	}
	if seen != 3 {
		t.Errorf("%d of the 3 exec records (script, interpreter, binary):\n%s", seen, dump(evs))
	}
}
