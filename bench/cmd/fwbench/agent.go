package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// agentConfig is what the end-to-end rows vary in the agent's config.
type agentConfig struct {
	DataDir string
	Input   string // eslogger NDJSON replayed as fast as possible
	Loop    bool
	// Backfill makes the replay wait for room in the ring (a backfill
	// loses nothing), for the throughput rows: their rate is then what the
	// pipeline sustains, not what is left after ring_full drops. Without
	// it the replay never waits, as live capture (drop_when_full).
	Backfill bool
	SpoolMax string // e.g. "4GiB"
	// SpoolCompression is spool.compression ("": the agent's default).
	SpoolCompression string
	Sinks            string // the YAML list under sinks:, indented by two spaces
	Shutdown         string // agent.shutdown_timeout (default 10s)
}

// yaml renders a complete config in docs/configuration.md's keys: replay
// source that simulates capture (drop_when_full: it never waits for the
// ring, so a stalled pipeline drops ring_full instead of hanging the
// harness) unless Backfill,
// no aggregation (the input repeats the same few events, which the window
// would fold), no heartbeats, spool fsync on an interval, metrics on an
// ephemeral loopback port.
func (c agentConfig) yaml() string {
	if c.SpoolMax == "" {
		c.SpoolMax = "8GiB"
	}
	if c.Shutdown == "" {
		c.Shutdown = "10s"
	}
	compression := ""
	if c.SpoolCompression != "" {
		compression = "\n  compression: " + c.SpoolCompression
	}
	return fmt.Sprintf(`agent:
  name: fwbench
  host_id: fwbench-host
  data_dir: %q
  shutdown_timeout: %s
  heartbeat: 0s
source:
  type: replay
  replay: { path: %q, format: eslogger, rate: 0, loop: %v, drop_when_full: %v }
filters:
  aggregate_window: 0s
queue: { capacity: 65536 }
batch: { max_events: 2048, max_bytes: 1MiB, max_wait: 1s }
spool:
  max_bytes: %s
  segment_bytes: 16MiB
  when_full: drop_oldest
  fsync: interval
  fsync_interval: 1s%s
sinks:
%s
metrics: { listen: "127.0.0.1:0" }
`, c.DataDir, c.Shutdown, c.Input, c.Loop, !c.Backfill, c.SpoolMax, compression, c.Sinks)
}

// agentProc is a running `fileward run` child.
type agentProc struct {
	cmd     *exec.Cmd
	start   time.Time
	metrics string // http://host:port/metrics
	stderr  *syncBuffer
	done    chan struct{}
	waitErr error
	hwm     *hwmSampler
}

// hwmSampler follows a child's VmHWM in /proc every 50 ms until it exits.
// It exists because ru_maxrss of a child started from Go is not the
// child's own: exec records the hiwater RSS of the mm it replaces, and Go
// starts children with CLONE_VM|CLONE_VFORK, so the child's ru_maxrss is
// at least this harness's RSS (hundreds of MiB with kfake holding a
// million records). VmHWM belongs to the new mm and is exact.
type hwmSampler struct {
	pid  int
	peak atomic.Int64
}

func newHWMSampler(pid int, done <-chan struct{}) *hwmSampler {
	s := &hwmSampler{pid: pid}
	s.sample()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *hwmSampler) sample() {
	if _, hwm, err := procStatus(s.pid); err == nil && hwm > s.peak.Load() {
		s.peak.Store(hwm)
	}
}

// Peak is the highest VmHWM seen, in bytes.
func (s *hwmSampler) Peak() int64 { s.sample(); return s.peak.Load() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var globalSeq = regexp.MustCompile(`"global_seq_num": ?[0-9]+`)

var metricsLine = regexp.MustCompile(`metrics on (http://[^ ]+/metrics)`)

// startAgent writes cfg to dir/config.yaml and starts bin with it. It
// returns once the agent has printed where its metrics are.
//
// FWBENCH_SPOOL_COMPRESSION, when set, is the spool.compression of these
// agents (the pipeline and kafka rows), for comparing codecs on the same
// rows; unset, the agent's default applies.
func (h *harness) startAgent(ctx context.Context, bin string, cfg agentConfig, env ...string) (*agentProc, error) {
	if c := os.Getenv("FWBENCH_SPOOL_COMPRESSION"); c != "" {
		cfg.SpoolCompression = c
	}
	return launchAgent(ctx, bin, cfg.DataDir, cfg.yaml(), 30*time.Second, env...)
}

// launchAgent writes yaml to dataDir/config.yaml, starts bin run with it
// and waits up to wait for the agent to print where its metrics are.
func launchAgent(ctx context.Context, bin, dataDir, yaml string, wait time.Duration, env ...string) (*agentProc, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	a := &agentProc{stderr: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "run", "-c", path)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stderr = a.stderr
	a.start = time.Now()
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.done) }()
	a.hwm = newHWMSampler(a.cmd.Process.Pid, a.done)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if m := metricsLine.FindStringSubmatch(a.stderr.String()); m != nil {
			a.metrics = m[1]
			return a, nil
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("fileward run exited at start (%v):\n%s", a.waitErr, tail(a.stderr.String(), 2000))
		case <-ctx.Done():
			a.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.kill()
	return nil, fmt.Errorf("fileward run printed no metrics address in %s:\n%s", wait, tail(a.stderr.String(), 2000))
}

func (a *agentProc) kill() {
	a.cmd.Process.Kill()
	<-a.done
}

// Usage is what getrusage says about a finished child.
type Usage struct {
	CPU    time.Duration // user + system
	User   time.Duration
	Sys    time.Duration
	MaxRSS int64 // bytes: peak VmHWM (see hwmSampler), not ru_maxrss
	Wall   time.Duration
}

func usageOf(ps *os.ProcessState, wall time.Duration) Usage {
	u := Usage{User: ps.UserTime(), Sys: ps.SystemTime(), Wall: wall}
	u.CPU = u.User + u.Sys
	return u
}

// stop sends SIGTERM, waits for a clean exit and returns the child's usage.
func (a *agentProc) stop() (Usage, error) {
	wall := time.Since(a.start)
	peak := a.hwm.Peak()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(60 * time.Second):
		a.kill()
		return Usage{}, fmt.Errorf("fileward run did not stop within 60s of SIGTERM:\n%s", tail(a.stderr.String(), 2000))
	}
	u := usageOf(a.cmd.ProcessState, wall)
	u.MaxRSS = max(peak, a.hwm.peak.Load())
	if a.waitErr != nil {
		return u, fmt.Errorf("fileward run: %v:\n%s", a.waitErr, tail(a.stderr.String(), 2000))
	}
	return u, nil
}

// metric returns the sum of the samples of a metric whose label set
// contains every one of labels (e.g. `sink="local"`).
func (a *agentProc) metric(name string, labels ...string) (float64, error) {
	req, err := http.NewRequest(http.MethodGet, a.metrics, nil)
	if err != nil {
		return 0, err
	}
	// Uncompressed: the rows poll every 50 ms, and gzip-encoding each
	// answer would charge the measured agent for the harness's polling
	// (2% of its CPU in the kafka row).
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseMetric(resp.Body, name, labels...)
}

func parseMetric(r io.Reader, name string, labels ...string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not exported", name, labels)
	}
	return sum, sc.Err()
}

// waitFor polls count until it reaches n, the agent exits, or the timeout
// passes. It returns the time at which count first reached n.
func (a *agentProc) waitFor(ctx context.Context, what string, n float64, timeout time.Duration, count func() (float64, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last float64
	for {
		v, err := count()
		if err == nil {
			last = v
			if v >= n {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %.0f of %.0f after %v (last error %v):\n%s", what, last, n, timeout, err, tail(a.stderr.String(), 1500))
		}
		select {
		case <-a.done:
			return time.Time{}, fmt.Errorf("%s: fileward run exited (%v) at %.0f of %.0f:\n%s", what, a.waitErr, last, n, tail(a.stderr.String(), 2000))
		case <-ctx.Done():
			a.kill()
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// procStatus reads VmRSS and VmHWM of pid from /proc, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return rss, hwm, nil
}

// demoInput is the bundled eslogger recording (36 file events and 2 execs;
// every line maps to one ECS document).
func (h *harness) demoInput() string {
	return filepath.Join(h.root, "agent", "cmd", "fileward", "demo", "eslogger-demo.ndjson")
}

// eslInput writes (once) an eslogger NDJSON file of n lines by repeating
// the demo recording with global_seq_num rewritten to the line number, so
// that every line is a distinct event: `fileward convert` derives event.id
// from it (the replay source numbers events itself anyway).
func (h *harness) eslInput(n int) (string, error) {
	path := filepath.Join(h.work, fmt.Sprintf("input-%d.eslogger.ndjson", n))
	if fileExists(path) {
		return path, nil
	}
	src, err := os.ReadFile(h.demoInput())
	if err != nil {
		return "", err
	}
	lines := bytes.SplitAfter(bytes.TrimRight(src, "\n"), []byte("\n"))
	for i := range lines {
		if !bytes.HasSuffix(lines[i], []byte("\n")) {
			lines[i] = append(lines[i], '\n')
		}
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var num []byte
	for i := 0; i < n; i++ {
		line := lines[i%len(lines)]
		loc := globalSeq.FindIndex(line)
		if loc == nil {
			f.Close()
			return "", fmt.Errorf("%s line %d has no global_seq_num", h.demoInput(), i%len(lines)+1)
		}
		w.Write(line[:loc[0]])
		num = strconv.AppendInt(append(num[:0], `"global_seq_num": `...), int64(i), 10)
		w.Write(num)
		w.Write(line[loc[1]:])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

// smallESL are eslogger lines that map to the smallest documents the agent
// writes: open, create and close events with a plain path, no stat, and a
// process without code signing or parent. Their ECS documents are about
// 1.1 KB, most of it the constant host, agent, event and data_stream parts.
var smallESL = []string{
	`{"version": 10, "seq_num": 1, "global_seq_num": 0, "time": "2026-11-01T12:00:00.000000307Z", "mach_time": 1, "event_type": 10, "action_type": 1, "event": {"open": {"fflag": 1, "file": {"path": "/var/db/app/cache-0001.db", "path_truncated": false}}}, "process": {"audit_token": [501, 501, 20, 501, 20, 651, 100017, 91040], "executable": {"path": "/usr/bin/sqlite3", "path_truncated": false}}}`,
	`{"version": 10, "seq_num": 2, "global_seq_num": 0, "time": "2026-11-01T12:00:00.000100307Z", "mach_time": 2, "event_type": 13, "action_type": 1, "event": {"create": {"destination_type": 0, "destination": {"existing_file": {"path": "/tmp/app/job-0002.tmp", "path_truncated": false}}}}, "process": {"audit_token": [501, 501, 20, 501, 20, 652, 100017, 91041], "executable": {"path": "/usr/bin/make", "path_truncated": false}}}`,
	`{"version": 10, "seq_num": 3, "global_seq_num": 0, "time": "2026-11-01T12:00:00.000200307Z", "mach_time": 3, "event_type": 12, "action_type": 1, "event": {"close": {"modified": false, "target": {"path": "/var/db/app/cache-0001.db", "path_truncated": false}}}, "process": {"audit_token": [501, 501, 20, 501, 20, 651, 100017, 91040], "executable": {"path": "/usr/bin/sqlite3", "path_truncated": false}}}`,
}

// eslSmallInput writes (once) an n-line eslogger file of smallESL, with
// global_seq_num rewritten to the line number as in eslInput.
func (h *harness) eslSmallInput(n int) (string, error) {
	path := filepath.Join(h.work, fmt.Sprintf("input-small-%d.eslogger.ndjson", n))
	if fileExists(path) {
		return path, nil
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var num []byte
	for i := 0; i < n; i++ {
		line := []byte(smallESL[i%len(smallESL)])
		loc := globalSeq.FindIndex(line)
		w.Write(line[:loc[0]])
		num = strconv.AppendInt(append(num[:0], `"global_seq_num": `...), int64(i), 10)
		w.Write(num)
		w.Write(line[loc[1]:])
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

// ecsInput writes (once) the ECS NDJSON that `fileward convert` makes of
// the n-line eslogger input: the same documents the agent ships, for the
// bare-client baselines and the peers.
func (h *harness) ecsInput(ctx context.Context, n int) (string, error) {
	in, err := h.eslInput(n)
	if err != nil {
		return "", err
	}
	return h.ecsInputOf(ctx, in, n)
}

// ecsInputOf writes (once) `fileward convert` of the n-line eslogger file
// in, next to it.
func (h *harness) ecsInputOf(ctx context.Context, in string, n int) (string, error) {
	path := strings.TrimSuffix(in, ".eslogger.ndjson") + ".ecs.ndjson"
	if fileExists(path) {
		return path, nil
	}
	out, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, h.fileward, "convert", "--from", "eslogger", "--host-id", "fwbench-host", "--host-name", "fwbench", in)
	var stderr bytes.Buffer
	cmd.Stdout = out
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fileward convert: %w: %s", err, tail(stderr.String(), 500))
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	got, err := countLines(path + ".tmp")
	if err != nil {
		return "", err
	}
	if got != n {
		return "", fmt.Errorf("fileward convert made %d documents of %d lines", got, n)
	}
	return path, os.Rename(path+".tmp", path)
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n := 0
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte("\n"))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
