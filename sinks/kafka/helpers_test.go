package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fileward/fileward/sinks"
)

const testTopic = "fileward-events"

// newCluster starts an in-process kfake broker on 127.0.0.1, with
// testTopic seeded with partitions partitions unless opts seed otherwise,
// and closes it when the test ends.
func newCluster(t testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, testTopic),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newSink builds a Sink for the cluster and closes it when the test ends.
func newSink(t testing.TB, c *kfake.Cluster, o Options) *Sink {
	t.Helper()
	o.Brokers = c.ListenAddrs()
	if o.Topic == "" {
		o.Topic = testTopic
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// sendAll sends evs in batches of size, like the shipper, and fails the
// test on any error or failure.
func sendAll(t testing.TB, s sinks.Sink, evs []sinks.Event, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for start := 0; start < len(evs); start += size {
		end := min(start+size, len(evs))
		res, err := s.Send(ctx, &sinks.Batch{Events: evs[start:end]})
		if err != nil {
			t.Fatalf("Send(events %d..%d): %v", start, end, err)
		}
		if len(res.Failures) > 0 {
			t.Fatalf("Send(events %d..%d): %d failures, first %d: %v", start, end,
				len(res.Failures), res.Failures[0].Index, res.Failures[0].Err)
		}
	}
}

// consume reads every record of topic up to the high watermark each
// partition has now, calling fn for each in partition order.
func consume(t testing.TB, c *kfake.Cluster, topic string, fn func(*kgo.Record), opts ...kgo.Opt) {
	t.Helper()
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for _, p := range c.PartitionInfos(topic) {
		if p.HighWatermark > 0 {
			want[p.Partition] = kgo.NewOffset().AtStart()
			left[p.Partition] = p.HighWatermark
		}
	}
	if len(want) == 0 {
		return
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		// Small fetches: under -race on a busy machine a large fetch
		// response can outlast the request timeout and be retried forever.
		kgo.FetchMaxBytes(4 << 20),
		kgo.FetchMaxPartitionBytes(1 << 20),
		kgo.RequestTimeoutOverhead(30 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatalf("kgo: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := 0
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		got += fs.NumRecords()
		if err := ctx.Err(); err != nil {
			t.Fatalf("consuming %s: %v after %d records; partitions not caught up: %v", topic, err, got, left)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("consuming %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			fn(r)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
}

// header returns the value of header key of r.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// idCounts returns how many records of topic carry each event.id header.
func idCounts(t testing.TB, c *kfake.Cluster, topic string, opts ...kgo.Opt) map[string]int {
	t.Helper()
	got := map[string]int{}
	consume(t, c, topic, func(r *kgo.Record) { got[header(r, HeaderEventID)]++ }, opts...)
	return got
}

// eventIndex parses the index out of an id made by sinktest.EventID.
func eventIndex(id string) (int, error) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0, errors.New("no index")
	}
	return strconv.Atoi(id[i+1:])
}

// shipUntilDelivered is the shipper's loop in miniature: it sends a batch,
// re-sends only what failed retryably after a short backoff, and returns
// the errors it saw. Permanent failures fail the test.
func shipUntilDelivered(ctx context.Context, s sinks.Sink, evs []sinks.Event) (seen []error, err error) {
	pending := evs
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return seen, err
		}
		res, err := s.Send(ctx, &sinks.Batch{Events: pending})
		if err != nil {
			if sinks.IsPermanent(err) {
				return seen, fmt.Errorf("permanent batch error: %w", err)
			}
			seen = append(seen, err)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var next []sinks.Event
		for _, f := range res.Failures {
			if sinks.IsPermanent(f.Err) {
				return seen, fmt.Errorf("permanent failure for %s: %w", pending[f.Index].ID, f.Err)
			}
			seen = append(seen, f.Err)
			next = append(next, pending[f.Index])
		}
		if len(next) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		pending = next
	}
	return seen, nil
}
