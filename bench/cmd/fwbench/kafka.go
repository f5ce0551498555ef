package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
	fwkafka "github.com/fileward/fileward/sinks/kafka"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// broker is a kfake cluster with one broker on 127.0.0.1 and
// single-partition topics (the agent keys by host.id, so one host's events
// share one partition anyway), run in a child process (`fwbench kfake`) so
// that its CPU and its garbage collector, which scans every stored record,
// are neither charged to nor slowing the process being measured; each
// measurement gets a fresh broker, so none inherits another's records.
type broker struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error
}

// newBrokerPartitions starts a storing broker (every record is kept, for
// rows that consume what was produced) with topics of the given partition
// count.
func (h *harness) newBrokerPartitions(ctx context.Context, partitions int, topics ...string) (*broker, error) {
	return h.startBroker(ctx, brokerOpts{partitions: partitions}, topics...)
}

// newBlackholeBroker is newBroker with kfake.BlackholeProduce: the broker
// acknowledges produce requests, checks their CRC and advances the offsets
// (so waitCount and count still see every delivered record), but stores
// nothing. The throughput rows use it, so that the broker's storage is
// not what they measure.
func (h *harness) newBlackholeBroker(ctx context.Context, topics ...string) (*broker, error) {
	return h.startBroker(ctx, brokerOpts{partitions: 1, blackhole: true}, topics...)
}

type brokerOpts struct {
	partitions int
	blackhole  bool
}

func (h *harness) startBroker(_ context.Context, o brokerOpts, topics ...string) (*broker, error) {
	args := []string{"kfake", "-partitions", strconv.Itoa(o.partitions)}
	if o.blackhole {
		args = append(args, "-blackhole")
	}
	for _, t := range topics {
		args = append(args, "-topic", t)
	}
	b := &broker{cmd: exec.Command(self(), args...), done: make(chan struct{})}
	// A storing broker keeps every record: collect garbage rarely, up to a
	// soft limit well above a million ECS records. A blackhole broker holds
	// nothing past a request, so the default collector keeps it small.
	if !o.blackhole {
		b.cmd.Env = append(os.Environ(), "GOGC=off", "GOMEMLIMIT=6GiB")
	}
	b.cmd.Stderr = h.logw
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "addr %s", &b.addr); err != nil || serr != nil {
		b.Close()
		return nil, fmt.Errorf("fwbench kfake printed %q (%v)", line, err)
	}
	return b, nil
}

// Close stops the broker and returns its CPU time.
func (b *broker) Close() time.Duration {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
	}
	return b.cmd.ProcessState.UserTime() + b.cmd.ProcessState.SystemTime()
}

// kfakeMain is the child process `fwbench kfake -topic T...`: it prints
// "addr HOST:PORT" and serves until SIGTERM.
func kfakeMain(args []string) int {
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	var topics []string
	fs.Func("topic", "topic to seed (repeat)", func(s string) error { topics = append(topics, s); return nil })
	partitions := fs.Int("partitions", 1, "partitions per topic")
	blackhole := fs.Bool("blackhole", false, "kfake.BlackholeProduce: acknowledge and count produced records without storing them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), topics...)}
	if *blackhole {
		opts = append(opts, kfake.BlackholeProduce())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	defer c.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	fmt.Printf("addr %s\n", c.ListenAddrs()[0])
	<-sig
	return 0
}

// count returns the records on topic (its high-water mark), the delivered
// count every Kafka row waits for and checks.
func (b *broker) count(ctx context.Context, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", b.addr, topic, 0)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ReadLastOffset()
}

// waitCount polls the topic until it holds n records or timeout passes, and
// returns when it got there.
func (b *broker) waitCount(ctx context.Context, topic string, n int64, timeout time.Duration, alive func() error) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last int64
	for {
		c, err := b.count(ctx, topic)
		if err == nil {
			last = c
			if c >= n {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("topic %s: %d of %d records after %v (last error %v)", topic, last, n, timeout, err)
		}
		if alive != nil {
			if err := alive(); err != nil {
				return time.Time{}, fmt.Errorf("topic %s at %d of %d: %w", topic, last, n, err)
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kafkaAgentFigures are the kafka row's agent figures, kept for the peer
// row's comparison.
type kafkaAgentFigures struct{ rate, cpuPerM, rssMiB float64 }

// newWriter is the bare kafka.Writer the baselines use: batches of
// batch.max_events and 1 MiB (issue 15's bare writer), the Kafka sink's
// batch timeout (fwkafka.BatchTimeout: a synchronous caller has nothing to
// wait for),
// acks all, hash balancer, one attempt. The sink, when it compresses,
// lets a spool batch's message overhead past the 1 MiB (sinks/kafka
// writerBatchBytes); the bare writer keeps the 1 MiB batches.
func newWriter(addr, topic, compression string) (*kafkago.Writer, error) {
	var codec kafkago.Compression
	switch compression {
	case "none", "":
	case "gzip":
		codec = kafkago.Gzip
	case "snappy":
		codec = kafkago.Snappy
	case "lz4":
		codec = kafkago.Lz4
	case "zstd":
		codec = kafkago.Zstd
	default:
		return nil, fmt.Errorf("compression %q", compression)
	}
	return &kafkago.Writer{
		Addr: kafkago.TCP(addr), Topic: topic, Balancer: &kafkago.Hash{},
		MaxAttempts: 1, BatchSize: 2048, BatchBytes: 1 << 20, BatchTimeout: fwkafka.BatchTimeout,
		RequiredAcks: kafkago.RequireAll, Compression: codec,
	}, nil
}

// eventID finds event.id in an ECS line (the first "id" key: the event
// object comes first after @timestamp).
func eventID(doc []byte) []byte {
	i := bytes.Index(doc, []byte(`"id":"`))
	if i < 0 {
		return nil
	}
	rest := doc[i+6:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// kafkaWriterMain is the child process `fwbench kafka-writer`: a bare
// kafka.Writer loop that reads ECS NDJSON and writes it in synchronous
// batches of 2048 with the same key and headers the sink sets, so that its
// rusage is the client's own cost.
func kafkaWriterMain(args []string) int {
	fs := flag.NewFlagSet("kafka-writer", flag.ContinueOnError)
	addr := fs.String("broker", "", "host:port")
	topic := fs.String("topic", "", "topic")
	in := fs.String("in", "", "ECS NDJSON")
	compression := fs.String("compression", "none", "codec")
	key := fs.String("key", "fwbench-host", "message key (host.id)")
	perCall := fs.Int("per-call", 2048, "messages per WriteMessages call")
	batchBytes := fs.Int64("batch-bytes", 1<<20, "kafka.Writer BatchBytes")
	headers := fs.Bool("headers", true, "set the sink's three headers on each message")
	batchTimeout := fs.Duration("batch-timeout", 0, "kafka.Writer BatchTimeout (default: the Kafka sink's)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process to FILE")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w, err := newWriter(*addr, *topic, *compression)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka-writer:", err)
		return 2
	}
	w.BatchBytes = *batchBytes
	w.BatchSize = max(*perCall, 1)
	if *batchTimeout > 0 {
		w.BatchTimeout = *batchTimeout
	}
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kafka-writer:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintln(os.Stderr, "kafka-writer:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka-writer:", err)
		return 1
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	k := []byte(*key)
	ecsv, ct := []byte(schema.ECSVersion), []byte(fwkafka.ContentType)
	msgs := make([]kafkago.Message, 0, max(*perCall, 1))
	ctx := context.Background()
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := w.WriteMessages(ctx, msgs...)
		msgs = msgs[:0]
		return err
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 1 {
			doc := line[:len(line)-1]
			m := kafkago.Message{Key: k, Value: doc, Time: time.Now()}
			if *headers {
				m.Headers = []kafkago.Header{{Key: fwkafka.HeaderEventID, Value: eventID(doc)},
					{Key: fwkafka.HeaderECSVersion, Value: ecsv}, {Key: fwkafka.HeaderContentType, Value: ct}}
			}
			msgs = append(msgs, m)
			if len(msgs) == cap(msgs) {
				if err := flush(); err != nil {
					fmt.Fprintln(os.Stderr, "kafka-writer:", err)
					return 1
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kafka-writer:", err)
			return 1
		}
	}
	if err := flush(); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-writer:", err)
		return 1
	}
	if err := w.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-writer:", err)
		return 1
	}
	// ru_maxrss would include the parent's RSS (see hwmSampler): report
	// this process's own VmHWM.
	if _, hwm, err := procStatus(os.Getpid()); err == nil {
		fmt.Printf("vmhwm %d\n", hwm)
	}
	return 0
}

// kafkaRun is one side-by-side measurement of the kafka row: the bare
// writer and then the agent, each on a fresh blackhole broker.
type kafkaRun struct {
	n            int
	docBytes     float64 // mean ECS document size
	bare         Usage
	bareBroker   time.Duration
	agent        Usage
	agentWall    time.Duration
	agentBroker  time.Duration
	delivered    int64 // records on the agent's topic
	dropped      int   // ring_full drops of the agent's replay (not delivered, not in the rate)
	agentProfile string
}

func (k kafkaRun) bareRate() float64  { return float64(k.n) / k.bare.Wall.Seconds() }
func (k kafkaRun) agentRate() float64 { return float64(k.n-k.dropped) / k.agentWall.Seconds() }
func (k kafkaRun) perM(d time.Duration, events int) float64 {
	return d.Seconds() / (float64(events) / 1e6)
}
func (k kafkaRun) bareCPUPerM() float64  { return k.perM(k.bare.CPU, k.n) }
func (k kafkaRun) agentCPUPerM() float64 { return k.perM(k.agent.CPU, k.n) }

// rowKafka measures the agent (replay of the eslogger input → pipeline →
// spool → Kafka sink, the real binary as a child) against a bare
// kafka.Writer loop (this binary as a child, `fwbench kafka-writer`)
// shipping the same ECS documents, both against a kfake broker with
// BlackholeProduce in a child process, fresh for each: events/s and CPU-s
// per 1M events from each child's rusage, and peak RSS. It does so twice:
// with the eslogger recording's documents (~1.6 KB) and with the smallest
// documents the agent writes (open events without stat or code signing,
// ~1.1 KB), in kafkaRounds alternating rounds whose medians it reports.
// Then it compares the Kafka sink's Send loop with a bare Writer loop in
// this process on the same in-memory batches (issue 4's sink figure).
func (h *harness) rowKafka(ctx context.Context) ([]Result, error) {
	n := h.kafkaEvents()
	esl, err := h.eslInput(n)
	if err != nil {
		return nil, err
	}
	ecs, err := h.ecsInput(ctx, n)
	if err != nil {
		return nil, err
	}
	eslSmall, err := h.eslSmallInput(n)
	if err != nil {
		return nil, err
	}
	ecsSmall, err := h.ecsInputOf(ctx, eslSmall, n)
	if err != nil {
		return nil, err
	}
	// On a shared 2-core machine one side-by-side pair moves by a factor
	// of two from run to run: the figures are medians of alternating
	// rounds, each round's ratios taken between runs made next to each
	// other in time.
	rounds := h.kafkaRounds()
	var bigs, smalls []kafkaRun
	for i := 0; i < rounds; i++ {
		big, err := h.kafkaSideBySide(ctx, "kafka", esl, ecs, n)
		if err != nil {
			return nil, err
		}
		small, err := h.kafkaSideBySide(ctx, "kafka-small", eslSmall, ecsSmall, n)
		if err != nil {
			return nil, err
		}
		bigs, smalls = append(bigs, big), append(smalls, small)
	}
	big := summarize(bigs)
	h.kafkaAgent = kafkaAgentFigures{rate: big.rate, cpuPerM: big.cpuPerM, rssMiB: big.rssMiB}

	note := func(k kafkaSummary) string {
		r := k.runs[len(k.runs)-1]
		s := fmt.Sprintf("%d events, mean ECS document %.0f bytes; compression %s, acks all, kfake BlackholeProduce broker (a fresh child process for each side); "+
			"median of %d alternating rounds (bare writer, then agent): agent events/s %v, bare %v, ratios %v; "+
			"last round: %d records on the agent's topic, %d ring_full drops (not in the rate); broker CPU %.1fs (agent) vs %.1fs (bare); wall %.2fs (agent, process start to last record) vs %.2fs (bare)",
			r.n, r.docBytes, h.kafkaCompression, len(k.runs), fmtRates(k.rates), fmtRates(k.bareRates), fmtRatios(k.rateRatios),
			r.delivered, r.dropped, r.agentBroker.Seconds(), r.bareBroker.Seconds(), r.agentWall.Seconds(), r.bare.Wall.Seconds())
		if r.agentProfile != "" {
			s += "; agent CPU profile (last round) " + r.agentProfile
		}
		return s
	}
	const bareName = "bare kafka.Writer loop (child process) on the same ECS documents"
	var out []Result
	for _, x := range []struct {
		prefix string
		k      kafkaSummary
	}{{"kafka.agent", big}, {"kafka.agent_small_docs", summarize(smalls)}} {
		k := x.k
		rate := Result{Name: x.prefix + "_events_per_s", Value: k.rate, Unit: "events/s", Baseline: k.bareRate, BaselineUnit: "events/s",
			BaselineName: bareName, Ratio: k.rateRatio, RatioMeans: "ours / bare writer (median of the rounds' ratios)", Notes: note(k)}
		cpu := Result{Name: x.prefix + "_cpu_s_per_1M", Value: k.cpuPerM, Unit: "CPU-s/1M events", Baseline: k.bareCPUPerM, BaselineUnit: "CPU-s/1M events",
			BaselineName: bareName, Ratio: k.cpuRatio, RatioMeans: "ours / bare writer (median of the rounds' ratios)",
			Notes: fmt.Sprintf("agent CPU-s per 1M %v, bare %v, ratios %v; last round: agent user %.2fs sys %.2fs (eslogger parsing, ECS encoding, spool write and read, Kafka sink); bare user %.2fs sys %.2fs",
				fmtRatios(k.cpus), fmtRatios(k.bareCPUs), fmtRatios(k.cpuRatios), k.last().agent.User.Seconds(), k.last().agent.Sys.Seconds(), k.last().bare.User.Seconds(), k.last().bare.Sys.Seconds())}
		rss := Result{Name: x.prefix + "_peak_rss", Value: k.rssMiB, Unit: "MiB", Baseline: k.bareRSSMiB,
			BaselineUnit: "MiB", BaselineName: "bare kafka.Writer loop", Notes: "the highest peak VmHWM of the fileward child over the rounds (sampled from /proc)"}
		rss.apply(Target{"value", "<=", 100})
		if x.prefix == "kafka.agent" {
			rate.apply(Target{"ratio", ">=", 0.8})
			cpu.apply(Target{"ratio", "<=", 1.5})
		} else {
			// The issue states ≥ 300k events/s for 620-byte documents; the
			// agent's smallest documents are larger (see bench/README.md).
			rate.apply(Target{"value", ">=", 300000})
		}
		out = append(out, rate, cpu, rss)
	}

	sinkRes, err := h.kafkaSinkVsWriter(ctx, ecs)
	if err != nil {
		return out, err
	}
	return append(out, sinkRes), nil
}

// kafkaRounds is the number of alternating side-by-side rounds of the
// kafka row: FWBENCH_KAFKA_ROUNDS, default 3 (1 with -smoke).
func (h *harness) kafkaRounds() int {
	if h.smoke {
		return 1
	}
	return envOr("FWBENCH_KAFKA_ROUNDS", 3)
}

// kafkaSummary is the median figures of a kafka row's rounds: each ratio
// is the median of the rounds' own ratios (agent and bare writer measured
// next to each other), each value the median of the rounds' values; peak
// RSS is the highest of any round.
type kafkaSummary struct {
	runs                           []kafkaRun
	rates, bareRates, rateRatios   []float64
	cpus, bareCPUs, cpuRatios      []float64
	rate, bareRate, rateRatio      float64
	cpuPerM, bareCPUPerM, cpuRatio float64
	rssMiB, bareRSSMiB             float64
}

func (k kafkaSummary) last() kafkaRun { return k.runs[len(k.runs)-1] }

func summarize(runs []kafkaRun) kafkaSummary {
	k := kafkaSummary{runs: runs}
	for _, r := range runs {
		k.rates = append(k.rates, r.agentRate())
		k.bareRates = append(k.bareRates, r.bareRate())
		k.rateRatios = append(k.rateRatios, r.agentRate()/r.bareRate())
		k.cpus = append(k.cpus, r.agentCPUPerM())
		k.bareCPUs = append(k.bareCPUs, r.bareCPUPerM())
		k.cpuRatios = append(k.cpuRatios, r.agent.CPU.Seconds()/r.bare.CPU.Seconds())
		k.rssMiB = max(k.rssMiB, float64(r.agent.MaxRSS)/(1<<20))
		k.bareRSSMiB = max(k.bareRSSMiB, float64(r.bare.MaxRSS)/(1<<20))
	}
	k.rate, k.bareRate, k.rateRatio = median(k.rates), median(k.bareRates), median(k.rateRatios)
	k.cpuPerM, k.bareCPUPerM, k.cpuRatio = median(k.cpus), median(k.bareCPUs), median(k.cpuRatios)
	return k
}

func fmtRatios(xs []float64) string {
	var p []string
	for _, x := range xs {
		p = append(p, strconv.FormatFloat(x, 'f', 3, 64))
	}
	return "[" + strings.Join(p, " ") + "]"
}

// kafkaSideBySide runs the bare writer on ecs and then the agent on esl
// (the same n events), each against a fresh blackhole broker.
func (h *harness) kafkaSideBySide(ctx context.Context, name, esl, ecs string, n int) (kafkaRun, error) {
	k := kafkaRun{n: n}
	if fi, err := os.Stat(ecs); err == nil {
		k.docBytes = float64(fi.Size())/float64(n) - 1
	}
	br, err := h.newBlackholeBroker(ctx, "fw-bare")
	if err != nil {
		return k, err
	}
	args := []string{"kafka-writer", "-broker", br.addr, "-topic", "fw-bare", "-in", ecs, "-compression", h.kafkaCompression}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, self(), args...)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Run(); err != nil {
		br.Close()
		return k, fmt.Errorf("bare kafka-writer: %w: %s", err, tail(stderr.String(), 1000))
	}
	k.bare = usageOf(cmd.ProcessState, time.Since(t0))
	if _, err := fmt.Sscanf(stdout.String(), "vmhwm %d", &k.bare.MaxRSS); err != nil {
		br.Close()
		return k, fmt.Errorf("bare kafka-writer printed no vmhwm: %q", stdout.String())
	}
	if c, err := br.count(ctx, "fw-bare"); err != nil || c != int64(n) {
		br.Close()
		return k, fmt.Errorf("bare kafka-writer delivered %d of %d (%v)", c, n, err)
	}
	k.bareBroker = br.Close()
	h.logf("%s: bare writer: %d events in %v, CPU %v; broker CPU %v", name, n, k.bare.Wall.Round(time.Millisecond), k.bare.CPU.Round(time.Millisecond), k.bareBroker.Round(time.Millisecond))

	if br, err = h.newBlackholeBroker(ctx, "fw-agent"); err != nil {
		return k, err
	}
	defer br.Close()
	dir := filepath.Join(h.work, name+"-agent")
	sink := fmt.Sprintf(`  - name: kafka
    type: kafka
    kafka: { brokers: [%q], topic: fw-agent, compression: %s, required_acks: all }`, br.addr, h.kafkaCompression)
	bin, env := h.fileward, []string(nil)
	if h.profile != "" {
		k.agentProfile = filepath.Join(filepath.Dir(h.profile), name+".cpu.pprof")
		bin, env = h.profiled, []string{"FWBENCH_CPUPROFILE=" + k.agentProfile}
	}
	a, err := h.startAgent(ctx, bin, agentConfig{DataDir: dir, Input: esl, Sinks: sink, Backfill: true}, env...)
	if err != nil {
		return k, err
	}
	// The replay is a backfill (it waits for ring space), so nothing
	// should be lost; any event counted lost anyway is left out of the
	// rate. Done when the topic holds every event not counted lost (loss
	// reports travel on the topic too, so it may end a few records early).
	var dropped float64
	at, err := a.waitFor(ctx, "records on the topic plus drops", float64(n), h.timeout(n), func() (float64, error) {
		c, err := br.count(ctx, "fw-agent")
		if err != nil {
			return 0, err
		}
		dropped, _ = a.metric("fileward_events_dropped_total") // absent until the first drop
		return float64(c) + dropped, nil
	})
	if err != nil {
		a.kill()
		return k, err
	}
	k.agentWall = at.Sub(a.start)
	k.dropped = int(dropped)
	if k.agentProfile != "" {
		if err := h.stopProfile(a, k.agentProfile); err != nil {
			return k, err
		}
	}
	if k.agent, err = a.stop(); err != nil {
		return k, err
	}
	k.delivered, _ = br.count(ctx, "fw-agent")
	k.agentBroker = br.Close()
	os.RemoveAll(dir)
	h.logf("%s: agent: %d records on the broker (%d ring_full) in %v, CPU %v, maxrss %d MiB", name, k.delivered, k.dropped, k.agentWall.Round(time.Millisecond), k.agent.CPU.Round(time.Millisecond), k.agent.MaxRSS>>20)
	return k, nil
}

// kafkaSinkVsWriter alternates, in this process, the Kafka sink's Send
// over batches of 2048 and a bare Writer over the same messages, three
// rounds each on one blackhole broker, and compares the median rates.
func (h *harness) kafkaSinkVsWriter(ctx context.Context, ecs string) (Result, error) {
	n := min(h.kafkaEvents(), 200000)
	docs, err := readLines(ecs, n)
	if err != nil {
		return Result{}, err
	}
	batches := make([]sinks.Batch, 0, n/2048+1)
	for i := 0; i < len(docs); i += 2048 {
		var b sinks.Batch
		for _, d := range docs[i:min(i+2048, len(docs))] {
			b.Events = append(b.Events, sinks.Event{ID: string(eventID(d)), Key: "fwbench-host", Doc: d})
		}
		batches = append(batches, b)
	}
	rounds := 3
	if h.smoke {
		rounds = 1
	}
	var topics []string
	for i := 0; i < rounds; i++ {
		topics = append(topics, fmt.Sprintf("sink-%d", i), fmt.Sprintf("writer-%d", i))
	}
	br, err := h.newBlackholeBroker(ctx, topics...)
	if err != nil {
		return Result{}, err
	}
	defer br.Close()
	ecsv, ct := []byte(schema.ECSVersion), []byte(fwkafka.ContentType)
	var sinkRates, writerRates []float64
	for i := 0; i < rounds; i++ {
		s, err := fwkafka.New(fwkafka.Options{Brokers: []string{br.addr}, Topic: fmt.Sprintf("sink-%d", i), Compression: h.kafkaCompression, RequiredAcks: "all"})
		if err != nil {
			return Result{}, err
		}
		t0 := time.Now()
		for j := range batches {
			res, err := s.Send(ctx, &batches[j])
			if err != nil || len(res.Failures) > 0 {
				s.Close(ctx)
				return Result{}, fmt.Errorf("kafka sink send: %v (%d failures)", err, len(res.Failures))
			}
		}
		sinkRates = append(sinkRates, float64(len(docs))/time.Since(t0).Seconds())
		s.Close(ctx)

		w, err := newWriter(br.addr, fmt.Sprintf("writer-%d", i), h.kafkaCompression)
		if err != nil {
			return Result{}, err
		}
		t0 = time.Now()
		for j := range batches {
			msgs := make([]kafkago.Message, len(batches[j].Events))
			now := time.Now()
			for k, ev := range batches[j].Events {
				msgs[k] = kafkago.Message{Key: []byte(ev.Key), Value: ev.Doc, Time: now, Headers: []kafkago.Header{
					{Key: fwkafka.HeaderEventID, Value: []byte(ev.ID)}, {Key: fwkafka.HeaderECSVersion, Value: ecsv}, {Key: fwkafka.HeaderContentType, Value: ct}}}
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				w.Close()
				return Result{}, fmt.Errorf("bare writer: %w", err)
			}
		}
		writerRates = append(writerRates, float64(len(docs))/time.Since(t0).Seconds())
		w.Close()
		for _, t := range []string{fmt.Sprintf("sink-%d", i), fmt.Sprintf("writer-%d", i)} {
			if c, err := br.count(ctx, t); err != nil || c != int64(len(docs)) {
				return Result{}, fmt.Errorf("topic %s holds %d of %d (%v)", t, c, len(docs), err)
			}
		}
	}
	s, w := median(sinkRates), median(writerRates)
	r := Result{Name: "kafka.sink_vs_writer", Value: s, Unit: "events/s", Baseline: w, BaselineUnit: "events/s",
		BaselineName: "bare kafka.Writer, same batches of 2048, same broker", Ratio: s / w, RatioMeans: "sink / bare writer",
		Notes: fmt.Sprintf("in-process, %d events, median of %d alternating rounds: sink %v, writer %v", len(docs), rounds, fmtRates(sinkRates), fmtRates(writerRates))}
	r.apply(Target{"ratio", ">=", 0.9})
	return r, nil
}

func readLines(path string, n int) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out [][]byte
	for len(out) < n {
		line, err := r.ReadBytes('\n')
		if len(line) > 1 {
			out = append(out, bytes.TrimSuffix(line, []byte("\n")))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func fmtRates(xs []float64) string {
	var p []string
	for _, x := range xs {
		p = append(p, trim(x))
	}
	return "[" + strings.Join(p, " ") + "]"
}

// kafkaEvents is the event count of the Kafka and peer rows:
// min(-events, FWBENCH_KAFKA_EVENTS or 1000000). Their brokers are
// blackholes (kfake.BlackholeProduce); a storing kfake slows down
// super-linearly with the records it holds (a bare kafka.Writer got 39k
// events/s at 100k records and 8k/s at 1M, with the broker burning 30
// CPU-s), which is why these rows once stopped at 200k events.
func (h *harness) kafkaEvents() int {
	return min(h.events, envOr("FWBENCH_KAFKA_EVENTS", 1000000))
}

// timeout is how long an end-to-end row may take for n events: generous
// (5k events/s), so a slow or busy machine still finishes, a hang does not.
func (h *harness) timeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n/5000)*time.Second
}

// self is this program's path, for the child subcommands.
func self() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return os.Args[0]
}
