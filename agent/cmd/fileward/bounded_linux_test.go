package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hugeLine is the size of the eslogger line of TestHugeInputLine: 200 MB.
const hugeLine = 200_000_000

// extraRSSLimit is what a huge line or config may cost over a normal run.
const extraRSSLimit = 64 << 20

// maxRSS is a finished child's peak resident set (rusage ru_maxrss, KiB on
// Linux) in bytes.
func maxRSS(t *testing.T, cmd *exec.Cmd) int64 {
	t.Helper()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage")
	}
	return ru.Maxrss << 10
}

// fwRSS runs the binary to completion and returns stderr, the exit code and
// the peak RSS.
func fwRSS(t *testing.T, args ...string) (string, int, int64) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return errb.String(), code, maxRSS(t, cmd)
}

// TestHugeConfigRefused: a 50 MB config is refused with a clear message,
// without being read whole: check-config and run stay within 64 MiB of a
// run on a small config.
func TestHugeConfigRefused(t *testing.T) {
	dir := t.TempDir()
	small := writeFile(t, filepath.Join(dir, "small.yaml"), "agent: {data_dir: "+dir+"/data}\nmetrics: {listen: \"\"}\n")
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("agent: {data_dir: " + dir + "/data}\n")
	line := "# " + strings.Repeat("padding ", 12) + "\n"
	for n := 0; n < 50_000_000; n += len(line) {
		w.WriteString(line)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, code, base := fwRSS(t, "check-config", "-c", small)
	if code != 0 {
		t.Fatalf("small config: exit %d", code)
	}
	for _, cmd := range []string{"check-config", "run"} {
		stderr, code, rss := fwRSS(t, cmd, "-c", big)
		t.Logf("%s on a 50 MB config: exit %d, max RSS %.1f MiB (small config: %.1f MiB)", cmd, code, float64(rss)/(1<<20), float64(base)/(1<<20))
		if code != 2 || !strings.HasPrefix(stderr, big+": the config file is ") || !strings.Contains(stderr, "at most 1 MiB") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, stderr)
		}
		if rss-base > extraRSSLimit {
			t.Errorf("%s: a 50 MB config cost %.1f MiB more RSS than a small one", cmd, float64(rss-base)/(1<<20))
		}
	}
}

// esloggerStandin writes a stand-in eslogger that prints the bundled
// recording, with, when huge, one 200 MB line first; the line is generated
// through a pipe and never held in memory by the stand-in either.
func esloggerStandin(t *testing.T, dir string, huge bool) string {
	t.Helper()
	abs, _ := filepath.Abs(filepath.Join("demo", "eslogger-demo.ndjson"))
	gen := ""
	if huge {
		gen = fmt.Sprintf("printf '{\"pad\":\"'; head -c %d /dev/zero | tr '\\0' a; printf '\"}\\n'\n", hugeLine)
	}
	p := filepath.Join(dir, "eslogger")
	writeFile(t, p, fmt.Sprintf(`#!/bin/sh
case "$1" in
--list-events) printf '%%s\n' open close create write rename unlink truncate link clone exchangedata setextattr deleteextattr setmode setowner setflags setattrlist setacl utimes exec fork exit; exit 0;;
--help) echo "usage: eslogger [--format json] event ..."; exit 0;;
esac
%scat %s
exec sleep 600
`, gen, abs))
	os.Chmod(p, 0o755)
	return p
}

// runUntil runs the agent on cfg until done(stderr, events) holds, stops it
// and returns its stderr, the events written and the peak RSS.
func runUntil(t *testing.T, cfg, out string, done func(stderr string, events int) bool) (string, int, int64) {
	t.Helper()
	proc := startRun(t, cfg)
	count := func() int {
		b, _ := os.ReadFile(out)
		n := 0
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) > 0 && !bytes.Contains(l, []byte(`"events_lost"`)) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(90 * time.Second)
	for !done(proc.log(), count()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	return proc.log(), count(), maxRSS(t, proc.cmd)
}

// TestHugeInputLine: a 200 MB eslogger line, live from the eslogger child
// and in a replayed file, is skipped and counted as malformed with a clear
// warning, the events after it arrive, and the agent's peak RSS stays
// within 64 MiB of a run without the line.
func TestHugeInputLine(t *testing.T) {
	dir := t.TempDir()
	config := func(name, source string) (string, string) {
		out := filepath.Join(dir, name, "events.ndjson")
		return writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`agent: {data_dir: %[1]s/%[2]s/data, heartbeat: 0s}
source:
  %[3]s
  events: [open, close, create, modify, rename, delete, attrib, exec, write, truncate, link, clone, exchange, setextattr]
filters: {aggregate_window: 0s, exclude_paths: []}
batch: {max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[4]s}}
metrics: {listen: ""}
`, dir, name, source, out)), out
	}
	const warning = "longer than source.max_line_bytes skipped"

	t.Run("eslogger", func(t *testing.T) {
		conv, _, code := fw(t, nil, "convert", "--from", "eslogger", "--host-id", "h", "--host-name", "h", filepath.Join("demo", "eslogger-demo.ndjson"))
		if code != 0 {
			t.Fatalf("convert: exit %d", code)
		}
		want := strings.Count(conv, "\n")
		base, baseOut := config("es-base", "type: eslogger\n  eslogger: {path: "+esloggerStandin(t, dir, false)+"}")
		_, _, baseRSS := runUntil(t, base, baseOut, func(_ string, n int) bool { return n >= want })
		hugeDir := filepath.Join(dir, "huge")
		os.MkdirAll(hugeDir, 0o755)
		huge, hugeOut := config("es-huge", "type: eslogger\n  eslogger: {path: "+esloggerStandin(t, hugeDir, true)+"}")
		stderr, got, rss := runUntil(t, huge, hugeOut, func(s string, n int) bool { return n >= want && strings.Contains(s, warning) })
		t.Logf("eslogger: 200 MB line: max RSS %.1f MiB; without it %.1f MiB; events %d/%d", float64(rss)/(1<<20), float64(baseRSS)/(1<<20), got, want)
		check(t, stderr, got, want, rss, baseRSS, warning)
	})

	t.Run("replay", func(t *testing.T) {
		demo, err := os.ReadFile(filepath.Join("demo", "eslogger-demo.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		plain := filepath.Join(dir, "plain.ndjson")
		writeFile(t, plain, string(demo))
		// The same recording with a 200 MB line of NUL bytes in the middle:
		// a sparse file, so it costs neither memory nor disk to write.
		sparse := filepath.Join(dir, "sparse.ndjson")
		f, err := os.Create(sparse)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(demo, []byte("\n"))
		half := len(lines) / 2
		f.Write(bytes.Join(lines[:half], nil))
		f.WriteString(`{"pad":"`)
		if _, err := f.Seek(hugeLine, 1); err != nil {
			t.Fatal(err)
		}
		f.WriteString("\"}\n")
		f.Write(bytes.Join(lines[half:], nil))
		f.Close()
		end := "replay reached the end"
		base, baseOut := config("rp-base", "type: replay\n  replay: {path: "+plain+"}")
		_, want, baseRSS := runUntil(t, base, baseOut, func(s string, n int) bool { return strings.Contains(s, end) })
		huge, hugeOut := config("rp-huge", "type: replay\n  replay: {path: "+sparse+"}")
		stderr, got, rss := runUntil(t, huge, hugeOut, func(s string, n int) bool { return strings.Contains(s, end) && n >= want })
		t.Logf("replay: 200 MB line: max RSS %.1f MiB; without it %.1f MiB; events %d/%d", float64(rss)/(1<<20), float64(baseRSS)/(1<<20), got, want)
		check(t, stderr, got, want, rss, baseRSS, warning)

		// convert reads the same file within the same bound.
		_, code, convBase := fwRSS(t, "convert", "--from", "eslogger", "--host-id", "h", "--host-name", "h", plain)
		if code != 0 {
			t.Fatalf("convert of the plain recording: exit %d", code)
		}
		stderr, code, convRSS := fwRSS(t, "convert", "--from", "eslogger", "--host-id", "h", "--host-name", "h", sparse)
		t.Logf("convert: 200 MB line: max RSS %.1f MiB; without it %.1f MiB", float64(convRSS)/(1<<20), float64(convBase)/(1<<20))
		if code != 1 || !strings.Contains(stderr, fmt.Sprintf("%s:%d: malformed: line longer than --max-line-bytes (1048576 bytes)", sparse, half+1)) ||
			!strings.Contains(stderr, fmt.Sprintf("convert: %d documents", want)) {
			t.Errorf("convert: exit %d\n%s", code, stderr)
		}
		if convRSS-convBase > extraRSSLimit {
			t.Errorf("convert: the 200 MB line cost %.1f MiB of extra RSS (limit 64 MiB)", float64(convRSS-convBase)/(1<<20))
		}
	})
}

func check(t *testing.T, stderr string, got, want int, rss, baseRSS int64, warning string) {
	t.Helper()
	if !strings.Contains(stderr, warning) || !strings.Contains(stderr, "limit=1048576") {
		t.Errorf("no clear warning about the long line:\n%s", stderr)
	}
	if got != want {
		t.Errorf("%d events after the long line, want %d", got, want)
	}
	if rss-baseRSS > extraRSSLimit {
		t.Errorf("the 200 MB line cost %.1f MiB of extra RSS (limit 64 MiB)", float64(rss-baseRSS)/(1<<20))
	}
}
