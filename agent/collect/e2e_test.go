//go:build !mutation

package collect

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks"
	kafkasink "github.com/fileward/fileward/sinks/kafka"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestEndToEndCrash is the end-to-end scenario: the agent's Kafka
// sink writes 50k events into kfake; `fileward collect`, a real child
// process built from this tree, moves them into bulktest; it is SIGKILLed
// mid-run and restarted; every event.id ends up in the index exactly once.
//
// Under -race the test process itself (kfake, bulktest and the producing
// Kafka sink, all instrumented) is about 30 times slower, so the run moves
// 10k events instead of 50k; `go test ./agent/collect` (no -race) moves 50k.
func TestEndToEndCrash(t *testing.T) {
	total := 50_000
	if raceEnabled {
		total = 10_000
	}
	t0 := time.Now()
	dir := t.TempDir()
	bin := buildFileward(t)
	t.Logf("go build: %v", time.Since(t0).Round(time.Millisecond))
	h := newHarness(t, 4)
	brokers := h.cluster.ListenAddrs()
	metricsAddr := freePort(t)
	cfgPath := filepath.Join(dir, "collector.yaml")
	cfg := fmt.Sprintf(`agent:
  data_dir: %[1]s/var
metrics:
  listen: %[2]s
collector:
  kafka:
    brokers: [%[3]q]
    topic: %[4]s
    group_id: fileward-collector
  elasticsearch:
    addresses: [%[5]q]
    data_stream: logs-fileward.file-default
    setup_template: true
    timeout: 10s
  batch_events: 1000
  batch_wait: 100ms
  backoff: { initial: 20ms, max: 500ms, multiplier: 2, jitter: 0.2 }
  dead_letter: %[1]s/var/dead-letter/collector.ndjson
`, dir, metricsAddr, brokers[0], topic, h.bulk.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// The agent side: the Kafka sink, as `fileward run` uses it.
	ks, err := kafkasink.New(kafkasink.Options{Brokers: brokers, Topic: topic, Compression: "snappy", BatchEvents: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close(context.Background())
	events := sinktest.Events("e2e", total, 8)
	sendAll := func(evs []sinks.Event) {
		for len(evs) > 0 {
			k := min(len(evs), 2048)
			res, err := ks.Send(context.Background(), &sinks.Batch{Events: evs[:k]})
			if err != nil || len(res.Failures) > 0 {
				t.Errorf("kafka sink: %v %v", err, res.Failures)
				return
			}
			evs = evs[k:]
		}
	}
	t1 := time.Now()
	sendAll(events[:total/2])
	t.Logf("produced %d events in %v", total/2, time.Since(t1).Round(time.Millisecond))
	produced := make(chan struct{})
	go func() { defer close(produced); sendAll(events[total/2:]) }() // keeps producing while the collector runs

	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	startChild := func() *exec.Cmd {
		cmd := exec.Command(bin, "collect", "-c", cfgPath)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	dumpLog := func() {
		b, _ := os.ReadFile(logf.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("collector log tail:\n%s", b)
	}

	start := time.Now()
	child := startChild()
	// SIGKILL once a fair part is indexed (mid-batch: no clean shutdown).
	if !waitFor(30*time.Second, func() bool { return h.bulk.Count(ds) >= total/4 }) {
		_ = child.Process.Kill()
		dumpLog()
		t.Fatalf("only %d indexed before the kill point", h.bulk.Count(ds))
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	atKill := h.bulk.Count(ds)
	t.Logf("SIGKILL after %v with %d indexed", time.Since(start).Round(time.Millisecond), atKill)

	child = startChild()
	defer func() { _ = child.Process.Kill(); _, _ = child.Process.Wait() }()
	<-produced
	if !waitFor(60*time.Second, func() bool { return h.bulk.Count(ds) >= total }) {
		dumpLog()
		t.Fatalf("index holds %d of %d after restart", h.bulk.Count(ds), total)
	}
	t.Logf("all %d indexed after %v", total, time.Since(start).Round(time.Millisecond))

	// /metrics and /healthz of the running collector.
	body := httpGet(t, "http://"+metricsAddr+"/metrics")
	if !strings.Contains(body, "fileward_collector_lag_messages") || !strings.Contains(body, "fileward_collector_events_acked_total") {
		t.Fatalf("/metrics lacks collector metrics:\n%.2000s", body)
	}
	if hb := httpGet(t, "http://"+metricsAddr+"/healthz"); !strings.HasPrefix(hb, "ok") {
		t.Fatalf("/healthz: %q", hb)
	}

	// SIGHUP (logrotate) does not stop it: it says it does not reload.
	if err := child.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(logf.Name())
		return bytes.Contains(b, []byte("does not reload its config"))
	}) {
		dumpLog()
		t.Fatal("no word from the collector after SIGHUP")
	}

	// SIGTERM: a clean stop exits 0.
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			dumpLog()
			t.Fatalf("collector after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		dumpLog()
		t.Fatal("collector did not stop within 20s of SIGTERM")
	}

	got := h.bulk.IDs(ds)
	sinktest.ExpectExactly(t, got, events)
	if b, err := os.ReadFile(filepath.Join(dir, "var", "dead-letter", "collector.ndjson")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("unexpected dead-letter records:\n%.1000s", b)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var lastErr error
	for range 50 {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}
