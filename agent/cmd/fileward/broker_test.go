package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaBrokerDownThenUp runs the agent with its Kafka broker down: it
// must keep running, say why delivery fails and keep the events in the
// spool; once a broker listens on the configured address, every event
// arrives, and SIGTERM still ends the agent with exit 0.
func TestKafkaBrokerDownThenUp(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	const n = 300 // the demo's documents over and over: fewer distinct ids
	ecsInput(t, in, n)
	addr := closedPort(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	const topic = "fileward-events"
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s, shutdown_timeout: 5s}
source: {type: replay, replay: {path: %[2]s, format: ecs}}
filters: {aggregate_window: 0s}
batch: {max_events: 50, max_wait: 20ms}
sinks:
  - name: kafka
    type: kafka
    kafka: {brokers: ["%[3]s"], topic: %[4]s, timeout: 1s}
    backoff: {initial: 50ms, max: 300ms}
metrics: {listen: ""}
`, dir, in, addr, topic), 0o644)

	proc := startRun(t, cfg)
	proc.waitLog("replay reached the end of its input", 0)
	proc.waitLog("send failed, backing off", 0)
	if !strings.Contains(proc.log(), addr) || !strings.Contains(proc.log(), "connection refused") {
		t.Errorf("the failure does not name the broker %s and the cause:\n%s", addr, proc.log())
	}
	// The events wait in the spool.
	out, errOut, code := fw(t, nil, "spool", "stat", "-c", cfg)
	if code != 0 || !strings.Contains(out, "agent running: yes") || !strings.Contains(out, fmt.Sprintf("events:   %d", n)) ||
		!strings.Contains(out, fmt.Sprintf("lag %d events", n)) {
		t.Fatalf("spool stat while the broker is down: exit %d, want the %d events spooled and unacknowledged\n%s%s", code, n, out, errOut)
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatalf("kfake on %s: %v", addr, err)
	}
	defer c.Close()
	deadline := time.Now().Add(90 * time.Second)
	for c.PartitionInfo(topic, 0).HighWatermark < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered after the broker came up:\n%s", c.PartitionInfo(topic, 0).HighWatermark, n, proc.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hw := c.PartitionInfo(topic, 0).HighWatermark
	got := map[string]int{}
	for n := int64(0); n < hw; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consuming: %v after %d of %d records", err, n, hw)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			for _, h := range r.Headers {
				if h.Key == "event.id" {
					got[string(h.Value)]++
				}
			}
		})
	}
	// The agent gives each replayed event an id of its own: n distinct ids
	// mean every event arrived (a retry may add a duplicate record).
	if len(got) != n {
		t.Errorf("%d distinct events in %d records, want %d", len(got), hw, n)
	}
	if hw < n {
		t.Errorf("%d records, want at least the %d events", hw, n)
	}
	t.Logf("%d events, %d records after the broker came up", n, hw)
}
