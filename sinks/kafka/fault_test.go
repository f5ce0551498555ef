package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestBrokerRestart stops the broker in the middle of a stream and starts
// it again on the same port with the same data. While it is down Send
// returns retryable errors; a shipper-like retry loop then delivers
// everything, and nothing sent is missing afterwards.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c1 := newCluster(t, 4, kfake.DataDir(dir))
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	s := newSink(t, c1, Options{Timeout: time.Second})

	const batches, size = 40, 250
	evs := sinktest.Events("restart", batches*size, 4)
	var acked atomic.Int32
	type outcome struct {
		seen []error
		err  error
	}
	done := make(chan outcome, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go func() {
		var all []error
		for b := range batches {
			seen, err := shipUntilDelivered(ctx, s, evs[b*size:(b+1)*size])
			all = append(all, seen...)
			if err != nil {
				done <- outcome{all, err}
				return
			}
			acked.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
		done <- outcome{all, nil}
	}()

	for acked.Load() < batches/4 {
		time.Sleep(time.Millisecond)
	}
	c1.Close()
	ackedAtStop := acked.Load()
	time.Sleep(1500 * time.Millisecond) // the loop keeps failing meanwhile
	if acked.Load() > ackedAtStop+1 {
		t.Errorf("%d batches acknowledged while the broker was down", acked.Load()-ackedAtStop)
	}

	var c2 *kfake.Cluster
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		c2, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarting kfake on port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(c2.Close)

	out := <-done
	if out.err != nil {
		t.Fatalf("shipping across the restart: %v", out.err)
	}
	if len(out.seen) == 0 {
		t.Fatal("Send reported no error while the broker was down")
	}
	for _, err := range out.seen {
		if sinks.IsPermanent(err) || !IsRetryable(err) {
			t.Fatalf("error while the broker was down is not retryable: %v", err)
		}
	}
	t.Logf("%d retryable errors while down, e.g. %v", len(out.seen), out.seen[0])

	got := idCounts(t, c2, testTopic)
	dups := 0
	for _, ev := range evs {
		switch n := got[ev.ID]; {
		case n == 0:
			t.Fatalf("%s lost across the restart", ev.ID)
		case n > 1:
			dups++
		}
	}
	if len(got) != len(evs) {
		t.Fatalf("topic holds %d distinct ids, sent %d", len(got), len(evs))
	}
	t.Logf("all %d events present; %d re-sent duplicates (at-least-once)", len(evs), dups)
}

// TestMessageTooLarge sends a batch in which one event is over the topic's
// max.message.bytes and one is over the sink's own limit: exactly those two
// indexes fail permanently, and every other event is delivered once.
func TestMessageTooLarge(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4)
	const topic = "small-messages"
	if err := c.CreateTopic(topic, 4, map[string]string{"max.message.bytes": strconv.Itoa(256 << 10)}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, c, Options{Topic: topic, Compression: "none"})
	evs := sinktest.Events("big", 400, 8)
	const brokerBig, clientBig = 137, 301
	evs[brokerBig].Doc = bigDoc(evs[brokerBig].ID, 300<<10) // over the topic's 256 KiB
	evs[clientBig].Doc = bigDoc(evs[clientBig].ID, 2<<20)   // over the sink's 1 MiB
	res, err := s.Send(context.Background(), &sinks.Batch{Events: evs})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	failed := map[int]error{}
	for _, f := range res.Failures {
		failed[f.Index] = f.Err
	}
	if len(failed) != 2 || failed[brokerBig] == nil || failed[clientBig] == nil {
		t.Fatalf("failures %v, want exactly indexes %d and %d", failed, brokerBig, clientBig)
	}
	for i, err := range failed {
		if !sinks.IsPermanent(err) || !errors.Is(err, kafkaMessageSizeTooLarge) {
			t.Errorf("failure %d = %v, want a permanent message-size error", i, err)
		}
	}
	want := append(append([]sinks.Event{}, evs[:brokerBig]...), evs[brokerBig+1:clientBig]...)
	want = append(want, evs[clientBig+1:]...)
	sinktest.ExpectExactly(t, idCounts(t, c, topic), want)
}

// TestMessageSizeLimitMatchesKafkaGo pins messageSize to kafka-go's own
// estimate: a message exactly at the limit goes through kafka-go's
// client-side check (which would fail the whole call), one byte more is
// refused by the sink alone.
func TestMessageSizeLimitMatchesKafkaGo(t *testing.T) {
	c := newCluster(t, 1, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(8 << 20)}))
	s := newSink(t, c, Options{Compression: "none", BatchBytes: 2 << 20})
	evs := sinktest.Events("edge", 3, 1)
	for i, extra := range []int{0, 1} {
		ev := &evs[i]
		ev.Doc = []byte{}
		m := s.probe(ev)
		ev.Doc = bigDoc(ev.ID, int(s.maxMessage-messageSize(&m))+extra)
		if m = s.probe(ev); messageSize(&m) != s.maxMessage+int64(extra) {
			t.Fatalf("built a %d-byte message, want %d", messageSize(&m), s.maxMessage+int64(extra))
		}
	}
	res, err := s.Send(context.Background(), &sinks.Batch{Events: evs})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Index != 1 || !sinks.IsPermanent(res.Failures[0].Err) {
		t.Fatalf("failures %+v, want only index 1, permanent", res.Failures)
	}
	sinktest.ExpectExactly(t, idCounts(t, c, testTopic), []sinks.Event{evs[0], evs[2]})
}

// bigDoc is a JSON document of exactly size bytes (size ≥ 40) that does not
// compress.
func bigDoc(id string, size int) []byte {
	doc := fmt.Appendf(nil, `{"event":{"id":%q},"pad":"`, id)
	x := uint32(2463534242)
	for len(doc) < size-2 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		doc = append(doc, 'a'+byte(x%26))
	}
	return append(doc, `"}`...)
}

// TestBrokerErrorClassification makes the broker answer produce requests
// with each error code and checks what Send reports: retryable codes fail
// the batch with a retryable error, permanent ones fail every event
// permanently (dead-letter), and a retry after the fault clears delivers.
func TestBrokerErrorClassification(t *testing.T) {
	cases := []struct {
		code      *kerr.Error
		permanent bool
	}{
		{kerr.LeaderNotAvailable, false},
		{kerr.NotLeaderForPartition, false},
		{kerr.RequestTimedOut, false},
		{kerr.NotEnoughReplicas, false},
		{kerr.NotEnoughReplicasAfterAppend, false},
		{kerr.UnknownServerError, false},
		{kerr.MessageTooLarge, true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.InvalidRecord, true},
		{kerr.CorruptMessage, false},
		{kerr.UnsupportedCompressionType, true},
	}
	c := newCluster(t, 1)
	s := newSink(t, c, Options{})
	for i, tc := range cases {
		t.Run(tc.code.Message, func(t *testing.T) {
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: testTopic, Err: tc.code, Count: -1})
			evs := sinktest.Events(fmt.Sprintf("fault%d", i), 3, 1)
			res, err := s.Send(context.Background(), &sinks.Batch{Events: evs})
			h.Remove()
			if h.Hits() == 0 {
				t.Fatal("the fault never fired")
			}
			if tc.permanent {
				if err != nil || len(res.Failures) != len(evs) {
					t.Fatalf("Send = %+v, %v; want every event failed permanently", res, err)
				}
				for _, f := range res.Failures {
					if !sinks.IsPermanent(f.Err) {
						t.Fatalf("failure %d = %v, want permanent", f.Index, f.Err)
					}
				}
			} else {
				if err == nil || sinks.IsPermanent(err) || !IsRetryable(err) {
					t.Fatalf("Send = %+v, %v; want one retryable error", res, err)
				}
				var code kafkaError
				if !errors.As(err, &code) || int16(code) != tc.code.Code {
					t.Fatalf("Send error %v does not carry broker code %d", err, tc.code.Code)
				}
				// The shipper's retry, once the broker is healthy, delivers.
				sendAll(t, s, evs, len(evs))
			}
		})
	}
}

// TestSendDoesNotRetainBatch makes Send give up on its context while its
// batch is still queued inside kafka-go (behind a produce request the
// broker holds), then overwrites the caller's documents the way a shipper
// reusing its read buffer would. When the broker lets go, the queued batch
// must still carry the original documents, and -race must see no shared
// memory.
func TestSendDoesNotRetainBatch(t *testing.T) {
	c := newCluster(t, 1)
	s := newSink(t, c, Options{Timeout: 10 * time.Second})
	sendAll(t, s, sinktest.Events("warm", 1, 1), 1) // connections and metadata

	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case held <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false // then handle it normally
	})
	abandon := func(evs []sinks.Event) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Send(ctx, &sinks.Batch{Events: evs})
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !IsRetryable(err) {
			t.Fatalf("Send with a held broker = %v, want a retryable deadline error", err)
		}
		// A Send that ignored its context would wait for the held broker
		// for ever; a generous deadline tells the two apart on a loaded
		// machine.
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("Send returned %v after its 300ms deadline", took)
		}
	}

	first := sinktest.Events("first", 10, 1)
	abandon(first) // its produce request sits in the broker
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the produce request never reached the broker")
	}
	evs := sinktest.Events("held", 500, 1)
	want := make([][]byte, len(evs))
	for i := range evs {
		want[i] = append([]byte(nil), evs[i].Doc...)
	}
	abandon(evs) // queued in kafka-go behind the held request
	for i := range evs {
		for j := range evs[i].Doc {
			evs[i].Doc[j] = 'X'
		}
	}
	// The next Send builds its messages while the abandoned ones are still
	// queued: it must not reuse their memory either.
	third := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.Send(ctx, &sinks.Batch{Events: sinktest.Events("third", 500, 1)})
		third <- err
	}()
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-third; err != nil {
		t.Fatalf("Send after the abandoned ones: %v", err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for c.PartitionInfo(testTopic, 0).HighWatermark < 1011 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n := 0
	consume(t, c, testTopic, func(r *kgo.Record) {
		id := header(r, HeaderEventID)
		i, err := eventIndex(id)
		if err != nil || !strings.HasPrefix(id, "held-") {
			return
		}
		n++
		if !bytes.Equal(r.Value, want[i]) {
			t.Fatalf("event %d reached the broker as %.40q…, not the document sent", i, r.Value)
		}
	})
	if n != len(evs) {
		t.Fatalf("the abandoned send delivered %d of %d events", n, len(evs))
	}

	// The sink stays usable after abandoned sends.
	sendAll(t, s, sinktest.Events("after", 10, 1), 10)
}
