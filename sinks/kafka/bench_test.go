package kafka

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/sinktest"
)

// The two benchmarks ship the same ~1 KB ECS documents, in batches of the
// pipeline's default 2048 events, with the same writer settings (hash on
// host.id, acks=all, zstd, the sink's batch timeout), to one shared kfake broker
// that acknowledges produce requests without storing them. Compare:
//
//	go test -run '^$' -bench Kafka -benchtime 100000x -count 3 ./sinks/kafka/
const benchBatch = 2048

var benchEnv = sync.OnceValues(func() (*kfake.Cluster, []sinks.Event) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, testTopic), kfake.BlackholeProduce())
	if err != nil {
		panic(err)
	}
	return c, sinktest.Events("bench", 16*benchBatch, 16)
})

func benchLoop(b *testing.B, evs []sinks.Event, send func(evs []sinks.Event)) {
	size := 0
	for _, ev := range evs {
		size += len(ev.Doc)
	}
	b.SetBytes(int64(size / len(evs)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for sent := 0; sent < b.N; {
		off := sent % len(evs)
		n := min(benchBatch, b.N-sent, len(evs)-off)
		send(evs[off : off+n])
		sent += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// CPU time of the whole process (client and in-process broker) per
	// event: steadier than wall time on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/event")
}

// processCPU is the user+system CPU time the process has used, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkKafkaSink(b *testing.B) {
	c, evs := benchEnv()
	s, err := New(Options{Brokers: c.ListenAddrs(), Topic: testTopic, BatchEvents: benchBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	benchLoop(b, evs, func(evs []sinks.Event) {
		res, err := s.Send(ctx, &sinks.Batch{Events: evs})
		if err != nil || len(res.Failures) > 0 {
			b.Fatalf("Send: %+v, %v", res, err)
		}
	})
}

// BenchmarkKafkaWriterBare is the baseline: a kafka.Writer loop writing
// messages built once in advance (same key, value and headers), with no
// sink around it.
func BenchmarkKafkaWriterBare(b *testing.B) {
	c, evs := benchEnv()
	w, msgs := newBareWriter(c, evs)
	defer w.Close()
	ctx := context.Background()
	benchLoop(b, evs, func(batch []sinks.Event) {
		off := cap(evs) - cap(batch) // batch is a window of evs
		if err := w.WriteMessages(ctx, msgs[off:off+len(batch)]...); err != nil {
			b.Fatalf("WriteMessages: %v", err)
		}
	})
}

// newBareWriter is the baseline: a kafka.Writer with the sink's settings
// and messages built once in advance (same key, value and headers), with
// no sink around it.
func newBareWriter(c *kfake.Cluster, evs []sinks.Event) (*kafkago.Writer, []kafkago.Message) {
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(c.ListenAddrs()...),
		Topic:        testTopic,
		Balancer:     &kafkago.Hash{},
		MaxAttempts:  1,
		BatchSize:    benchBatch,
		BatchBytes:   1 << 20,
		BatchTimeout: BatchTimeout,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		RequiredAcks: kafkago.RequireAll,
		Compression:  kafkago.Zstd,
		Transport:    &kafkago.Transport{ClientID: "fileward"},
	}
	msgs := make([]kafkago.Message, len(evs))
	ecs, ct := []byte(schema.ECSVersion), []byte(ContentType)
	now := time.Now()
	for i, ev := range evs {
		msgs[i] = kafkago.Message{Key: []byte(ev.Key), Value: ev.Doc, Time: now, Headers: []kafkago.Header{
			{Key: HeaderEventID, Value: []byte(ev.ID)},
			{Key: HeaderECSVersion, Value: ecs},
			{Key: HeaderContentType, Value: ct},
		}}
	}
	return w, msgs
}

// BenchmarkKafkaPaired alternates, batch by batch, a Send through the sink
// and the same batch through the bare writer, timing each side, so both see
// the same load at the same moments: on a shared machine this ratio is far
// steadier than two separate runs. b.N counts events per side.
func BenchmarkKafkaPaired(b *testing.B) {
	c, evs := benchEnv()
	s, err := New(Options{Brokers: c.ListenAddrs(), Topic: testTopic, BatchEvents: benchBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	w, msgs := newBareWriter(c, evs)
	defer w.Close()
	ctx := context.Background()
	var sinkTime, bareTime time.Duration
	b.ResetTimer()
	for sent, k := 0, 0; sent < b.N; k++ {
		off := sent % len(evs)
		n := min(benchBatch, b.N-sent, len(evs)-off)
		sendSink := func() {
			t0 := time.Now()
			res, err := s.Send(ctx, &sinks.Batch{Events: evs[off : off+n]})
			sinkTime += time.Since(t0)
			if err != nil || len(res.Failures) > 0 {
				b.Fatalf("Send: %+v, %v", res, err)
			}
		}
		sendBare := func() {
			t0 := time.Now()
			err := w.WriteMessages(ctx, msgs[off:off+n]...)
			bareTime += time.Since(t0)
			if err != nil {
				b.Fatalf("WriteMessages: %v", err)
			}
		}
		if k%2 == 0 { // alternate who goes first
			sendSink()
			sendBare()
		} else {
			sendBare()
			sendSink()
		}
		sent += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/sinkTime.Seconds(), "sink-events/s")
	b.ReportMetric(float64(b.N)/bareTime.Seconds(), "bare-events/s")
	b.ReportMetric(bareTime.Seconds()/sinkTime.Seconds(), "sink/bare")
}
