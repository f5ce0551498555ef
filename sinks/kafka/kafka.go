package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// Defaults for the zero values of Options.
const (
	DefaultCompression  = "zstd"
	DefaultRequiredAcks = "all"
	DefaultTimeout      = 10 * time.Second
	DefaultBatchEvents  = 2048
	DefaultBatchBytes   = 1 << 20
)

// Header names every message carries.
const (
	HeaderEventID     = "event.id"
	HeaderECSVersion  = "ecs.version"
	HeaderContentType = "content-type"
	ContentType       = "application/json"
)

// BatchTimeout is the kafka-go Writer's BatchTimeout: how long it waits
// for more messages before it sends a partition batch that is not full.
// Send hands over a whole spool batch in one WriteMessages call, which adds
// every message under the partition writer's lock before the timer's
// goroutine can take it, so the shortest timeout there is sends the tail
// of each Send the moment its last message is added. Any wait at all only
// delays it, and by more than the timeout on a busy host: the timer's
// goroutine has to be scheduled after it fires (a 0.1 ms timeout made a
// bare writer sending the agent's ~640-event batches 10 to 30% slower than
// this one, at load 8 on 2 cores). kafka-go's default is 1 s; 0 selects it.
const BatchTimeout = time.Nanosecond

// minMessageBytes is the smallest per-message limit the sink enforces
// before sending: Kafka's default message.max.bytes (1048588) rounded down.
const minMessageBytes = 1 << 20

// TLS configures TLS to the brokers. Nothing but Enabled turns TLS on;
// InsecureSkipVerify disables certificate verification and is honoured only
// when set explicitly.
type TLS struct {
	Enabled            bool
	CAFile             string // PEM bundle to verify the brokers with; "" = system roots
	CertFile, KeyFile  string // client certificate (both or neither)
	InsecureSkipVerify bool
}

// SASL configures SASL authentication. Mechanism "" disables it.
type SASL struct {
	Mechanism string // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username  string
	Password  string // never logged
}

// Options configure a Sink. The zero value of each field but Brokers and
// Topic selects its default.
type Options struct {
	Brokers []string // host:port of one or more bootstrap brokers
	Topic   string

	Compression  string // none|gzip|snappy|lz4|zstd (default zstd)
	RequiredAcks string // none|one|all (default all)

	TLS  TLS
	SASL SASL

	// Timeout bounds one produce round trip, a metadata request and a dial
	// (default 10s).
	Timeout time.Duration

	// BatchEvents and BatchBytes are the pipeline's batch.max_events and
	// batch.max_bytes (defaults 2048 and 1 MiB). The writer is sized so a
	// spool batch goes out in one produce request per partition, and a
	// message larger than max(BatchBytes, 1 MiB) is refused before sending.
	BatchEvents int
	BatchBytes  int64

	Logger *slog.Logger // nil discards
}

// Sink delivers batches to one Kafka topic. It implements sinks.Sink.
type Sink struct {
	w          *kafkago.Writer
	transport  *kafkago.Transport
	log        *slog.Logger
	topic      string
	maxMessage int64 // kafka-go refuses, whole call, a message over its BatchBytes

	ecsVersion  []byte // shared header values, never written to
	contentType []byte

	// msgs and idx are reused between Sends (Send is never concurrent);
	// kafka-go copies Message values, so reuse is safe. idx maps a
	// position in msgs to the event's index in the batch.
	msgs []kafkago.Message
	idx  []int
	// arena and headers back the messages of a Send; unsettled is set
	// when a write may still be reading them, and they are not reused.
	arena     []byte
	headers   []kafkago.Header
	unsettled bool

	closeOnce sync.Once
	closeErr  chan error
}

var _ sinks.Sink = (*Sink)(nil)

// New validates o and returns a Sink. It does not contact the brokers: the
// first Send does, so a broker that is down at start-up only delays
// delivery.
func New(o Options) (*Sink, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("kafka: brokers: at least one host:port is required")
	}
	for _, b := range o.Brokers {
		if strings.TrimSpace(b) == "" {
			return nil, errors.New("kafka: brokers: empty broker address; list host:port entries")
		}
	}
	if o.Topic == "" {
		return nil, errors.New("kafka: topic: required")
	}
	codec, err := parseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	acks, err := parseAcks(o.RequiredAcks)
	if err != nil {
		return nil, err
	}
	if o.Timeout < 0 || o.BatchEvents < 0 || o.BatchBytes < 0 {
		return nil, errors.New("kafka: timeout, batch events and batch bytes must not be negative")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BatchEvents == 0 {
		o.BatchEvents = DefaultBatchEvents
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	tlsConfig, err := BuildTLS(o.TLS)
	if err != nil {
		return nil, err
	}
	mech, err := BuildSASL(o.SASL)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if mech != nil && tlsConfig == nil {
		log.Warn("kafka: SASL without TLS sends credentials and events unencrypted; set tls.enabled",
			"mechanism", mech.Name())
	}

	transport := &kafkago.Transport{
		DialTimeout: o.Timeout,
		ClientID:    "fileward",
		TLS:         tlsConfig,
		SASL:        mech,
	}
	maxMessage := max(o.BatchBytes, minMessageBytes)
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(o.Brokers...),
		Topic:        o.Topic,
		Balancer:     &kafkago.Hash{},
		MaxAttempts:  1, // the shipper owns retries
		BatchSize:    o.BatchEvents,
		BatchBytes:   writerBatchBytes(maxMessage, o.BatchEvents, codec),
		BatchTimeout: BatchTimeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		RequiredAcks: acks,
		Async:        false,
		Compression:  codec,
		Transport:    transport,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) {
			if log.Enabled(context.Background(), slog.LevelDebug) {
				log.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
			}
		}),
	}
	log.Info("kafka sink configured",
		"brokers", o.Brokers, "topic", o.Topic, "compression", compressionName(codec),
		"required_acks", acksName(acks), "tls", tlsConfig != nil, "sasl", MechanismName(o.SASL))
	return &Sink{
		w:           w,
		transport:   transport,
		log:         log,
		topic:       o.Topic,
		maxMessage:  maxMessage,
		ecsVersion:  []byte(schema.ECSVersion),
		contentType: []byte(ContentType),
		closeErr:    make(chan error, 1),
	}, nil
}

// Send produces every event of b to the topic, keyed by host.id, and returns
// once the broker has acknowledged or refused each of them (see
// sinks.Sink). It makes one attempt, except that when the broker refuses a
// partition batch as too large it splits the refused messages in halves
// until each too-large message stands alone, so that exactly those are
// reported permanent and the rest are delivered. Send does not retain b or
// its Docs after it returns.
func (s *Sink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	var res sinks.Result
	if b == nil || len(b.Events) == 0 {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("kafka: send: %w", err)
	}

	// kafka-go keeps encoding a batch after WriteMessages returns on a
	// cancelled context, so everything it may read is copied into memory
	// the caller does not own: one arena for docs, ids and keys, and one
	// slice of headers. They are reused by the next Send only when every
	// write of this one has completed.
	size := 0
	for i := range b.Events {
		ev := &b.Events[i]
		size += len(ev.Doc) + len(ev.ID) + len(ev.Key)
	}
	arena, headers := s.arena[:0], s.headers
	s.arena, s.headers, s.unsettled = nil, nil, false
	if cap(arena) < size {
		arena = make([]byte, 0, size+size/8) // slack for the next, slightly larger batch
	}
	if cap(headers) < 3*len(b.Events) {
		headers = make([]kafkago.Header, 3*len(b.Events))
	}
	headers = headers[:3*len(b.Events)]
	defer func() {
		if !s.unsettled {
			s.arena, s.headers = arena[:0], headers[:0]
		}
	}()
	now := time.Now()
	msgs, idx := s.msgs[:0], s.idx[:0]
	var key []byte
	var keyStr string
	for i := range b.Events {
		ev := &b.Events[i]
		if ev.Key != keyStr || (key == nil && ev.Key != "") {
			keyStr = ev.Key
			key = nil
			if ev.Key != "" {
				arena = append(arena, ev.Key...)
				key = arena[len(arena)-len(ev.Key) : len(arena) : len(arena)]
			}
		}
		arena = append(arena, ev.ID...)
		id := arena[len(arena)-len(ev.ID) : len(arena) : len(arena)]
		arena = append(arena, ev.Doc...)
		doc := arena[len(arena)-len(ev.Doc) : len(arena) : len(arena)]
		h := headers[3*i : 3*i+3 : 3*i+3]
		h[0] = kafkago.Header{Key: HeaderEventID, Value: id}
		h[1] = kafkago.Header{Key: HeaderECSVersion, Value: s.ecsVersion}
		h[2] = kafkago.Header{Key: HeaderContentType, Value: s.contentType}
		m := kafkago.Message{Key: key, Value: doc, Headers: h, Time: now}
		if n := messageSize(&m); n > s.maxMessage {
			res.Failures = append(res.Failures, sinks.Failure{Index: i, Err: sinks.Permanent(
				fmt.Errorf("kafka: event %s: message of %d bytes exceeds the %d-byte limit: %w",
					ev.ID, n, s.maxMessage, kafkago.MessageSizeTooLarge))})
			continue
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	s.msgs, s.idx = msgs[:0], idx[:0]
	defer clear(msgs) // drop references to this call's arena

	if len(msgs) == 0 {
		return res, nil
	}
	if err := s.write(ctx, msgs, idx, &res); err != nil {
		return sinks.Result{}, err
	}
	if len(res.Failures) == len(b.Events) {
		// Nothing was delivered. When nothing is permanent either, say so
		// with one error, so that the shipper backs off the whole batch.
		for _, f := range res.Failures {
			if sinks.IsPermanent(f.Err) {
				return res, nil
			}
		}
		return sinks.Result{}, fmt.Errorf("kafka: produce to %s: all %d messages failed: %w",
			s.topic, len(b.Events), res.Failures[0].Err)
	}
	return res, nil
}

// write produces msgs (msgs[j] is batch event idx[j]) and records in res
// the events the broker did not take. A non-nil error means the call failed
// as a whole and nothing is known to be delivered.
func (s *Sink) write(ctx context.Context, msgs []kafkago.Message, idx []int, res *sinks.Result) error {
	err := s.w.WriteMessages(ctx, msgs...)
	if err == nil {
		return nil
	}
	var werrs kafkago.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(msgs) {
		// kafka-go may still be writing some of msgs (it returns early
		// when ctx ends), so Send must not reuse their memory.
		s.unsettled = true
		return classify(fmt.Errorf("kafka: produce to %s: %w", s.topic, err))
	}
	var tooLarge []int // positions in msgs
	for j, e := range werrs {
		switch {
		case e == nil:
		case errors.Is(e, kafkago.MessageSizeTooLarge) || errors.Is(e, kafkago.RecordListTooLarge):
			tooLarge = append(tooLarge, j)
		default:
			res.Failures = append(res.Failures, sinks.Failure{Index: idx[j], Err: classify(
				fmt.Errorf("kafka: event %d: %w", idx[j], e))})
		}
	}
	switch len(tooLarge) {
	case 0:
		return nil
	case 1:
		j := tooLarge[0]
		res.Failures = append(res.Failures, sinks.Failure{Index: idx[j], Err: classify(
			fmt.Errorf("kafka: event %d: broker refused a %d-byte message: %w", idx[j], messageSize(&msgs[j]), werrs[j]))})
		return nil
	}
	// The broker refused whole partition batches as too large; find which
	// messages cause it by sending the refused ones in halves.
	s.log.Debug("kafka: broker refused batches as too large; splitting", "messages", len(tooLarge))
	half := len(tooLarge) / 2
	for _, part := range [][]int{tooLarge[:half], tooLarge[half:]} {
		sub := make([]kafkago.Message, len(part))
		subIdx := make([]int, len(part))
		for k, j := range part {
			sub[k], subIdx[k] = msgs[j], idx[j]
		}
		if err := s.write(ctx, sub, subIdx, res); err != nil {
			for _, i := range subIdx {
				res.Failures = append(res.Failures, sinks.Failure{Index: i, Err: err})
			}
		}
	}
	return nil
}

// Close flushes and closes the writer and its connections. ctx bounds the
// wait; the writer keeps closing in the background after ctx ends. Calling
// Close again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		go func() {
			err := s.w.Close()
			s.transport.CloseIdleConnections()
			if err != nil {
				err = fmt.Errorf("kafka: close: %w", err)
			}
			s.closeErr <- err
		}()
	})
	select {
	case err := <-s.closeErr:
		s.closeErr <- err // for a later Close
		return err
	case <-ctx.Done():
		return fmt.Errorf("kafka: close: %w", ctx.Err())
	}
}

// perMessageAllowance is what one message may add to a spool batch's
// bytes in kafka-go's count: its key and the three headers (about 115
// bytes with a 16-byte host.id), less the id and framing the spool batch
// already counts, rounded up generously for a long host.id.
const perMessageAllowance = 256

// writerBatchBytes is the kafka-go Writer's BatchBytes. kafka-go counts
// each message's key, headers and record framing against it, so a full
// spool batch (batch.max_bytes of documents and ids) is a little over
// batch.max_bytes there and would go out as two produce requests, the
// second a small tail. With compression the record batch on the wire is a
// fraction of that count, so the bound gets room for every message's
// overhead and a spool batch is one request. Without compression the
// broker's message.max.bytes applies to these very bytes, so the bound
// stays at the per-message limit.
func writerBatchBytes(maxMessage int64, batchEvents int, codec kafkago.Compression) int64 {
	if codec == 0 {
		return maxMessage
	}
	return maxMessage + int64(batchEvents)*perMessageAllowance
}

// messageSize is kafka-go's own size estimate of a message (Message.totalSize,
// unexported), which its Writer compares with BatchBytes: a message over it
// fails the whole WriteMessages call, so Send refuses it first.
func messageSize(m *kafkago.Message) int64 {
	n := 4 + 1 + 1 + 8 + 4 + len(m.Key) + 4 + len(m.Value) // crc, magic, attributes, timestamp, key, value
	n += varintLen(int64(len(m.Headers)))
	for i := range m.Headers {
		h := &m.Headers[i]
		n += varintLen(int64(len(h.Key))) + len(h.Key) + varintLen(int64(len(h.Value))) + len(h.Value)
	}
	return int64(n)
}

// varintLen is the length of the zig-zag varint encoding of i.
func varintLen(i int64) int {
	u := uint64((i << 1) ^ (i >> 63))
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func parseCompression(s string) (kafkago.Compression, error) {
	switch strings.ToLower(s) {
	case "", "zstd":
		return kafkago.Zstd, nil
	case "none":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	}
	return 0, fmt.Errorf("kafka: compression: unknown codec %q; use none, gzip, snappy, lz4 or zstd", s)
}

func compressionName(c kafkago.Compression) string {
	if c == 0 {
		return "none"
	}
	return c.String()
}

func parseAcks(s string) (kafkago.RequiredAcks, error) {
	switch strings.ToLower(s) {
	case "", "all", "-1":
		return kafkago.RequireAll, nil
	case "one", "1":
		return kafkago.RequireOne, nil
	case "none", "0":
		return kafkago.RequireNone, nil
	}
	return 0, fmt.Errorf("kafka: required_acks: unknown value %q; use none, one or all", s)
}

func acksName(a kafkago.RequiredAcks) string {
	switch a {
	case kafkago.RequireNone:
		return "none"
	case kafkago.RequireOne:
		return "one"
	}
	return "all"
}
