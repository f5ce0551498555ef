package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fileward/fileward/schema"
	fwkafka "github.com/fileward/fileward/sinks/kafka"
	kafkago "github.com/segmentio/kafka-go"
)

const (
	collectorTopic      = "fileward-events"
	collectorPartitions = 6
	collectorHosts      = 1024
	collectorDataStream = "logs-fileward.file-default"
)

// collectorRun is what one scaling run measured.
type collectorRun struct {
	members  int
	rate     float64   // events/s indexed while every member owned partitions
	window   int       // events indexed in that window
	cpuPerM  []float64 // per member: CPU-s per 1M events it acknowledged
	rssMiB   []float64 // per member: peak VmHWM
	acked    []float64 // per member: fileward_collector_events_acked_total
	assigned []float64 // per member: partitions owned in the measured window
	requests int64     // _bulk requests in the measured window
	// winCPUPerM is per member the CPU-s of the timed window only per 1M
	// events it acknowledged (cpuPerM counts the whole process life).
	winCPUPerM  []float64
	maxInflight int64 // most _bulk requests in flight at once, all members
	dups        int64 // creates of an id already acknowledged (re-deliveries)
}

// procCPU is the user+system CPU time of a running process so far, from
// /proc/PID/stat (utime and stime, in clock ticks of 1/100 s on Linux);
// 0 where there is no /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rowCollector measures the central tier's scale-out: `fileward collect`
// as one member and then as two members of one consumer group, on a
// 6-partition topic (kfake child process) pre-filled with the same ECS
// documents keyed over 1024 hosts, into a bulk stand-in (ackBulk) that holds
// every _bulk request for a fixed latency, as a remote cluster would, and
// acknowledges without storing. With elasticsearch.workers requests in
// flight per collector, one collector's ceiling is workers x batch_events
// / latency events/s; the latency is chosen so that this ceiling, not the
// machine's CPU, limits a collector, which is the case a second collector
// is for. Each run answers 429 to every bulk request until the group has
// settled (every member owns partitions), so only the settled phase is
// timed: events/s is the documents acknowledged from then until the last,
// over that time. CPU and peak RSS are each collector's own (rusage,
// VmHWM); CPU per 1M events is divided by the events that collector
// acknowledged. Every run checks that the stand-in acknowledged every id.
func (h *harness) rowCollector(ctx context.Context) ([]Result, error) {
	n := min(h.events, envOr("FWBENCH_COLLECTOR_EVENTS", 200000))
	// 2 s per request: a 2048-event ceiling per collector, which the
	// 2-core CI machine under a load average of 20 to 30 sustains (at 1 s
	// one collector reached 83% of its ceiling there). With -smoke, 200 ms.
	latencyMS := 2000
	if h.smoke {
		latencyMS = 200
	}
	latency := time.Duration(envOr("FWBENCH_COLLECTOR_LATENCY_MS", latencyMS)) * time.Millisecond
	workers := envOr("FWBENCH_COLLECTOR_WORKERS", 2)
	const batch = 2048
	ecs, err := h.ecsInput(ctx, h.kafkaEvents())
	if err != nil {
		return nil, err
	}
	if h.kafkaEvents() < n {
		return nil, fmt.Errorf("FWBENCH_COLLECTOR_EVENTS %d exceeds the %d ECS documents made", n, h.kafkaEvents())
	}
	docs, err := readLines(ecs, n)
	if err != nil {
		return nil, err
	}
	one, err := h.collectorScaling(ctx, 1, docs, latency, workers)
	if err != nil {
		return nil, fmt.Errorf("1 collector: %w", err)
	}
	two, err := h.collectorScaling(ctx, 2, docs, latency, workers)
	if err != nil {
		return nil, fmt.Errorf("2 collectors: %w", err)
	}
	ceiling := float64(workers*batch) / latency.Seconds()
	setup := fmt.Sprintf("%d events, %d partitions, %v per _bulk request (bulk stand-in that acknowledges without storing), batch_events %d, elasticsearch.workers %d: ceiling %.0f events/s per collector",
		n, collectorPartitions, latency, batch, workers, ceiling)
	scale := Result{Name: "collector.scaling_2_vs_1", Value: two.rate, Unit: "events/s", Baseline: one.rate, BaselineUnit: "events/s",
		BaselineName: "1 fileward collect, same topic, documents and bulk latency", Ratio: two.rate / one.rate, RatioMeans: "2 collectors / 1 collector",
		Notes: fmt.Sprintf("%s; timed once the group settled: 1 member %d events (%d bulk requests, at most %d in flight), 2 members %d events (%d requests, at most %d in flight; partitions owned %v); every id acknowledged, duplicate creates %d and %d",
			setup, one.window, one.requests, one.maxInflight, two.window, two.requests, two.maxInflight, two.assigned, one.dups, two.dups)}
	scale.apply(Target{"ratio", ">=", 1.7})
	cpu := Result{Name: "collector.cpu_s_per_1m_events", Value: one.cpuPerM[0], Unit: "CPU-s/1M events",
		Notes: fmt.Sprintf("user+sys of the collector over its life / events it acknowledged; 1 member %.2f (timed window only %.2f); 2 members %s (timed window only %s) (%s)",
			one.cpuPerM[0], one.winCPUPerM[0], fmtList(two.cpuPerM, "%.2f"), fmtList(two.winCPUPerM, "%.2f"), setup)}
	rss := Result{Name: "collector.peak_rss", Value: one.rssMiB[0], Unit: "MiB",
		Notes: fmt.Sprintf("peak VmHWM per collector; 1 member %.1f; 2 members %s; acknowledged by the 2 members %s", one.rssMiB[0], fmtList(two.rssMiB, "%.1f"), fmtList(two.acked, "%.0f"))}
	return []Result{scale, cpu, rss}, nil
}

func fmtList(xs []float64, f string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(f, x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func (h *harness) collectorScaling(ctx context.Context, members int, docs [][]byte, latency time.Duration, workers int) (collectorRun, error) {
	run := collectorRun{members: members}
	br, err := h.newBrokerPartitions(ctx, collectorPartitions, collectorTopic)
	if err != nil {
		return run, err
	}
	defer br.Close()
	if err := produceKeyed(ctx, br.addr, docs, h.kafkaCompression); err != nil {
		return run, err
	}

	srv := newAckBulk(latency)
	defer srv.Close()
	srv.refuse.Store(true) // 429 until the group settled

	var procs []*agentProc
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				p.kill()
			}
		}
	}()
	for i := range members {
		p, err := h.startCollector(ctx, filepath.Join(h.work, fmt.Sprintf("collector-%d-of-%d", i+1, members)), br.addr, srv.URL, workers)
		if err != nil {
			return run, err
		}
		procs = append(procs, p)
	}
	// Settled: every member owns partitions and together all of them.
	deadline := time.Now().Add(90 * time.Second)
	for {
		sum, all := 0.0, true
		run.assigned = run.assigned[:0]
		for _, p := range procs {
			v, err := p.metric("fileward_collector_assigned_partitions")
			if err != nil || v == 0 {
				all = false
			}
			sum += v
			run.assigned = append(run.assigned, v)
		}
		if all && sum == collectorPartitions {
			break
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("the group did not settle in 90s: partitions owned %v", run.assigned)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return run, err
		}
	}
	n := len(docs)
	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		cpu0[i] = procCPU(p.cmd.Process.Pid)
	}
	srv.maxInflight.Store(0)
	r0 := srv.requests.Load()
	srv.refuse.Store(false)
	// Three times what the members' ceiling allows, at least h.timeout.
	ceiling := float64(members*workers*2048) / latency.Seconds()
	limit := max(h.timeout(n), time.Duration(3*float64(n)/ceiling*float64(time.Second)))
	t0 := time.Now()
	c0, _ := srv.count()
	for {
		c, _ := srv.count()
		if c >= n {
			break
		}
		if time.Since(t0) > limit {
			return run, fmt.Errorf("%d of %d acknowledged after %v", c, n, limit)
		}
		for _, p := range procs {
			select {
			case <-p.done:
				return run, fmt.Errorf("a collector exited (%v):\n%s", p.waitErr, tail(p.stderr.String(), 1500))
			default:
			}
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return run, err
		}
	}
	wall := time.Since(t0)
	run.requests = srv.requests.Load() - r0
	run.maxInflight = srv.maxInflight.Load()
	run.window = n - c0
	run.rate = float64(run.window) / wall.Seconds()
	for i, p := range procs {
		acked, err := p.metric("fileward_collector_events_acked_total")
		if err != nil {
			return run, err
		}
		// CPU of the timed window only (the settling phase is idle).
		win := procCPU(p.cmd.Process.Pid) - cpu0[i]
		u, err := p.stop()
		if err != nil {
			return run, err
		}
		run.acked = append(run.acked, acked)
		run.cpuPerM = append(run.cpuPerM, u.CPU.Seconds()/max(acked, 1)*1e6)
		run.winCPUPerM = append(run.winCPUPerM, win.Seconds()/max(acked, 1)*1e6)
		run.rssMiB = append(run.rssMiB, float64(u.MaxRSS)/(1<<20))
	}
	ids, dups := srv.count()
	if ids != n {
		return run, fmt.Errorf("the stand-in acknowledged %d ids, want %d", ids, n)
	}
	run.dups = dups
	h.logf("collector x%d: %.0f events/s over %d events (%v, %d bulk requests, at most %d in flight), partitions %v, CPU-s/1M %v (timed window %v), RSS MiB %v, duplicate creates %d",
		members, run.rate, run.window, wall.Round(time.Millisecond), run.requests, run.maxInflight, run.assigned,
		fmtList(run.cpuPerM, "%.2f"), fmtList(run.winCPUPerM, "%.2f"), fmtList(run.rssMiB, "%.1f"), run.dups)
	return run, nil
}

// produceKeyed writes docs to the collector topic as the Kafka sink does
// (event.id header, key host.id), keyed over collectorHosts hosts, a
// fleet's worth: with 64 the partitions' shares were uneven enough (one
// member of two got 55%) to cap the 2-member run below its ceiling.
func produceKeyed(ctx context.Context, addr string, docs [][]byte, compression string) error {
	w, err := newWriter(addr, collectorTopic, compression)
	if err != nil {
		return err
	}
	ecsv, ct := []byte(schema.ECSVersion), []byte(fwkafka.ContentType)
	msgs := make([]kafkago.Message, 0, 2048)
	for i, d := range docs {
		msgs = append(msgs, kafkago.Message{Key: fmt.Appendf(nil, "fwbench-host-%d", i%collectorHosts), Value: d, Headers: []kafkago.Header{
			{Key: fwkafka.HeaderEventID, Value: eventID(d)}, {Key: fwkafka.HeaderECSVersion, Value: ecsv},
			{Key: fwkafka.HeaderContentType, Value: ct}}})
		if len(msgs) == cap(msgs) || i == len(docs)-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				w.Close()
				return fmt.Errorf("produce: %w", err)
			}
			msgs = msgs[:0]
		}
	}
	return w.Close()
}

// startCollector starts `fileward collect` with its own data directory and
// metrics port, and returns once /metrics answers.
func (h *harness) startCollector(ctx context.Context, dir, broker, esURL string, workers int) (*agentProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`agent:
  data_dir: %[1]s
metrics:
  listen: %[2]s
collector:
  kafka:
    brokers: [%[3]q]
    topic: %[4]s
    group_id: fwbench-collector
  elasticsearch:
    addresses: [%[5]q]
    data_stream: %[6]s
    setup_template: false
    timeout: 30s
    workers: %[7]d
  batch_events: 2048
  batch_wait: 200ms
  backoff: { initial: 20ms, max: 200ms, multiplier: 2, jitter: 0.2 }
  dead_letter: %[1]s/dead-letter.ndjson
`, dir, addr, broker, collectorTopic, esURL, collectorDataStream, workers)
	path := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p := &agentProc{stderr: &syncBuffer{}, done: make(chan struct{}), metrics: "http://" + addr + "/metrics"}
	p.cmd = exec.Command(h.fileward, "collect", "-c", path)
	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = io.MultiWriter(p.stderr, logf)
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.waitErr = p.cmd.Wait(); logf.Close(); close(p.done) }()
	p.hwm = newHWMSampler(p.cmd.Process.Pid, p.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := p.metric("fileward_collector_events_acked_total"); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("fileward collect exited at start (%v):\n%s", p.waitErr, tail(p.stderr.String(), 2000))
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("fileward collect served no /metrics in 30s:\n%s", tail(p.stderr.String(), 2000))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
