package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testbin"
	"github.com/fileward/fileward/internal/testfixtures"
)

// binary is the fileward executable built once for the process-level tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fileward-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Tests run the binary as an unprivileged user too.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fileward")
	if err := testbin.Build(binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fw runs the binary and returns stdout, stderr and the exit code.
func fw(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := fw(t, nil, "version")
	if code != 0 || !strings.Contains(out, "ecs 8.") || !strings.Contains(out, "go go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, errOut, code := fw(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestCheckConfig(t *testing.T) {
	out, errOut, code := fw(t, nil, "check-config", "-c", "../../../config.example.yaml")
	if code != 0 || out != "ok\n" {
		t.Fatalf("example config: %d %q %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent:\n  data_dir: ./var\n  colour: blue\nbatch:\n  max_wait: 5 parsecs\nsinks:\n  - name: siem\n    type: elasticsearch\n    elasticsearch:\n      addresses: [\"http://127.0.0.1:9200\"]\n      api_key: ${FILEWARD_TEST_SURELY_UNSET}\n"), 0o644)
	out, errOut, code = fw(t, nil, "check-config", "-c", bad)
	if code != 2 || out != "" {
		t.Fatalf("bad config: exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	want := []string{bad + ":3: agent.colour:", bad + ":5: batch.max_wait:", bad + ":11: sinks[0].elasticsearch.api_key:"}
	if len(lines) != 3 {
		t.Fatalf("want 3 error lines, got:\n%s", errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	// The same config makes run refuse to start with exit 2.
	if _, _, code := fw(t, nil, "run", "-c", bad); code != 2 {
		t.Errorf("run with a bad config exited %d, want 2", code)
	}
}

// required lists the fields docs/ecs.md requires on every file event.
var required = []string{
	"@timestamp", "event.kind", "event.category", "event.type", "event.action", "event.id", "event.sequence",
	"event.module", "event.dataset", "event.provider", "event.created",
	"file.path", "file.name", "file.directory",
	"process.pid", "process.executable", "process.name", "process.entity_id",
	"host.id", "host.name", "host.os.type", "agent.type", "agent.version", "agent.id", "ecs.version",
}

func lookup(d map[string]any, path string) (any, bool) {
	if v, ok := d[path]; ok {
		return v, true
	}
	var cur any = d
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestConvertFixtures(t *testing.T) {
	files := testfixtures.EsloggerFiles(t)
	args := append([]string{"convert", "--from", "eslogger", "--host-name", "mac-1", "--host-id", "HID-1"}, files...)
	out1, errOut, code := fw(t, nil, args...)
	if code != 0 {
		t.Fatalf("convert exited %d: %s", code, errOut)
	}
	out2, _, _ := fw(t, nil, args...)
	if out1 != out2 {
		t.Fatal("two conversions of the same input differ")
	}
	// fork and exit are process events: skipped and reported, not malformed.
	if !strings.Contains(errOut, "fork.macos26.v10.ndjson:1: skipped") || !strings.Contains(errOut, "exit.macos15.v9.ndjson:1: skipped") {
		t.Errorf("skipped lines not reported: %s", errOut)
	}
	actions := map[string]int{}
	esfNames := map[string]int{} // "<esf event>→<event.action>"
	sc := bufio.NewScanner(strings.NewReader(out1))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var d map[string]any
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("doc %d: %v", n, err)
		}
		for _, f := range required {
			if _, ok := lookup(d, f); !ok {
				t.Errorf("doc %d (%v) lacks %s", n, d["event"].(map[string]any)["action"], f)
			}
		}
		a, _ := lookup(d, "event.action")
		actions[a.(string)]++
		if e, ok := lookup(d, "fileward.esf.event"); ok {
			esfNames[e.(string)+"→"+a.(string)]++
		}
		if h, _ := lookup(d, "host.name"); h != "mac-1" {
			t.Errorf("host.name %v", h)
		}
		if p, _ := lookup(d, "event.provider"); p != "endpoint_security" {
			t.Errorf("provider %v", p)
		}
		if a == "rename" {
			if _, ok := lookup(d, "file.Ext.original.path"); !ok {
				t.Errorf("rename without file.Ext.original.path")
			}
		}
		if a == "open" {
			if _, ok := lookup(d, "fileward.access"); !ok {
				t.Errorf("open without fileward.access")
			}
		}
		if p, _ := lookup(d, "file.path"); p == "/private/etc/pam.d/login" {
			if _, ok := lookup(d, "file.extension"); ok {
				t.Errorf("/private/etc/pam.d/login has an extension")
			}
		}
	}
	// 36 synthesized file events and 2 real exec lines.
	if n != 38 {
		t.Errorf("converted %d lines, want 38", n)
	}
	for _, a := range []string{"open", "close", "modification", "creation", "deletion", "rename", "attributes_modification",
		"extended_attributes_modification", "extended_attributes_delete", "exec"} {
		if actions[a] == 0 {
			t.Errorf("no %s event among the fixtures' conversions (%v)", a, actions)
		}
	}
	// Defend's spellings; the ESF name stays in fileward.esf.event.
	for _, m := range []string{"truncate→modification", "link→creation", "clone→creation", "exchangedata→modification", "deleteextattr→extended_attributes_delete", "setextattr→extended_attributes_modification"} {
		if esfNames[m] == 0 {
			t.Errorf("no %s among the fixtures' conversions (%v)", m, esfNames)
		}
	}
}

func TestConvertReportsMalformedLines(t *testing.T) {
	good, _ := os.ReadFile(testfixtures.EsloggerFiles(t)[0])
	in := append(append([]byte("{\"oops\n"), good...), []byte("[1,2]\n")...)
	out, errOut, code := fw(t, in, "convert", "--from", "eslogger", "--host-id", "x", "--host-name", "y")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "-:1: malformed") || !strings.Contains(errOut, "malformed") {
		t.Errorf("stderr %q", errOut)
	}
	if strings.Count(out, "\n") == 0 {
		t.Error("good lines were not converted")
	}
}

func TestConvertECSRoundTrip(t *testing.T) {
	args := append([]string{"convert", "--from", "eslogger", "--host-name", "h", "--host-id", "i"}, testfixtures.EsloggerFiles(t)...)
	ecs, _, code := fw(t, nil, args...)
	if code != 0 {
		t.Fatal(code)
	}
	again, errOut, code := fw(t, []byte(ecs), "convert", "--from", "ecs", "--host-name", "h", "--host-id", "i", "--host-os-type", "macos")
	if code != 0 {
		t.Fatalf("ecs → ecs exited %d: %s", code, errOut)
	}
	if again != ecs {
		a, b := strings.Split(ecs, "\n"), strings.Split(again, "\n")
		for i := range a {
			if i < len(b) && a[i] != b[i] {
				t.Fatalf("line %d differs:\n%s\n%s", i+1, a[i], b[i])
			}
		}
		t.Fatal("ecs round trip differs")
	}
}

// TestRunDrainsOnSIGTERM runs the agent on a finite replay into the file
// sink, stops it with SIGTERM and checks that every event was delivered and
// the exit code is 0.
func TestRunDrainsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	var buf bytes.Buffer
	for _, f := range testfixtures.EsloggerFiles(t) {
		b, _ := os.ReadFile(f)
		buf.Write(b)
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source: {type: replay, replay: {path: %[2]s}}
filters: {aggregate_window: 0s}
batch: {max_wait: 10s}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out/events.ndjson}}
metrics: {listen: "127.0.0.1:0"}
`, dir, in), 0o644)
	proc := startRun(t, cfg)
	// Wait until the replay has finished, then stop: the open batch (max_wait 10s)
	// must be flushed by the drain, not by its timer.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(proc.log(), "replay reached the end") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	err := proc.stop()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	if !strings.Contains(proc.log(), "events go to: local") {
		t.Errorf("start-up line missing:\n%s", proc.log())
	}
	data, err := os.ReadFile(filepath.Join(dir, "out", "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 38 {
		t.Fatalf("file sink has %d events, want 38\n%s", n, proc.log())
	}
}

// TestEsloggerRunnerMatchesConvert runs the agent with source.type eslogger
// against a stand-in executable that prints the bundled recording (the
// fixtures), and checks that every event arrives as the same ECS document
// `fileward convert` gives for it. event.created (receive time) differs by
// nature; agent.id (this installation's id) and host.os (the stand-in runs
// on Linux, while convert labels eslogger input macOS) are set aside too.
func TestEsloggerRunnerMatchesConvert(t *testing.T) {
	dir := t.TempDir()
	stream := filepath.Join("demo", "eslogger-demo.ndjson")
	abs, _ := filepath.Abs(stream)
	standin := filepath.Join(dir, "eslogger")
	os.WriteFile(standin, fmt.Appendf(nil, `#!/bin/sh
case "$1" in
--list-events) printf '%%s\n' open close create write rename unlink truncate link clone exchangedata setextattr deleteextattr setmode setowner setflags setattrlist setacl utimes exec fork exit; exit 0;;
--help) echo "usage: eslogger [--format json] event ..."; exit 0;;
esac
cat %s
exec sleep 600
`, abs), 0o755)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s, host_id: HID-1, name: mac-1}
source:
  type: eslogger
  events: [open, close, create, modify, rename, delete, attrib, exec, write, truncate, link, clone, exchange, setextattr]
  eslogger: {path: %[2]s}
filters: {aggregate_window: 0s, exclude_paths: []}
batch: {max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out/events.ndjson}}
metrics: {listen: ""}
`, dir, standin), 0o644)
	want, errOut, code := fw(t, nil, "convert", "--from", "eslogger", "--host-id", "HID-1", "--host-name", "mac-1", stream)
	if code != 0 {
		t.Fatalf("convert: %d %s", code, errOut)
	}
	wantN := strings.Count(want, "\n")

	proc := startRun(t, cfg)
	out := filepath.Join(dir, "out", "events.ndjson")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(out); err == nil && bytes.Count(b, []byte("\n")) >= wantN {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	got, _ := os.ReadFile(out)
	norm := func(s string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			var d map[string]any
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			if a, _ := lookup(d, "event.action"); a == "events_lost" {
				continue // the recording's global_seq_num jumps between captures: a seq_gap report
			}
			delete(d["event"].(map[string]any), "created")
			delete(d["agent"].(map[string]any), "id")
			delete(d["host"].(map[string]any), "os")
			b, _ := json.Marshal(d)
			lines = append(lines, string(b))
		}
		return lines
	}
	g, w := norm(string(got)), norm(want)
	if len(g) != len(w) {
		t.Fatalf("agent wrote %d documents, convert %d\n%s", len(g), len(w), proc.log())
	}
	for i := range w {
		if g[i] != w[i] {
			t.Errorf("document %d differs:\nagent:   %s\nconvert: %s", i+1, g[i], w[i])
		}
	}
	// And byte for byte before the fields set aside: same field order.
	var gl []string
	for _, l := range strings.Split(string(got), "\n") {
		if !strings.Contains(l, `"action":"events_lost"`) {
			gl = append(gl, l)
		}
	}
	wl := strings.Split(want, "\n")
	for i := range wl[:wantN] {
		cut := func(s string) string { return s[:strings.Index(s, `"created":`)] }
		if cut(gl[i]) != cut(wl[i]) {
			t.Errorf("document %d: bytes before event.created differ", i+1)
		}
	}
}

// TestRunFallsBackToDemo: with source.type auto and capture impossible (here:
// a mark on a path that does not exist), the agent says so and replays the
// bundled recording, and include rules meant for live capture do not hide it.
func TestRunFallsBackToDemo(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source: {type: auto, fanotify: {marks: ["%[1]s/does-not-exist"]}}
filters: {include_paths: ["/tmp/"]}
batch: {max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[1]s/events.ndjson}}
metrics: {listen: ""}
`, dir), 0o644)
	// auto tries eBPF first: have the kernel refuse it (where it would
	// work), so that fanotify, whose mark does not exist, is tried too.
	proc := startRun(t, cfg, refuseEBPFEnv+"=1")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join(dir, "events.ndjson")); bytes.Count(b, []byte("\n")) >= 5 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := proc.signal(syscall.SIGINT); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	if !strings.Contains(proc.log(), "replaying the bundled demo stream instead") {
		t.Errorf("no fallback notice:\n%s", proc.log())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "events.ndjson"))
	if n := bytes.Count(b, []byte("\n")); n < 5 {
		t.Fatalf("demo wrote %d events\n%s", n, proc.log())
	}
}

// TestSpoolFullLossReachesTheStream: with one sink down, a tiny spool under
// drop_oldest drops events, and the loss travels in the stream as
// events_lost documents (reason spool_full) that the healthy file sink
// receives. Their cumulative total equals exactly what /metrics counts, and the
// spool stays within max_bytes + segment_bytes at every sample, not just at
// the end.
func TestSpoolFullLossReachesTheStream(t *testing.T) {
	const n = 20000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s, shutdown_timeout: 1s}
source: {type: replay, replay: {path: %[2]s, format: ecs, rate: 20000}}
filters: {aggregate_window: 0s}
batch: {max_events: 64, max_bytes: 64KiB, max_wait: 20ms}
spool: {max_bytes: 512KiB, segment_bytes: 128KiB, when_full: drop_oldest}
sinks:
  - {name: local, type: file, file: {path: %[1]s/events.ndjson}}
  - name: down
    type: kafka
    kafka: {brokers: ["127.0.0.1:1"], timeout: 200ms}
    backoff: {initial: 50ms, max: 200ms}
metrics: {listen: "127.0.0.1:0"}
`, dir, in), 0o644)
	proc := startRun(t, cfg)
	const bound = 512<<10 + 128<<10
	spoolBytes := func() int64 {
		var total int64
		filepath.Walk(filepath.Join(dir, "data", "spool"), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && strings.HasSuffix(fi.Name(), ".seg") {
				total += fi.Size()
			}
			return nil
		})
		return total
	}
	streamLost := func() float64 {
		var lost float64
		b, _ := os.ReadFile(filepath.Join(dir, "events.ndjson"))
		for _, l := range bytes.Split(b, []byte("\n")) {
			if !bytes.Contains(l, []byte(`"events_lost"`)) {
				continue
			}
			var d map[string]any
			if err := json.Unmarshal(l, &d); err != nil {
				continue // a line still being written
			}
			// With two sinks, a report the down sink's drop_oldest
			// dropped unread is reported again, and the file sink,
			// which had it already, sees its count twice
			// (docs/spool.md). The cumulative total cannot double:
			// it is what must equal /metrics.
			if r, _ := lookup(d, "fileward.lost.reason"); r == "spool_full" {
				if v, ok := lookup(d, "fileward.lost.total.spool_full"); ok {
					lost = max(lost, v.(float64))
				}
			}
		}
		return lost
	}
	deadline := time.Now().Add(60 * time.Second)
	var addr string
	var samples int
	var maxSpool int64
	for !strings.Contains(proc.log(), "replay reached the end of its input") {
		if time.Now().After(deadline) {
			t.Fatalf("replay did not finish\n%s", proc.log())
		}
		if m := metricsAtRe.FindStringSubmatch(proc.log()); m != nil {
			addr = m[1]
		}
		samples++
		maxSpool = max(maxSpool, spoolBytes())
		time.Sleep(20 * time.Millisecond)
	}
	if addr == "" {
		t.Fatalf("no metrics address in the log\n%s", proc.log())
	}
	// The replay is over: once the pipeline has emptied the ring the
	// counter stops moving, and the stream's loss reports catch up with it
	// and stay equal (ten samples in a row).
	var metric, lost float64
	for agree := 0; agree < 10; {
		samples++
		maxSpool = max(maxSpool, spoolBytes())
		page := httpGet(t, "http://"+addr+"/metrics")
		prev := metric
		metric = metricValue(page, `fileward_events_dropped_total{reason="spool_full"}`)
		lost = streamLost()
		if metric > 0 && lost == metric && metric == prev {
			agree++
		} else {
			agree = 0
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	t.Logf("spool_full: %v in /metrics, %v in the stream; spool at most %d bytes over %d samples (bound %d)", metric, lost, maxSpool, samples, bound)
	if metric == 0 || lost != metric {
		t.Fatalf("the stream reports %v events lost to spool_full, /metrics %v: they must agree exactly\n%s", lost, metric, proc.log())
	}
	if final := streamLost(); final != metric {
		t.Errorf("after the stop the stream reports %v, /metrics said %v", final, metric)
	}
	if maxSpool > bound {
		t.Errorf("the spool held %d bytes at one sample, over max_bytes + segment_bytes (%d)", maxSpool, bound)
	}
}
