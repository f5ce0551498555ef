package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
	fwkafka "github.com/fileward/fileward/sinks/kafka"
	kafkago "github.com/segmentio/kafka-go"
)

const (
	collectorTopic      = "fileward-events"
	collectorPartitions = 6
	collectorDataStream = "logs-fileward.file-default"
)

// collectorStreams are the data streams the Elasticsearch sink routes the
// documents to (file events, process events such as exec, agent
// documents).
var collectorStreams = []string{collectorDataStream, "logs-fileward.process-default", "logs-fileward.agent-default"}

// indexed is the number of documents in every collector stream.
func indexed(srv *bulktest.Server) int {
	n := 0
	for _, ds := range collectorStreams {
		n += srv.Count(ds)
	}
	return n
}

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
}

// rowCollector measures the central tier's scale-out: `fileward collect`
// as one member and then as two members of one consumer group, on a
// 6-partition topic (kfake child process) pre-filled with the same ECS
// documents keyed over 64 hosts, into bulktest behind a proxy that holds
// every _bulk request for a fixed latency, as a remote cluster would. Each
// run answers 429 to every bulk request until the group has settled (every
// member owns partitions), so only the settled phase is timed: events/s is
// the documents indexed from then until the last, over that time. CPU and
// peak RSS are each collector's own (rusage, VmHWM); CPU per 1M events is
// divided by the events that collector acknowledged. Every run checks that
// the data stream holds every id exactly once.
func (h *harness) rowCollector(ctx context.Context) ([]Result, error) {
	n := min(h.events, envOr("FWBENCH_COLLECTOR_EVENTS", 200000))
	latency := time.Duration(envOr("FWBENCH_COLLECTOR_LATENCY_MS", 100)) * time.Millisecond
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
	one, err := h.collectorScaling(ctx, 1, docs, latency)
	if err != nil {
		return nil, fmt.Errorf("1 collector: %w", err)
	}
	two, err := h.collectorScaling(ctx, 2, docs, latency)
	if err != nil {
		return nil, fmt.Errorf("2 collectors: %w", err)
	}
	setup := fmt.Sprintf("%d events, %d partitions, %v per _bulk request, batch_events 2048, elasticsearch.workers 2", n, collectorPartitions, latency)
	scale := Result{Name: "collector.scaling_2_vs_1", Value: two.rate, Unit: "events/s", Baseline: one.rate, BaselineUnit: "events/s",
		BaselineName: "1 fileward collect, same topic, documents and bulk latency", Ratio: two.rate / one.rate, RatioMeans: "2 collectors / 1 collector",
		Notes: fmt.Sprintf("%s; timed once the group settled: 1 member %d events, 2 members %d events (partitions owned %v); every id indexed exactly once",
			setup, one.window, two.window, two.assigned)}
	scale.apply(Target{"ratio", ">=", 1.7})
	cpu := Result{Name: "collector.cpu_s_per_1m_events", Value: one.cpuPerM[0], Unit: "CPU-s/1M events",
		Notes: fmt.Sprintf("user+sys of the collector / events it acknowledged; 1 member %.2f; 2 members %s (%s)", one.cpuPerM[0], fmtList(two.cpuPerM, "%.2f"), setup)}
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

func (h *harness) collectorScaling(ctx context.Context, members int, docs [][]byte, latency time.Duration) (collectorRun, error) {
	run := collectorRun{members: members}
	br, err := h.newBrokerPartitions(ctx, collectorPartitions, collectorTopic)
	if err != nil {
		return run, err
	}
	defer br.Close()
	if err := produceKeyed(ctx, br.addr, docs, h.kafkaCompression); err != nil {
		return run, err
	}

	srv := bulktest.New(1)
	defer srv.Close()
	srv.SetRequestFaults(1, 0) // 429 until the group settled
	target, err := url.Parse(srv.URL)
	if err != nil {
		return run, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()

	var procs []*agentProc
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				p.kill()
			}
		}
	}()
	for i := range members {
		p, err := h.startCollector(ctx, filepath.Join(h.work, fmt.Sprintf("collector-%d-of-%d", i+1, members)), br.addr, slow.URL)
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
	srv.SetRequestFaults(0, 0)
	r0, _ := srv.BulkRequests()
	t0 := time.Now()
	c0 := indexed(srv)
	for indexed(srv) < n {
		if time.Since(t0) > h.timeout(n) {
			return run, fmt.Errorf("%d of %d indexed after %v", indexed(srv), n, h.timeout(n))
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
	r1, _ := srv.BulkRequests()
	run.requests = r1 - r0
	run.window = n - c0
	run.rate = float64(run.window) / wall.Seconds()
	for _, p := range procs {
		acked, err := p.metric("fileward_collector_events_acked_total")
		if err != nil {
			return run, err
		}
		u, err := p.stop()
		if err != nil {
			return run, err
		}
		run.acked = append(run.acked, acked)
		run.cpuPerM = append(run.cpuPerM, u.CPU.Seconds()/max(acked, 1)*1e6)
		run.rssMiB = append(run.rssMiB, float64(u.MaxRSS)/(1<<20))
	}
	ids := map[string]int{}
	for _, ds := range collectorStreams {
		for id, c := range srv.IDs(ds) {
			ids[id] += c
		}
	}
	if len(ids) != n {
		return run, fmt.Errorf("the data streams hold %d ids, want %d", len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			return run, fmt.Errorf("id %s stored %d times", id, c)
		}
	}
	h.logf("collector x%d: %.0f events/s over %d events (%v, %d bulk requests), partitions %v, CPU-s/1M %v, RSS MiB %v",
		members, run.rate, run.window, wall.Round(time.Millisecond), run.requests, run.assigned, fmtList(run.cpuPerM, "%.2f"), fmtList(run.rssMiB, "%.1f"))
	return run, nil
}

// produceKeyed writes docs to the collector topic as the Kafka sink does
// (event.id header, key host.id), keyed over 64 hosts so that every
// partition gets a share.
func produceKeyed(ctx context.Context, addr string, docs [][]byte, compression string) error {
	w, err := newWriter(addr, collectorTopic, compression)
	if err != nil {
		return err
	}
	ecsv, ct := []byte(schema.ECSVersion), []byte(fwkafka.ContentType)
	msgs := make([]kafkago.Message, 0, 2048)
	for i, d := range docs {
		msgs = append(msgs, kafkago.Message{Key: fmt.Appendf(nil, "fwbench-host-%d", i%64), Value: d, Headers: []kafkago.Header{
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
func (h *harness) startCollector(ctx context.Context, dir, broker, esURL string) (*agentProc, error) {
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
    setup_template: true
    timeout: 30s
    workers: 2
  batch_events: 2048
  batch_wait: 200ms
  backoff: { initial: 20ms, max: 200ms, multiplier: 2, jitter: 0.2 }
  dead_letter: %[1]s/dead-letter.ndjson
`, dir, addr, broker, collectorTopic, esURL, collectorDataStream)
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
