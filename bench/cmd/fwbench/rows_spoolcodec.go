package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
	"golang.org/x/sys/unix"
)

// spoolCodecs are the values of spool.compression, "none" first: it is the
// baseline of every codec figure.
var spoolCodecs = []string{spool.CompressionNone, spool.CompressionLZ4, spool.CompressionZstd}

// codecFigures are one codec's in-process figures.
type codecFigures struct {
	diskPerEvent   float64 // segment bytes on disk per event
	docsPerDisk    float64 // ECS NDJSON bytes held per byte on disk
	appendNsPerEv  float64 // CPU of Append per event
	readNsPerEv    float64 // CPU of Reader.Next (read, CRC, decompress) per event
	ratio          float64 // payload compression ratio, from spool.Inspect
	events, disk   int64
	appendWall     time.Duration
	readWall       time.Duration
	recordsByCodec map[string]int
	appendRuns     []float64
	readRuns       []float64
}

// variedDocs copies docs with every hex string of 16+ characters and every
// other run of digits replaced by random characters of the same kind and
// length (a leading digit stays non-zero), deterministically.
func variedDocs(docs [][]byte) [][]byte {
	rng := rand.New(rand.NewPCG(15, 15))
	isHex := func(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' }
	isDigit := func(b byte) bool { return b >= '0' && b <= '9' }
	out := make([][]byte, len(docs))
	for k, d := range docs {
		d = bytes.Clone(d)
		for i := 0; i < len(d); {
			j := i
			for j < len(d) && isHex(d[j]) {
				j++
			}
			if j-i >= 16 {
				for x := i; x < j; x++ {
					d[x] = "0123456789abcdef"[rng.IntN(16)]
				}
				i = j
				continue
			}
			if !isDigit(d[i]) {
				i++
				continue
			}
			for j = i; j < len(d) && isDigit(d[j]); j++ {
				if j == i && d[j] != '0' {
					d[j] = byte('1' + rng.IntN(9))
				} else if j > i {
					d[j] = byte('0' + rng.IntN(10))
				}
			}
			i = j
		}
		out[k] = d
	}
	return out
}

// rowSpoolCodec measures spool.compression (issue 15, "A compressed
// spool" and "Backlog drain"):
//   - in this process, per codec, on the agent's own batches of the ECS
//     documents (BatchWriter, 2048 events or 1 MiB): bytes on disk per
//     event, the events and the GiB of ECS documents a 1 GiB spool holds
//     (from bytes per event), and the CPU of Append and of reading back
//     (getrusage of this process around each loop);
//   - end to end, per codec: the agent (replay → spool → Kafka sink) on a
//     fresh broker, events/s, against none in the same run;
//
// The backlog drain is its own row (rowDrain).
func (h *harness) rowSpoolCodec(ctx context.Context) ([]Result, error) {
	def := config.Default().Spool.Compression
	docs, err := h.codecDocs(ctx)
	if err != nil {
		return nil, err
	}
	// The harness's input repeats the 38 documents of the demo recording
	// (only event ids, sequence numbers and times differ), which
	// compresses far better than a real host's stream. The figures use a
	// harder corpus: the same documents with every run of digits and every
	// hex string of 16+ characters (ids, hashes, pids, inodes, sizes,
	// times) replaced by random ones. The demo corpus's figure is kept
	// beside it (…_demo).
	demoPayloads, demoCounts, demoBytes := agentBatches(docs)
	payloads, counts, docBytes := agentBatches(variedDocs(docs))
	rounds := 3
	if h.smoke {
		rounds = 1
	}
	figs := map[string]codecFigures{}
	demo := map[string]codecFigures{}
	for round := 0; round < rounds; round++ { // alternating, the median CPU of each
		for _, c := range spoolCodecs {
			f, err := h.measureCodec(c, payloads, counts, docBytes)
			if err != nil {
				return nil, fmt.Errorf("codec %s: %w", c, err)
			}
			if prev, ok := figs[c]; ok {
				f.appendRuns, f.readRuns = append(prev.appendRuns, f.appendNsPerEv), append(prev.readRuns, f.readNsPerEv)
			} else {
				f.appendRuns, f.readRuns = []float64{f.appendNsPerEv}, []float64{f.readNsPerEv}
			}
			f.appendNsPerEv, f.readNsPerEv = median(f.appendRuns), median(f.readRuns)
			figs[c] = f
			h.logf("spoolcodec: %s: %.1f bytes/event on disk, ratio %.2f, append %.0f ns/event, read %.0f ns/event",
				c, f.diskPerEvent, f.ratio, f.appendNsPerEv, f.readNsPerEv)
		}
	}
	for _, c := range spoolCodecs {
		f, err := h.measureCodec(c, demoPayloads, demoCounts, demoBytes)
		if err != nil {
			return nil, fmt.Errorf("codec %s, demo corpus: %w", c, err)
		}
		demo[c] = f
	}
	none := figs[spool.CompressionNone]
	var out []Result
	for _, c := range spoolCodecs {
		f := figs[c]
		src := fmt.Sprintf("%d ECS documents (digits and hex strings randomized) of %.0f bytes on average in %d batches (2048 events or 1 MiB), spool on the work disk, fsync never", len(docs), float64(docBytes)/float64(len(docs)), len(payloads))
		isDef := ""
		if c == def {
			isDef = " (the default)"
		}
		b := Result{Name: "spoolcodec." + c + ".bytes_per_event", Value: f.diskPerEvent, Unit: "bytes/event on disk",
			Baseline: none.diskPerEvent, BaselineUnit: "bytes/event", BaselineName: "spool.compression none",
			Ratio: none.diskPerEvent / f.diskPerEvent, RatioMeans: "none / this codec (times smaller)",
			Notes: fmt.Sprintf("%s%s; payload ratio %.2f; records %v", src, isDef, f.ratio, f.recordsByCodec)}
		dm := Result{Name: "spoolcodec." + c + ".ecs_GiB_per_GiB_demo", Value: demo[c].docsPerDisk, Unit: "GiB of ECS NDJSON held per GiB of spool",
			Notes: fmt.Sprintf("the demo corpus as the harness replays it (38 documents repeated): optimistic; %.1f bytes/event on disk, payload ratio %.2f", demo[c].diskPerEvent, demo[c].ratio)}
		ev := Result{Name: "spoolcodec." + c + ".events_per_GiB", Value: float64(1<<30) / f.diskPerEvent, Unit: "events in a 1 GiB spool",
			Baseline: float64(1<<30) / none.diskPerEvent, BaselineUnit: "events", BaselineName: "none",
			Ratio: none.diskPerEvent / f.diskPerEvent, RatioMeans: "this codec / none",
			Notes: "computed: 1 GiB / bytes on disk per event (segment headers and record headers included)"}
		held := Result{Name: "spoolcodec." + c + ".ecs_GiB_per_GiB", Value: f.docsPerDisk, Unit: "GiB of ECS NDJSON held per GiB of spool",
			Notes: "ECS documents (NDJSON bytes, newline included) over segment bytes on disk"}
		if c == def {
			held.Notes += "; computed from bytes per event (see …_full for the spool filled to its bound)"
		}
		ap := Result{Name: "spoolcodec." + c + ".append_cpu_ns_per_event", Value: f.appendNsPerEv, Unit: "CPU-ns/event",
			Baseline: none.appendNsPerEv, BaselineUnit: "CPU-ns/event", BaselineName: "none",
			Ratio: f.appendNsPerEv / none.appendNsPerEv, RatioMeans: "this codec / none",
			Notes: fmt.Sprintf("getrusage of fwbench around the Append loop (compression included), median of %d alternating rounds %v; wall %v", rounds, fmtRates(f.appendRuns), f.appendWall.Round(time.Millisecond))}
		rd := Result{Name: "spoolcodec." + c + ".read_cpu_ns_per_event", Value: f.readNsPerEv, Unit: "CPU-ns/event",
			Baseline: none.readNsPerEv, BaselineUnit: "CPU-ns/event", BaselineName: "none",
			Ratio: f.readNsPerEv / none.readNsPerEv, RatioMeans: "this codec / none",
			Notes: fmt.Sprintf("getrusage of fwbench around the Reader.Next loop (read, CRC, decompress), median of %d alternating rounds %v; wall %v", rounds, fmtRates(f.readRuns), f.readWall.Round(time.Millisecond))}
		out = append(out, b, ev, held, dm, ap, rd)
	}

	full, err := h.spoolHeldWhenFull(def, payloads, counts)
	if err != nil {
		return out, fmt.Errorf("codec %s, spool filled to its bound: %w", def, err)
	}
	out = append(out, full)

	e2e, err := h.kafkaPerCodec(ctx, def)
	out = append(out, e2e...)
	return out, err
}

// spoolHeldWhenFull is issue 15's capacity figure for codec c, measured
// rather than computed: a spool of the default max_bytes (1 GiB; 64 MiB
// with -smoke) and segment_bytes with one cursor that never reads (a sink
// down from the start), filled with the agent's batches (repeated) until
// it refuses one (when_full drop_newest: the oldest records, written while
// the backlog was small, stay; drop_oldest would delete those first, so
// this is the lower bound). The figure is the NDJSON bytes of the
// documents the spool holds over its bytes on disk.
func (h *harness) spoolHeldWhenFull(c string, payloads [][]byte, counts []int) (Result, error) {
	d := config.Default().Spool
	maxBytes, segBytes := int64(d.MaxBytes), int64(d.SegmentBytes)
	if h.smoke {
		maxBytes, segBytes = 64<<20, 4<<20
	}
	docBytes := make([]int64, len(payloads))
	var b sinks.Batch
	for i, p := range payloads {
		if err := sinks.DecodeBatch(p, &b); err != nil {
			return Result{}, err
		}
		for _, e := range b.Events {
			docBytes[i] += int64(len(e.Doc)) + 1
		}
	}
	dir := filepath.Join(h.work, "spoolcodec-full-"+c)
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	s, err := spool.Open(context.Background(), spool.Options{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes,
		WhenFull: spool.DropNewest, Fsync: spool.FsyncNever, Compression: c})
	if err != nil {
		return Result{}, err
	}
	r, err := s.Reader("down") // a sink that never reads: the whole spool is its backlog
	if err != nil {
		s.Close()
		return Result{}, err
	}
	r.Close()
	var held, events int64
	for i := 0; ; i++ {
		k := i % len(payloads)
		err := s.Append(context.Background(), payloads[k], counts[k])
		if errors.Is(err, spool.ErrFull) {
			break
		}
		if err != nil {
			s.Close()
			return Result{}, err
		}
		held += docBytes[k]
		events += int64(counts[k])
	}
	disk := s.Bytes()
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	rep, err := spool.Inspect(dir, false)
	if err != nil {
		return Result{}, err
	}
	if int64(rep.Events) != events {
		return Result{}, fmt.Errorf("the full spool holds %d events, %d were appended", rep.Events, events)
	}
	v := float64(held) / float64(disk)
	h.logf("spoolcodec: %s filled to its bound: %d events, %.2f GiB of ECS in %d MiB on disk (%.2f), records %v", c, events, float64(held)/(1<<30), disk>>20, v, rep.Codecs)
	res := Result{Name: "spoolcodec." + c + ".ecs_GiB_per_GiB_full", Value: v, Unit: "GiB of ECS NDJSON held per GiB of spool",
		Notes: fmt.Sprintf("the default codec (%s), a %d MiB spool (segments %d MiB) filled to its bound behind a cursor that never reads, when_full drop_newest: %d events, %.2f GiB of ECS documents (randomized corpus) in %d MiB on disk; records %v", c, maxBytes>>20, segBytes>>20, events, float64(held)/(1<<30), disk>>20, rep.Codecs)}
	res.apply(Target{"value", ">=", 4})
	return res, nil
}

// rowDrain is the backlog drain of issue 15 (the "drain" row; its figure
// keeps the name spoolcodec.backlog_drain_events_per_s): a spool filled
// with the default codec, drained into Kafka while capture adds 20k
// events/s, against the bare kafka.Writer (see backlogDrain).
func (h *harness) rowDrain(ctx context.Context) ([]Result, error) {
	def := config.Default().Spool.Compression
	docs, err := h.codecDocs(ctx)
	if err != nil {
		return nil, err
	}
	varied := variedDocs(docs)
	payloads, counts, _ := agentBatches(varied)
	// The baseline ships the very documents of the backlog: the randomized
	// corpus compresses (lz4, in the Kafka client) at about half the speed
	// of the harness's repeated ECS input, so a bare writer on that input
	// would be measured on easier work than the drain.
	bareIn := filepath.Join(h.work, "drain-ecs.ndjson")
	if err := writeCycled(bareIn, varied, h.kafkaEvents()); err != nil {
		return nil, err
	}
	defer os.Remove(bareIn)
	return h.backlogDrain(ctx, def, payloads, counts, bareIn)
}

// codecDocs is the spool rows' ECS corpus: up to 200,000 documents of the
// harness's input (about 300 MB with their copies and batches), enough for
// stable per-event figures.
func (h *harness) codecDocs(ctx context.Context) ([][]byte, error) {
	n := min(h.kafkaEvents(), 200000)
	ecs, err := h.ecsInput(ctx, n)
	if err != nil {
		return nil, err
	}
	return readLines(ecs, n)
}

// writeCycled writes n NDJSON lines to path: docs, repeated in order.
func writeCycled(path string, docs [][]byte, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n && len(docs) > 0; i++ {
		w.Write(docs[i%len(docs)])
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// agentBatches encodes docs as the pipeline does: sinks batches of up to
// 2048 events and 1 MiB (batch.max_events, batch.max_bytes), key host.id.
// It returns the payloads, their event counts and the NDJSON size of docs.
func agentBatches(docs [][]byte) (payloads [][]byte, counts []int, docBytes int64) {
	var w sinks.BatchWriter
	w.Reset("fwbench-host")
	flush := func() {
		if w.Len() > 0 {
			payloads = append(payloads, bytes.Clone(w.Bytes()))
			counts = append(counts, w.Len())
		}
		w.Reset("fwbench-host")
	}
	for _, d := range docs {
		id := eventID(d)
		if w.Len() > 0 && (w.Len() == 2048 || w.Size()+len(d)+len(id)+16 > 1<<20) {
			flush()
		}
		w.Add(id, d)
		docBytes += int64(len(d)) + 1
	}
	flush()
	return payloads, counts, docBytes
}

func cpuNow() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCodec appends every payload to a fresh spool with codec c, reads
// it all back, and inspects it.
func (h *harness) measureCodec(c string, payloads [][]byte, counts []int, docBytes int64) (codecFigures, error) {
	var f codecFigures
	dir := filepath.Join(h.work, "spoolcodec-"+c)
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	s, err := spool.Open(context.Background(), spool.Options{Dir: dir, MaxBytes: 1 << 40, SegmentBytes: 16 << 20, Fsync: spool.FsyncNever, Compression: c})
	if err != nil {
		return f, err
	}
	r, err := s.Reader("bench") // created first: it pins every record
	if err != nil {
		s.Close()
		return f, err
	}
	c0, t0 := cpuNow(), time.Now()
	for i, p := range payloads {
		if err := s.Append(context.Background(), p, counts[i]); err != nil {
			r.Close()
			s.Close()
			return f, err
		}
		f.events += int64(counts[i])
	}
	appendCPU, appendWall := cpuNow()-c0, time.Since(t0)
	c0, t0 = cpuNow(), time.Now()
	var read int64
	for r.Next() {
		read += int64(r.Record().Events)
	}
	readCPU, readWall := cpuNow()-c0, time.Since(t0)
	rerr := r.Err()
	r.Close()
	f.disk = s.Bytes()
	if err := s.Close(); err != nil {
		return f, err
	}
	if rerr != nil || read != f.events {
		return f, fmt.Errorf("read back %d of %d events (%v)", read, f.events, rerr)
	}
	rep, err := spool.Inspect(dir, false)
	if err != nil {
		return f, err
	}
	ev := float64(f.events)
	f.diskPerEvent = float64(f.disk) / ev
	f.docsPerDisk = float64(docBytes) / float64(f.disk)
	f.appendNsPerEv = float64(appendCPU.Nanoseconds()) / ev
	f.readNsPerEv = float64(readCPU.Nanoseconds()) / ev
	f.appendWall, f.readWall = appendWall, readWall
	f.ratio = rep.Ratio()
	f.recordsByCodec = rep.Codecs
	return f, nil
}

// codecBroker is the broker of this row's Kafka runs: a fresh kfake child
// process. Issue 15 asks for kfake.BlackholeProduce here (a storing kfake
// slows down with the records it holds, and cannot hold a 1 GiB backlog);
// where the harness offers a blackhole broker, this is the one place to
// use it.
func (h *harness) codecBroker(ctx context.Context, topic string) (*broker, error) {
	return h.newBlackholeBroker(ctx, topic)
}

// withSpoolOption adds one key to the spool: mapping of an agentConfig's
// YAML, and sets the replay rate; it fails loudly if the template changed.
func withSpoolOption(y, key, value string, rate int) (string, error) {
	if strings.Count(y, "\nsinks:\n") != 1 || strings.Count(y, "rate: 0,") != 1 {
		return "", fmt.Errorf("fwbench: the agent config template changed: cannot set spool.%s and the replay rate", key)
	}
	y = strings.Replace(y, "\nsinks:\n", fmt.Sprintf("\n  %s: %s\nsinks:\n", key, value), 1)
	return strings.Replace(y, "rate: 0,", fmt.Sprintf("rate: %d,", rate), 1), nil
}

// startAgentWith starts the agent as startAgent does, with
// spool.compression c and the replay rate (0 = as fast as it can) set in
// the harness's config.
func (h *harness) startAgentWith(ctx context.Context, cfg agentConfig, c string, rate int) (*agentProc, error) {
	return h.startAgentBin(ctx, h.fileward, cfg, c, rate)
}

// startAgentBin is startAgentWith with another agent binary (the profiled
// one) and extra environment.
func (h *harness) startAgentBin(ctx context.Context, bin string, cfg agentConfig, c string, rate int, env ...string) (*agentProc, error) {
	y, err := withSpoolOption(cfg.yaml(), "compression", c, rate)
	if err != nil {
		return nil, err
	}
	// Recovery reads the whole spool before the agent prints its metrics.
	return launchAgent(ctx, bin, cfg.DataDir, y, 60*time.Second, env...)
}

// kafkaPerCodec runs the agent end to end (replay of the eslogger input →
// spool → Kafka sink, as the kafka row) once per codec, on a fresh broker
// each, in rounds that alternate the codecs, and compares each codec's
// median rate with none's.
func (h *harness) kafkaPerCodec(ctx context.Context, def string) ([]Result, error) {
	n := h.kafkaEvents()
	esl, err := h.eslInput(n)
	if err != nil {
		return nil, err
	}
	rounds := 2
	if h.smoke {
		rounds = 1
	}
	rates := map[string][]float64{}
	cpu := map[string][]float64{}
	rss := map[string]float64{}
	for round := 0; round < rounds; round++ {
		for _, c := range spoolCodecs {
			rate, cpuPerM, peak, err := h.kafkaAgentRun(ctx, esl, n, c, fmt.Sprintf("codec-%s-%d", c, round))
			if err != nil {
				return nil, fmt.Errorf("end to end with %s: %w", c, err)
			}
			rates[c] = append(rates[c], rate)
			cpu[c] = append(cpu[c], cpuPerM)
			rss[c] = max(rss[c], peak)
			h.logf("spoolcodec: kafka end to end with %s: %.0f events/s, %.2f CPU-s/1M", c, rate, cpuPerM)
		}
	}
	none := median(rates[spool.CompressionNone])
	var out []Result
	for _, c := range spoolCodecs {
		r := Result{Name: "spoolcodec." + c + ".kafka_events_per_s", Value: median(rates[c]), Unit: "events/s",
			Baseline: none, BaselineUnit: "events/s", BaselineName: "the same agent with spool.compression none",
			Ratio: median(rates[c]) / none, RatioMeans: "this codec / none",
			Notes: fmt.Sprintf("%d events, eslogger replay → spool (%s) → Kafka sink (compression %s, acks all), a fresh broker per run; median of %d rounds alternating the codecs: %v; agent CPU-s/1M %v",
				n, c, h.kafkaCompression, rounds, fmtRates(rates[c]), fmtRates(cpu[c]))}
		if c == def {
			r.apply(Target{"ratio", ">=", 0.9})
		}
		m := Result{Name: "spoolcodec." + c + ".kafka_peak_rss", Value: rss[c], Unit: "MiB",
			Notes: "the highest peak VmHWM of the agent over the rounds"}
		m.apply(Target{"value", "<=", 100})
		out = append(out, r, m)
	}
	return out, nil
}

// kafkaAgentRun is one end-to-end run of the agent with codec c into a
// fresh broker: delivered events/s from process start to the last record
// on the broker (ring_full drops of the replay are not in the rate), CPU-s
// per 1M events and peak RSS in MiB.
func (h *harness) kafkaAgentRun(ctx context.Context, esl string, n int, c, name string) (float64, float64, float64, error) {
	br, err := h.codecBroker(ctx, "fw-codec")
	if err != nil {
		return 0, 0, 0, err
	}
	defer br.Close()
	dir := filepath.Join(h.work, name)
	defer os.RemoveAll(dir)
	sink := fmt.Sprintf(`  - name: kafka
    type: kafka
    kafka: { brokers: [%q], topic: fw-codec, compression: %s, required_acks: all }`, br.addr, h.kafkaCompression)
	a, err := h.startAgentWith(ctx, agentConfig{DataDir: dir, Input: esl, Sinks: sink}, c, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	// The replay never waits: when the pipeline falls behind, the ring
	// drops and counts ring_full. Done when the topic holds every event not
	// counted lost; the rate counts delivered events only.
	var dropped float64
	at, err := a.waitFor(ctx, "records on the broker plus drops", float64(n), h.timeout(n), func() (float64, error) {
		c, err := br.count(ctx, "fw-codec")
		if err != nil {
			return 0, err
		}
		dropped, _ = a.metric("fileward_events_dropped_total") // absent until the first drop
		return float64(c) + dropped, nil
	})
	if err != nil {
		a.kill()
		return 0, 0, 0, err
	}
	wall := at.Sub(a.start)
	u, err := a.stop()
	if err != nil {
		return 0, 0, 0, err
	}
	if dropped > 0 {
		h.logf("spoolcodec: %s: %.0f events dropped (ring_full), not in the rate", name, dropped)
	}
	return (float64(n) - dropped) / wall.Seconds(), u.CPU.Seconds() / (float64(n) / 1e6), float64(u.MaxRSS) / (1 << 20), nil
}

// backlogDrain fills a spool with the default codec while no sink reads it
// (the agent's own batches, repeated), to max_bytes less two segments
// (room for what capture adds before the sink frees the first segment, so
// drop_oldest does not shorten the backlog), then starts the agent on it
// with capture (replay) adding 20k events/s and a Kafka sink. The drain
// rate is every event delivered, from process start (recovery included)
// until the sink's lag is back under 2 s of capture, over that time. The
// baseline is the bare kafka.Writer loop on the backlog's documents
// (bareIn), on the same kind of broker, in this run.
func (h *harness) backlogDrain(ctx context.Context, def string, payloads [][]byte, counts []int, bareIn string) ([]Result, error) {
	const captureRate = 20000
	maxBytes, segBytes := int64(1<<30), int64(16<<20)
	if h.smoke {
		maxBytes = 64 << 20
	}
	fill := maxBytes - 2*segBytes
	if h.smoke {
		fill = 4 << 20
	}
	dir := filepath.Join(h.work, "drain")
	defer os.RemoveAll(dir)
	sdir := filepath.Join(dir, "spool")
	s, err := spool.Open(ctx, spool.Options{Dir: sdir, MaxBytes: maxBytes, SegmentBytes: segBytes, Fsync: spool.FsyncNever, Compression: def})
	if err != nil {
		return nil, err
	}
	r, err := s.Reader("kafka") // the sink's cursor, at the oldest data
	if err != nil {
		s.Close()
		return nil, err
	}
	r.Close()
	var backlog int64
	for i := 0; s.Bytes() < fill; i++ {
		if err := s.Append(ctx, payloads[i%len(payloads)], counts[i%len(payloads)]); err != nil {
			s.Close()
			return nil, err
		}
		backlog += int64(counts[i%len(payloads)])
	}
	onDisk := s.Bytes()
	if err := s.Close(); err != nil {
		return nil, err
	}
	h.logf("spoolcodec: drain: %d events backlog in %d MiB (%s)", backlog, onDisk>>20, def)

	// The baseline: the bare writer on the backlog's documents.
	n := h.kafkaEvents()
	bareRate, bareCPU, err := h.bareWriterRate(ctx, bareIn, n)
	if err != nil {
		return nil, err
	}

	esl, err := h.eslInput(min(n, 100000))
	if err != nil {
		return nil, err
	}
	br, err := h.codecBroker(ctx, "fw-drain")
	if err != nil {
		return nil, err
	}
	defer br.Close()
	sink := fmt.Sprintf(`  - name: kafka
    type: kafka
    kafka: { brokers: [%q], topic: fw-drain, compression: %s, required_acks: all }`, br.addr, h.kafkaCompression)
	bin, env, prof := h.fileward, []string(nil), ""
	if h.profile != "" {
		prof = filepath.Join(filepath.Dir(h.profile), "drain.cpu.pprof")
		bin, env = h.profiled, []string{"FWBENCH_CPUPROFILE=" + prof}
	}
	a, err := h.startAgentBin(ctx, bin, agentConfig{DataDir: dir, Input: esl, Loop: true, Sinks: sink, SpoolMax: fmt.Sprintf("%dMiB", maxBytes>>20)}, def, captureRate, env...)
	if err != nil {
		return nil, err
	}
	startup := time.Since(a.start) // recovery: until the agent printed its metrics address
	// Drained: the lag is back under 2 s of capture (a quarter of the
	// backlog for the small smoke spool).
	limit := min(float64(2*captureRate), float64(backlog)/4)
	lag := func() (float64, error) {
		l, err := a.metric("fileward_sink_lag_events", `sink="kafka"`)
		if err != nil {
			return 0, err
		}
		if l <= limit { // waitFor wants a rising figure

			return 1, nil
		}
		return 0, nil
	}
	at, err := a.waitFor(ctx, "drain", 1, h.timeout(int(backlog)), lag)
	if err != nil {
		a.kill()
		return nil, err
	}
	got, cerr := br.count(ctx, "fw-drain")
	dropped, _ := a.metric("fileward_events_dropped_total")
	if prof != "" {
		if err := h.stopProfile(a, prof); err != nil {
			return nil, err
		}
	}
	u, err := a.stop()
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	wall := at.Sub(a.start)
	rate := float64(got) / wall.Seconds()
	res := Result{Name: "spoolcodec.backlog_drain_events_per_s", Value: rate, Unit: "events/s",
		Baseline: bareRate, BaselineUnit: "events/s", BaselineName: "bare kafka.Writer loop (child process) on the backlog's documents (randomized corpus), same broker setup",
		Ratio: rate / bareRate, RatioMeans: "drain / bare writer",
		Notes: fmt.Sprintf("spool %s (%s) filled to %d MiB: %d events of backlog; capture adds %d events/s (replay, loop); %d events on the broker when the lag fell under %.0f, %.1fs from process start (recovery included: %.1fs to the metrics address); %.0f events dropped (any reason); agent CPU %.1fs (%.2f CPU-s per 1M delivered; bare writer %.2f), peak RSS %d MiB",
			fmt.Sprintf("%dMiB", maxBytes>>20), def, onDisk>>20, backlog, captureRate, got, limit, wall.Seconds(), startup.Seconds(), dropped, u.CPU.Seconds(), u.CPU.Seconds()/(float64(got)/1e6), bareCPU.Seconds()/(float64(n)/1e6), u.MaxRSS>>20)}
	if prof != "" {
		res.Notes += "; agent CPU profile " + prof
	}
	h.logf("drain: %d events in %.1fs (startup %.1fs) = %.0f/s vs bare %.0f/s (%.2f); agent CPU %.1fs, RSS %d MiB", got, wall.Seconds(), startup.Seconds(), rate, bareRate, rate/bareRate, u.CPU.Seconds(), u.MaxRSS>>20)
	res.apply(Target{"ratio", ">=", 0.8})
	return []Result{res}, nil
}

// bareWriterRate runs the bare kafka.Writer loop (`fwbench kafka-writer`)
// on n ECS lines into a fresh broker and returns its events/s and CPU.
func (h *harness) bareWriterRate(ctx context.Context, ecs string, n int) (float64, time.Duration, error) {
	br, err := h.codecBroker(ctx, "fw-bare")
	if err != nil {
		return 0, 0, err
	}
	defer br.Close()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, self(), "kafka-writer", "-broker", br.addr, "-topic", "fw-bare", "-in", ecs, "-compression", h.kafkaCompression)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("bare kafka-writer: %w: %s", err, tail(stderr.String(), 1000))
	}
	wall := time.Since(t0)
	if c, err := br.count(ctx, "fw-bare"); err != nil || c != int64(n) {
		return 0, 0, fmt.Errorf("bare kafka-writer delivered %d of %d (%v)", c, n, err)
	}
	return float64(n) / wall.Seconds(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
