package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// expectFail checks a run of the binary that must fail: the exit code, every
// wanted phrase on stderr, nothing on stdout, and no stack trace.
func expectFail(t *testing.T, code int, stdout, stderr string, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, stdout, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("a stack trace reached the user:\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

// writeConfig writes a config file of src (with %[1]s as dir) and returns
// its path.
func writeConfig(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, fmt.Appendf(nil, src, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadFlags: an unknown flag of any command exits 2 and points at the
// command's help.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--bogus"},
		{"check-config", "-x"},
		{"convert", "--from"},
		{"spool", "stat", "--bogus"},
		{"reload", "--bogus"},
	} {
		out, errOut, code := fw(t, nil, args...)
		expectFail(t, code, out, errOut, 2, "run `fileward help "+args[0]+"` for its flags")
	}
}

// TestReloadFailures: reload without a running agent, and with a config
// that does not load, fail with the cause.
func TestReloadFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n")
	out, errOut, code := fw(t, nil, "reload", "-c", cfg)
	expectFail(t, code, out, errOut, 1, "fileward reload: no agent is running on "+filepath.Join(dir, "data"), "start one with fileward run")

	bad := writeConfig(t, dir, "bad.yaml", "agent:\n  data_dir: %[1]s/data\n  heartbeat: often\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n")
	out, errOut, code = fw(t, nil, "reload", "-c", bad)
	expectFail(t, code, out, errOut, 2, bad+":3: agent.heartbeat:")
}

// TestSpoolCommandFailures: the spool commands fail with the cause and the
// documented exit code when there is nothing to inspect or the config does
// not load.
func TestSpoolCommandFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "agent: {data_dir: %[1]s/never-run}\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n")
	out, errOut, code := fw(t, nil, "spool")
	expectFail(t, code, out, errOut, 2, "usage: fileward spool stat|verify|prune")

	spoolDir := filepath.Join(dir, "never-run", "spool")
	for _, sub := range []string{"stat", "verify", "prune"} {
		out, errOut, code = fw(t, nil, "spool", sub, "-c", cfg)
		expectFail(t, code, out, errOut, 1, "fileward spool "+sub+": ", spoolDir, "no such file or directory")
	}
	bad := writeConfig(t, dir, "bad.yaml", "agent: {data_dir: %[1]s/data}\nspool:\n  when_full: block\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n")
	for _, sub := range []string{"stat", "prune"} {
		out, errOut, code = fw(t, nil, "spool", sub, "-c", bad)
		expectFail(t, code, out, errOut, 2, bad+":3: spool.when_full:")
	}
}

// TestSpoolStatCursorsAndQuarantine: stat says when no sink has a cursor
// yet, names a cursor file it cannot read instead of failing, and lists
// quarantined segments; verify finds damage in records every sink has
// acknowledged harmless (exit 0).
func TestSpoolStatCursorsAndQuarantine(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}\n")
	sdir := filepath.Join(dir, "data", "spool")
	open := func() *spool.Spool {
		s, err := spool.Open(context.Background(), spool.Options{Dir: sdir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Fsync: spool.FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	for i := range 8 {
		evs := make([]sinks.Event, 10)
		for k := range evs {
			evs[k] = sinks.Event{ID: fmt.Sprintf("e%d-%d", i, k), Doc: []byte(`{"pad":"` + strings.Repeat("x", 300) + `"}`)}
		}
		if err := s.Append(context.Background(), sinks.AppendBatch(nil, evs), len(evs)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	out, errOut, code := fw(t, nil, "spool", "stat", "-c", cfg)
	if code != 0 || !strings.Contains(out, "cursors:  none (a new sink starts at the oldest data)") || !strings.Contains(out, "events:   80") {
		t.Fatalf("stat without cursors: exit %d\n%s%s", code, out, errOut)
	}

	// The sink reads and acknowledges the first 3 records (30 events).
	s = open()
	r, err := s.Reader("local")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3 && r.Next(); i++ {
		r.Ack()
	}
	r.Close()
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(sdir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	// Damage in the first record, which every sink has acknowledged.
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[20+28+10] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(out, "corrupt: the next start quarantines") ||
		!strings.Contains(out, "ok: 1 damaged span(s), but only in events every sink has acknowledged: no event lost") {
		t.Fatalf("verify with damage in acknowledged records: exit %d, want 0\n%s%s", code, out, errOut)
	}

	// A cursor file that cannot be read is reported, not fatal.
	if err := os.WriteFile(filepath.Join(sdir, "cursors", "old.cursor"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = fw(t, nil, "spool", "stat", "-c", cfg)
	if code != 0 || !strings.Contains(out, "cursor    old  unreadable (") || !strings.Contains(out, "the sink restarts at the oldest data") ||
		!strings.Contains(out, "cursor    local  segment ") {
		t.Fatalf("stat with an unreadable cursor: exit %d\n%s%s", code, out, errOut)
	}
	os.Remove(filepath.Join(sdir, "cursors", "old.cursor"))

	// Recovery quarantines the damaged segment; stat and verify list it.
	s = open()
	s.Close()
	out, errOut, code = fw(t, nil, "spool", "stat", "-c", cfg)
	if code != 0 || !strings.Contains(out, "quarantined ") {
		t.Fatalf("stat after recovery: exit %d, want the quarantined segment listed\n%s%s", code, out, errOut)
	}
	out, errOut, code = fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(out, "quarantined earlier: ") || !strings.Contains(out, "clean") {
		t.Fatalf("verify after recovery: exit %d\n%s%s", code, out, errOut)
	}
}

// TestConvertFailures: convert refuses bad flags and inputs before writing
// anything, and a full output disk is an error, not a silent loss.
func TestConvertFailures(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("demo", "eslogger-demo.ndjson")
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"convert", "--max-line-bytes", "100", in}, 2, []string{"convert: --max-line-bytes 100: must be at least 4096"}},
		{[]string{"convert", "--from", "syslog", in}, 2, []string{`convert: --from "syslog": use eslogger or ecs`}},
		{[]string{"convert", in, filepath.Join(dir, "missing.ndjson")}, 1, []string{"convert: ", "missing.ndjson: no such file or directory"}},
		{[]string{"convert", dir}, 1, []string{"convert: " + dir + " is a directory: name NDJSON files, or - for standard input"}},
	} {
		out, errOut, code := fw(t, nil, c.args...)
		expectFail(t, code, out, errOut, c.code, c.want...)
	}

	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("/dev/full: %v", err)
	}
	defer full.Close()
	cmd := exec.Command(binary, "convert", in)
	cmd.Stdout = full
	var errb strings.Builder
	cmd.Stderr = &errb
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(errb.String(), "convert: write: ") ||
		!strings.Contains(errb.String(), "no space left on device") {
		t.Fatalf("convert to a full disk: exit %d (%v), want 1 and the write error\n%s", code, err, errb.String())
	}
}

// TestConfigFileUnreadable: a config path that does not exist or is a
// directory is named once, with the reason, and every command that reads a
// config exits 2.
func TestConfigFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	for _, c := range []struct {
		path, reason string
	}{
		{missing, "no such file or directory"},
		{dir, "is a directory"},
	} {
		for _, cmd := range []string{"check-config", "run", "reload"} {
			out, errOut, code := fw(t, nil, cmd, "-c", c.path)
			expectFail(t, code, out, errOut, 2, c.path+": cannot read the config: "+c.reason)
			if n := strings.Count(errOut, c.path); n != 1 {
				t.Errorf("%s -c %s: the path is named %d times:\n%s", cmd, c.path, n, errOut)
			}
		}
	}
}

// TestStartOnTornSpool: a spool whose newest segment ends in a torn record
// (what a crash mid-append leaves) does not stop the agent: the torn tail is
// dropped, every record stored whole is delivered exactly once, no loss is
// reported for it, and the spool verifies clean afterwards.
func TestStartOnTornSpool(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, 5)
	sdir := filepath.Join(dir, "data", "spool")
	s, err := spool.Open(context.Background(), spool.Options{Dir: sdir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Fsync: spool.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	const records, per = 10, 10
	for i := range records {
		evs := make([]sinks.Event, per)
		for k := range evs {
			evs[k] = sinks.Event{ID: fmt.Sprintf("e%d-%d", i, k), Doc: fmt.Appendf(nil, `{"spooled":"e%d-%d"}`, i, k)}
		}
		if err := s.Append(context.Background(), sinks.AppendBatch(nil, evs), len(evs)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(sdir, "*.seg"))
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()-7); err != nil { // the last record is torn
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ndjson")
	cfg := writeConfig(t, dir, "c.yaml", "agent: {data_dir: %[1]s/data, heartbeat: 0s}\nsource: {type: replay, replay: {path: %[1]s/in.ndjson, format: ecs}}\nmetrics: {listen: \"\"}\nsinks:\n  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}\n")
	proc := startRun(t, cfg)
	const whole = (records - 1) * per
	var lines []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		b, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= whole+5 && strings.HasSuffix(string(b), "\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines delivered, want %d:\n%s", len(lines), whole+5, proc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	b, _ := os.ReadFile(out)
	lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	seen := map[string]int{}
	replayed := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, `{"spooled":`):
			seen[l]++
		case strings.Contains(l, `"events_lost"`):
			t.Errorf("a loss was reported for a torn tail: %s", l)
		default:
			replayed++
		}
	}
	for i := range records - 1 {
		for k := range per {
			if l := fmt.Sprintf(`{"spooled":"e%d-%d"}`, i, k); seen[l] != 1 {
				t.Errorf("%s delivered %d times, want 1", l, seen[l])
			}
		}
	}
	if len(seen) != whole || replayed != 5 {
		t.Errorf("%d spooled and %d replayed documents, want %d and 5 (the torn record's events were never stored whole)", len(seen), replayed, whole)
	}
	o, errOut, code := fw(t, nil, "spool", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(o, "clean") {
		t.Errorf("verify after the start: exit %d\n%s%s", code, o, errOut)
	}
}

// TestRunRefusesInvalidConfig: run, collect and the spool commands refuse a
// config that check-config refuses, with the same FILE:LINE: key: reason,
// exit 2, and run starts nothing (no data_dir is created).
func TestRunRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "agent:\n  data_dir: %[1]s/data\nqueue:\n  capacity: 0\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n")
	_, want, code := fw(t, nil, "check-config", "-c", cfg)
	if code != 2 || !strings.HasPrefix(want, cfg+":4: queue.capacity: ") {
		t.Fatalf("check-config: exit %d, %q", code, want)
	}
	for _, args := range [][]string{{"run"}, {"collect"}, {"spool", "verify"}} {
		out, errOut, code := fw(t, nil, append(args, "-c", cfg)...)
		expectFail(t, code, out, errOut, 2, cfg+":4: queue.capacity: ")
		if errOut != want {
			t.Errorf("%v says %q, check-config %q", args, errOut, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("run created its data_dir from a config it refused")
	}
}

// TestCollectMetricsPortBusy: `fileward collect` exits 1 with the cause
// and the fix, as run does, when its metrics port is taken.
func TestCollectMetricsPortBusy(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	es := bulktest.New(1)
	defer es.Close()
	cfg := writeConfig(t, dir, "busy.yaml", "collector:\n  kafka: {brokers: [\""+closedPort(t)+"\"], group_id: g}\n  elasticsearch: {addresses: [\""+es.URL+"\"]}\n  dead_letter: %[1]s/dl.ndjson\nmetrics: {listen: \""+ln.Addr().String()+"\"}\n")
	out, errOut, code := fw(t, nil, "collect", "-c", cfg)
	expectFail(t, code, out, errOut, 1, "fileward collect: metrics.listen "+ln.Addr().String(), "address already in use", "set metrics.listen to a free port")
}
