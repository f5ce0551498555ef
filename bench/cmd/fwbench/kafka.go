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

func (h *harness) newBroker(ctx context.Context, topics ...string) (*broker, error) {
	return h.newBrokerPartitions(ctx, 1, topics...)
}

// newBrokerPartitions is newBroker with topics of the given partition count.
func (h *harness) newBrokerPartitions(_ context.Context, partitions int, topics ...string) (*broker, error) {
	args := []string{"kfake", "-partitions", strconv.Itoa(partitions)}
	for _, t := range topics {
		args = append(args, "-topic", t)
	}
	b := &broker{cmd: exec.Command(self(), args...), done: make(chan struct{})}
	// The broker keeps every record: collect garbage rarely, up to a soft
	// limit well above a million ECS records.
	b.cmd.Env = append(os.Environ(), "GOGC=off", "GOMEMLIMIT=6GiB")
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), topics...))
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

// newWriter is the bare kafka.Writer the baselines use, set up as the
// Kafka sink sets up its own (sinks/kafka New): batch of batch.max_events
// and 1 MiB, 2 ms batch timeout, acks all, hash balancer, one attempt.
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
		MaxAttempts: 1, BatchSize: 2048, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond,
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w, err := newWriter(*addr, *topic, *compression)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka-writer:", err)
		return 2
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
	msgs := make([]kafkago.Message, 0, 2048)
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
			msgs = append(msgs, kafkago.Message{Key: k, Value: doc, Time: time.Now(), Headers: []kafkago.Header{
				{Key: fwkafka.HeaderEventID, Value: eventID(doc)}, {Key: fwkafka.HeaderECSVersion, Value: ecsv},
				{Key: fwkafka.HeaderContentType, Value: ct}}})
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

// rowKafka measures, on one kfake broker in this process:
//   - the agent (replay of the eslogger input → pipeline → spool → Kafka
//     sink) as a child process, against a bare kafka.Writer loop (this
//     binary as a child, `fwbench kafka-writer`) shipping the same ECS
//     lines: events/s and CPU-s per 1M from each child's rusage;
//   - the Kafka sink's Send loop against the bare Writer loop in this
//     process on the same in-memory batches (issue 4's sink figure).
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
	br, err := h.newBroker(ctx, "fw-bare")
	if err != nil {
		return nil, err
	}

	// The bare client first, as a child process.
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, self(), "kafka-writer", "-broker", br.addr, "-topic", "fw-bare", "-in", ecs, "-compression", h.kafkaCompression)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bare kafka-writer: %w: %s", err, tail(stderr.String(), 1000))
	}
	bare := usageOf(cmd.ProcessState, time.Since(t0))
	if _, err := fmt.Sscanf(stdout.String(), "vmhwm %d", &bare.MaxRSS); err != nil {
		return nil, fmt.Errorf("bare kafka-writer printed no vmhwm: %q", stdout.String())
	}
	if c, err := br.count(ctx, "fw-bare"); err != nil || c != int64(n) {
		return nil, fmt.Errorf("bare kafka-writer delivered %d of %d (%v)", c, n, err)
	}
	bareBroker := br.Close()
	h.logf("kafka: bare writer: %d events in %v, CPU %v; broker CPU %v", n, bare.Wall.Round(time.Millisecond), bare.CPU.Round(time.Millisecond), bareBroker.Round(time.Millisecond))
	if br, err = h.newBroker(ctx, "fw-agent"); err != nil {
		return nil, err
	}
	defer br.Close()

	// The agent.
	dir := h.work + "/kafka-agent"
	sink := fmt.Sprintf(`  - name: kafka
    type: kafka
    kafka: { brokers: [%q], topic: fw-agent, compression: %s, required_acks: all }`, br.addr, h.kafkaCompression)
	a, err := h.startAgent(ctx, h.fileward, agentConfig{DataDir: dir, Input: esl, Sinks: sink})
	if err != nil {
		return nil, err
	}
	alive := func() error {
		select {
		case <-a.done:
			return fmt.Errorf("fileward run exited (%v): %s", a.waitErr, tail(a.stderr.String(), 1500))
		default:
			return nil
		}
	}
	at, err := br.waitCount(ctx, "fw-agent", int64(n), h.timeout(n), alive)
	if err != nil {
		a.kill()
		return nil, err
	}
	agentWall := at.Sub(a.start)
	u, err := a.stop()
	if err != nil {
		return nil, err
	}
	got, _ := br.count(ctx, "fw-agent")
	agentBroker := br.Close()
	h.logf("kafka: agent: %d events on the broker in %v, CPU %v, maxrss %d MiB", got, agentWall.Round(time.Millisecond), u.CPU.Round(time.Millisecond), u.MaxRSS>>20)

	rate := float64(n) / agentWall.Seconds()
	bareRate := float64(n) / bare.Wall.Seconds()
	perM := func(d time.Duration) float64 { return d.Seconds() / (float64(n) / 1e6) }
	note := fmt.Sprintf("compression %s, acks all, a fresh kfake broker process for each; %d records on the broker for %d events; broker CPU %.1fs (agent) vs %.1fs (bare)",
		h.kafkaCompression, got, n, agentBroker.Seconds(), bareBroker.Seconds())
	r1 := Result{Name: "kafka.agent_events_per_s", Value: rate, Unit: "events/s", Baseline: bareRate, BaselineUnit: "events/s",
		BaselineName: "bare kafka.Writer loop (child process) on the same ECS lines", Ratio: rate / bareRate, RatioMeans: "ours / bare writer", Notes: note}
	r1.apply(Target{"value", ">=", 300000})
	r2 := Result{Name: "kafka.agent_cpu_s_per_1M", Value: perM(u.CPU), Unit: "CPU-s/1M events", Baseline: perM(bare.CPU), BaselineUnit: "CPU-s/1M events",
		BaselineName: "bare kafka.Writer loop", Ratio: u.CPU.Seconds() / bare.CPU.Seconds(), RatioMeans: "ours / bare writer (issue expects about 2x)",
		Notes: fmt.Sprintf("agent user %.2fs sys %.2fs; includes eslogger parsing, ECS encoding, spool", u.User.Seconds(), u.Sys.Seconds())}
	r2.apply(Target{"value", "<=", 4})
	r3 := Result{Name: "kafka.agent_peak_rss", Value: float64(u.MaxRSS) / (1 << 20), Unit: "MiB", Baseline: float64(bare.MaxRSS) / (1 << 20), BaselineUnit: "MiB", BaselineName: "bare kafka.Writer loop"}

	h.kafkaAgent = kafkaAgentFigures{rate: rate, cpuPerM: r2.Value, rssMiB: r3.Value}
	sinkRes, err := h.kafkaSinkVsWriter(ctx, ecs)
	if err != nil {
		return nil, err
	}
	return []Result{r1, r2, r3, sinkRes}, nil
}

// kafkaSinkVsWriter alternates, in this process, the Kafka sink's Send
// over batches of 2048 and a bare Writer over the same messages, three
// rounds each on a fresh broker, and compares the median rates.
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
	br, err := h.newBroker(ctx, topics...)
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
// min(-events, FWBENCH_KAFKA_EVENTS or 200000). kfake slows down
// super-linearly with the records it holds (here: 39k events/s from a
// bare kafka.Writer at 100k records, 8k/s at 1M with the broker burning
// 30 CPU-s), so at 1M the broker, not the sender, sets the rate.
func (h *harness) kafkaEvents() int {
	return min(h.events, envOr("FWBENCH_KAFKA_EVENTS", 200000))
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
