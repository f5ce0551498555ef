package kafka

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/sinktest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinktest.Verifier) {
		c := newCluster(t, 4)
		s, err := New(Options{Brokers: c.ListenAddrs(), Topic: testTopic, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s, func(ctx context.Context) (map[string]int, error) {
			return idCounts(t, c, testTopic), nil
		}
	})
}

// TestDelivers100k ships 100k events from 16 hosts in the shipper's batch
// size, consumes them back, and checks every message: event.id exactly
// once, key = host.id, headers, value byte for byte, and each host's
// events in one partition in order. The documents are cut to their
// identifying fields (about 100 bytes) and sent uncompressed so the test
// stays quick under -race; 1 KB documents go through the conformance, codec
// and benchmark runs.
func TestDelivers100k(t *testing.T) {
	const n, hosts, batch = 100_000, 16, 2048
	c := newCluster(t, 8)
	s := newSink(t, c, Options{BatchEvents: batch, Compression: "none"})
	evs := make([]sinks.Event, n)
	for i := range evs {
		id, host := sinktest.EventID("bulk", i), sinktest.HostID("bulk", i%hosts)
		evs[i] = sinks.Event{ID: id, Key: host, Doc: fmt.Appendf(nil,
			`{"event":{"id":%q,"sequence":%d},"host":{"id":%q},"file":{"path":"/srv/f%d"}}`, id, i/hosts, host, i)}
	}
	start := time.Now()
	sendAll(t, s, evs, batch)
	t.Logf("sent %d events in %v", n, time.Since(start))

	start = time.Now()
	defer func() { t.Logf("consumed and checked %d events in %v", n, time.Since(start)) }()
	seen := make([]bool, n)
	hostPartition := map[string]int32{}
	lastIndex := map[string]int{} // per host, the last event index read
	consume(t, c, testTopic, func(r *kgo.Record) {
		id := header(r, HeaderEventID)
		i, err := eventIndex(id)
		if err != nil || i >= n {
			t.Fatalf("record %d/%d: bad event.id %q", r.Partition, r.Offset, id)
		}
		if seen[i] {
			t.Fatalf("event %s delivered twice", id)
		}
		seen[i] = true
		ev := &evs[i]
		if string(r.Key) != ev.Key {
			t.Fatalf("event %s: key %q, want host.id %q", id, r.Key, ev.Key)
		}
		if !bytes.Equal(r.Value, ev.Doc) {
			t.Fatalf("event %s: value differs from the document sent", id)
		}
		if v := header(r, HeaderECSVersion); v != schema.ECSVersion {
			t.Fatalf("event %s: ecs.version header %q", id, v)
		}
		if v := header(r, HeaderContentType); v != ContentType {
			t.Fatalf("event %s: content-type header %q", id, v)
		}
		if p, ok := hostPartition[ev.Key]; ok && p != r.Partition {
			t.Fatalf("host %s in partitions %d and %d", ev.Key, p, r.Partition)
		}
		hostPartition[ev.Key] = r.Partition
		if last, ok := lastIndex[ev.Key]; ok && i <= last {
			t.Fatalf("host %s: event %d after %d, out of order", ev.Key, i, last)
		}
		lastIndex[ev.Key] = i
		if r.Timestamp.IsZero() || time.Since(r.Timestamp) > time.Hour {
			t.Fatalf("event %s: record timestamp %v, want the send time", id, r.Timestamp)
		}
	})
	for i, ok := range seen {
		if !ok {
			t.Fatalf("event %s never arrived", evs[i].ID)
		}
	}
	used := map[int32]bool{}
	for _, p := range hostPartition {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("%d hosts all landed in %d partition(s); the key should spread them", hosts, len(used))
	}
}

// TestCompressionCodecs round-trips every codec and checks the broker
// stored batches with that codec.
func TestCompressionCodecs(t *testing.T) {
	codecs := []struct {
		name string
		kgo  uint8 // the record batch's compression attribute
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}}
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2)
			s := newSink(t, c, Options{Compression: tc.name})
			evs := sinktest.Events("codec-"+tc.name, 1000, 3)
			sendAll(t, s, evs, 500)
			byID := map[string][]byte{}
			consume(t, c, testTopic, func(r *kgo.Record) {
				if got := r.Attrs.CompressionType(); got != tc.kgo {
					t.Fatalf("batch compression attribute %d, want %d (%s)", got, tc.kgo, tc.name)
				}
				byID[header(r, HeaderEventID)] = r.Value
			})
			if len(byID) != len(evs) {
				t.Fatalf("consumed %d distinct events, want %d", len(byID), len(evs))
			}
			for _, ev := range evs {
				if !bytes.Equal(byID[ev.ID], ev.Doc) {
					t.Fatalf("event %s did not round-trip", ev.ID)
				}
			}
		})
	}
}

func TestRequiredAcksAndOptions(t *testing.T) {
	for _, acks := range []string{"none", "one", "all"} {
		t.Run(acks, func(t *testing.T) {
			c := newCluster(t, 1)
			s := newSink(t, c, Options{RequiredAcks: acks})
			evs := sinktest.Events("acks-"+acks, 50, 1)
			sendAll(t, s, evs, 50)
			// With acks=none the broker does not answer, so wait for it
			// to have stored the batch before reading.
			deadline := time.Now().Add(5 * time.Second)
			for c.PartitionInfo(testTopic, 0).HighWatermark < 50 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			sinktest.ExpectExactly(t, idCounts(t, c, testTopic), evs)
		})
	}
	bad := []Options{
		{Topic: "t"},
		{Brokers: []string{""}, Topic: "t"},
		{Brokers: []string{"127.0.0.1:1"}},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Compression: "brotli"},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "t", RequiredAcks: "two"},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Timeout: -time.Second},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted invalid options", o)
		}
	}
}

// TestSmallBatchIsPrompt guards against kafka-go's default BatchTimeout of
// 1 s: a one-event Send must not wait for more messages.
func TestSmallBatchIsPrompt(t *testing.T) {
	c := newCluster(t, 1)
	s := newSink(t, c, Options{})
	sendAll(t, s, sinktest.Events("warm", 1, 1), 1) // metadata and connection
	evs := sinktest.Events("prompt", 20, 1)
	start := time.Now()
	for i := range evs {
		sendAll(t, s, evs[i:i+1], 1)
	}
	// The defect costs kafka-go's default BatchTimeout, 1 s, on every Send:
	// 20 s for these 20. Half of that is a deadline no loaded machine misses
	// on loopback, and no timing threshold: the speed itself is measured in
	// make bench.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("%d one-event Sends took %v; the writer is waiting for a batch to fill", len(evs), took)
	}
}

// probe builds the message Send would build for ev.
func (s *Sink) probe(ev *sinks.Event) kafkago.Message {
	return kafkago.Message{
		Key:   []byte(ev.Key),
		Value: ev.Doc,
		Headers: []kafkago.Header{
			{Key: HeaderEventID, Value: []byte(ev.ID)},
			{Key: HeaderECSVersion, Value: s.ecsVersion},
			{Key: HeaderContentType, Value: s.contentType},
		},
	}
}

type kafkaError = kafkago.Error

const kafkaMessageSizeTooLarge = kafkago.MessageSizeTooLarge

// With compression, a full spool batch (batch.max_bytes of documents and
// ids) goes out as one produce request: the writer's byte bound leaves
// room for each message's key and headers, which kafka-go counts and the
// spool batch does not.
func TestFullBatchIsOneProduceRequest(t *testing.T) {
	c := newCluster(t, 1)
	var requests atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests.Add(1)
		return nil, nil, false
	})
	const batchBytes = 1 << 20
	s := newSink(t, c, Options{Compression: "lz4", BatchBytes: batchBytes, BatchEvents: 2048})
	sendAll(t, s, sinktest.Events("warm", 1, 1), 1) // connections and metadata
	all := sinktest.Events("full", 2048, 1)
	// As the pipeline fills a batch: documents and ids up to batch.max_bytes.
	size, n := 0, 0
	for n < len(all) && size+len(all[n].Doc)+len(all[n].ID)+16 <= batchBytes {
		size += len(all[n].Doc) + len(all[n].ID) + 16
		n++
	}
	if n == len(all) {
		t.Fatalf("the test documents are too small to fill %d bytes", batchBytes)
	}
	evs := all[:n]
	kafkaBytes := int64(0) // kafka-go's own count of the same messages
	for i := range evs {
		m := s.probe(&evs[i])
		kafkaBytes += messageSize(&m)
	}
	if kafkaBytes <= batchBytes {
		t.Fatalf("kafka-go counts %d bytes, within %d: the test would not show the split", kafkaBytes, batchBytes)
	}
	before := requests.Load()
	res, err := s.Send(context.Background(), &sinks.Batch{Events: evs})
	if err != nil || len(res.Failures) > 0 {
		t.Fatalf("Send: %+v, %v", res, err)
	}
	if got := requests.Load() - before; got != 1 {
		t.Fatalf("a full batch of %d events (%d bytes) took %d produce requests, want 1", n, size, got)
	}
	counts := idCounts(t, c, testTopic)
	for _, ev := range evs {
		if counts[ev.ID] != 1 {
			t.Fatalf("event %s delivered %d times", ev.ID, counts[ev.ID])
		}
	}
}
