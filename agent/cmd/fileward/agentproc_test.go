package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
)

// agentWait is how long the process tests wait for a line of the agent's
// log: generous, for a loaded machine; a test that gets its line goes on at
// once.
const agentWait = 60 * time.Second

// agentProc is a `fileward run` that a test started: its stderr as it
// grows, and its exit once it has ended. It is killed at the test's end if
// it is still running.
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testtool.SyncBuffer
	done   chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's result, set before done is closed
}

// startRun starts `fileward run -c cfg`, with env added to this process's
// environment.
func startRun(t *testing.T, cfg string, env ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(binary, "run", "-c", cfg)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	a := &agentProc{t: t, cmd: cmd, stderr: &testtool.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-a.done
	})
	return a
}

// log is the agent's stderr so far.
func (a *agentProc) log() string { return a.stderr.String() }

// exited reports whether the agent has ended, and how (cmd.Wait's error).
func (a *agentProc) exited() (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	default:
		return false, nil
	}
}

// waitLog waits until s appears in the agent's stderr at or after byte
// offset after, and returns the offset just past it. The test fails if the
// agent exits first, or after agentWait.
func (a *agentProc) waitLog(s string, after int) int {
	a.t.Helper()
	deadline := time.Now().Add(agentWait)
	for {
		log := a.log()
		if i := strings.Index(log[after:], s); i >= 0 {
			return after + i + len(s)
		}
		if ok, err := a.exited(); ok {
			a.t.Fatalf("the agent exited (%v) waiting for %q:\n%s", err, s, log)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no %q in the log:\n%s", s, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricsURL waits for the agent's "metrics on http://…" start-up line
// (metrics.listen set) and returns the address of its /metrics page.
func (a *agentProc) metricsURL() string {
	a.t.Helper()
	const mark = "metrics on "
	at := a.waitLog(mark+"http://", 0) - len("http://")
	return strings.Fields(a.log()[at:])[0]
}

// signal sends sig to the agent (unless it has exited) and waits for its
// exit: cmd.Wait's error. The test fails if it has not exited after
// agentWait.
func (a *agentProc) signal(sig os.Signal) error {
	a.t.Helper()
	if ok, err := a.exited(); ok {
		return err
	}
	a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
		return a.err
	case <-time.After(agentWait):
		a.t.Fatalf("the agent did not exit on %v:\n%s", sig, a.log())
		return nil
	}
}

// stop ends the agent with SIGTERM, as a service manager does, and returns
// cmd.Wait's error.
func (a *agentProc) stop() error {
	a.t.Helper()
	return a.signal(syscall.SIGTERM)
}

// startAgent starts `fileward run -c cfg` with extra environment, waits for
// its start-up line ("events go to") and returns its stderr and a stop
// function: SIGTERM, then wait; an exit other than 0 fails the test. stop
// also runs at the test's end; it acts once.
func startAgent(t *testing.T, cfg string, env ...string) (*testtool.SyncBuffer, func()) {
	t.Helper()
	a := startRun(t, cfg, env...)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := a.stop(); err != nil {
			t.Errorf("agent: %v\n%s", err, a.log())
		}
	}
	t.Cleanup(stop)
	a.waitLog("events go to", 0)
	return a.stderr, stop
}

// esReplayConfig is a `fileward run` config for the tests of delivery to
// Elasticsearch: a replay of an ECS file (format ecs) into one elasticsearch
// sink named es (a bulktest server), with short timeouts and backoffs, no
// heartbeats and no aggregation.
type esReplayConfig struct {
	dataDir  string // agent.data_dir
	shutdown string // agent.shutdown_timeout
	in       string // source.replay.path
	rate     int    // source.replay.rate (0: not set)
	esURL    string // the sink's address
	// maxEvents is batch.max_events; batch.max_bytes is 64KiB and
	// batch.max_wait 20ms.
	maxEvents int
	metrics   string // metrics.listen
	extra     string // more top-level YAML (queue, spool, dead_letter)
}

// write writes the config at path.
func (c esReplayConfig) write(t *testing.T, path string) {
	t.Helper()
	rate := ""
	if c.rate != 0 {
		rate = fmt.Sprintf(", rate: %d", c.rate)
	}
	body := fmt.Sprintf(`agent: {data_dir: %s, heartbeat: 0s, shutdown_timeout: %s}
source: {type: replay, replay: {path: %s, format: ecs%s}}
filters: {aggregate_window: 0s}
batch: {max_events: %d, max_bytes: 64KiB, max_wait: 20ms}
sinks:
  - name: es
    type: elasticsearch
    elasticsearch: {addresses: [%s], timeout: 2s}
    backoff: {initial: 50ms, max: 200ms}
metrics: {listen: %q}
%s`, c.dataDir, c.shutdown, c.in, rate, c.maxEvents, c.esURL, c.metrics, c.extra)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
