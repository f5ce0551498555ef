package collect

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/fileward/fileward/sinks"
	kafkasink "github.com/fileward/fileward/sinks/kafka"
)

// Backoff is the retry schedule for undelivered events.
type Backoff struct {
	Initial    time.Duration // default 500ms
	Max        time.Duration // default 30s
	Multiplier float64       // default 2
	Jitter     float64       // 0..1, default 0.5
}

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	Brokers []string // bootstrap brokers, host:port; required
	Topic   string   // required
	GroupID string   // consumer group; required
	TLS     TLS
	SASL    SASL

	// Sink receives the events; normally the Elasticsearch sink. Run does
	// not close it.
	Sink sinks.Sink

	BatchEvents int           // events per Sink.Send; default 2048
	BatchWait   time.Duration // how long a partial batch may wait; default 1s
	Backoff     Backoff

	// DeadLetterPath is the NDJSON file refused and malformed messages are
	// appended to (and fsynced) before their offsets are committed.
	// Required.
	DeadLetterPath string

	// SessionTimeout is the consumer group session timeout: how long a
	// crashed collector keeps its partitions before the group rebalances.
	// Default 10s.
	SessionTimeout time.Duration

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: metrics are not registered
	// Health, when set, is updated after every delivery attempt.
	Health *Health
}

// Health is the collector's state for /healthz: nil while deliveries
// succeed, else the last error. It is safe for concurrent use.
type Health struct {
	mu  sync.Mutex
	err error
}

// Err returns nil when healthy, else why not.
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *Health) set(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

type metrics struct {
	acked, deadLettered, malformed, retries, batches prometheus.Counter
	lag                                              prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_events_acked_total",
			Help: "Events Elasticsearch acknowledged (409 duplicates included)."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_events_dead_lettered_total",
			Help: "Events Elasticsearch refused for good, written to the dead-letter file."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_messages_malformed_total",
			Help: "Kafka messages that were not ECS JSON with an event.id, written to the dead-letter file."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_retries_total",
			Help: "Delivery attempts that left events to retry."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_batches_committed_total",
			Help: "Batches whose offsets were committed."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fileward_collector_lag_messages",
			Help: "Consumer lag of the collector's reader, in messages."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.acked, m.deadLettered, m.malformed, m.retries, m.batches, m.lag} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("collect: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run consumes Topic as member of GroupID and writes every message to Sink
// until ctx is done; it returns nil then. Offsets are committed only once
// every message of a batch is acknowledged by the sink or written to the
// dead-letter file, so a crash re-delivers at most the uncommitted batch, and
// _id = event.id makes Elasticsearch drop the duplicates. Retryable failures
// are retried with backoff for as long as it takes. Run returns an error only
// for bad options or a dead-letter file it cannot write.
func Run(ctx context.Context, o Options) error {
	if len(o.Brokers) == 0 || o.Topic == "" || o.GroupID == "" {
		return errors.New("collect: brokers, topic and group_id are required")
	}
	if o.Sink == nil {
		return errors.New("collect: no sink")
	}
	if o.DeadLetterPath == "" {
		return errors.New("collect: dead_letter path is required")
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 2048
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return err
	}
	tlsCfg, err := kafkasink.BuildTLS(o.TLS)
	if err != nil {
		return err
	}
	mech, err := kafkasink.BuildSASL(o.SASL)
	if err != nil {
		return err
	}
	dl, err := openDeadLetter(o.DeadLetterPath)
	if err != nil {
		return err
	}
	defer dl.Close()

	r := kafka.NewReader(readerConfig(o, tlsCfg, mech, log))
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("collect: close reader", "err", err)
		}
	}()
	log.Info("collect: consuming", "brokers", o.Brokers, "topic", o.Topic, "group_id", o.GroupID, "sasl", kafkasink.MechanismName(o.SASL), "tls", o.TLS.Enabled)

	c := &collector{o: o, r: r, dl: dl, m: m, log: log}
	return c.loop(ctx)
}

func readerConfig(o Options, tlsCfg *tls.Config, mech sasl.Mechanism, log *slog.Logger) kafka.ReaderConfig {
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	return kafka.ReaderConfig{
		Brokers:  o.Brokers,
		GroupID:  o.GroupID,
		Topic:    o.Topic,
		Dialer:   dialer,
		MinBytes: 1,
		MaxBytes: 4 << 20,
		// kafka-go uses MaxWait as the read deadline for the fetch
		// response, so it must exceed a slow broker's answer time; with
		// MinBytes 1 the broker answers as soon as data is there anyway.
		MaxWait:           5 * time.Second,
		QueueCapacity:     max(100, o.BatchEvents),
		CommitInterval:    0, // CommitMessages is synchronous
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    o.SessionTimeout,
		RebalanceTimeout:  o.SessionTimeout,
		HeartbeatInterval: o.SessionTimeout / 5,
		JoinGroupBackoff:  time.Second,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    time.Second,
		ErrorLogger:       kafka.LoggerFunc(func(f string, a ...any) { log.Warn("collect: kafka: " + fmt.Sprintf(f, a...)) }),
	}
}

type collector struct {
	o   Options
	r   *kafka.Reader
	dl  *deadLetter
	m   *metrics
	log *slog.Logger

	deadline time.Time // when the batch being filled must go
}

func (c *collector) loop(ctx context.Context) error {
	msgs := make([]kafka.Message, 0, c.o.BatchEvents)
	for {
		msgs = msgs[:0]
		if err := c.fill(ctx, &msgs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		if err := c.deliver(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				return nil // uncommitted: re-delivered after restart
			}
			return err
		}
		// Commit: a failure here (rebalance, broker gone) only means the
		// batch will be re-delivered, and duplicates collapse.
		if err := c.r.CommitMessages(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("collect: commit offsets failed; the batch may be re-delivered", "err", err)
		} else {
			c.m.batches.Inc()
		}
		c.m.lag.Set(float64(c.r.Stats().Lag))
	}
}

// fill blocks for the first message, then adds messages until the batch is
// full or BatchWait has passed since the first.
func (c *collector) fill(ctx context.Context, msgs *[]kafka.Message) error {
	for len(*msgs) < c.o.BatchEvents {
		var fctx context.Context
		var cancel context.CancelFunc
		if len(*msgs) == 0 {
			// Wake up now and then to refresh the lag gauge while idle.
			fctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		} else {
			fctx, cancel = context.WithDeadline(ctx, c.deadline)
		}
		msg, err := c.r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if len(*msgs) == 0 {
					c.m.lag.Set(float64(c.r.Stats().Lag))
					continue
				}
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("collect: reader closed: %w", err)
			}
			c.log.Warn("collect: fetch", "err", err)
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			continue
		}
		if len(*msgs) == 0 {
			c.deadline = time.Now().Add(c.o.BatchWait)
		}
		*msgs = append(*msgs, msg)
	}
	return nil
}

// deliver returns once every message is acknowledged or dead-lettered, or
// ctx is done.
func (c *collector) deliver(ctx context.Context, msgs []kafka.Message) error {
	events := make([]sinks.Event, 0, len(msgs))
	origin := make([]int, 0, len(msgs)) // event index -> message index
	for i := range msgs {
		ev, err := toEvent(&msgs[i])
		if err != nil {
			c.m.malformed.Inc()
			if err := c.dl.write(&msgs[i], "", "malformed", err); err != nil {
				return err
			}
			continue
		}
		events = append(events, ev)
		origin = append(origin, i)
	}
	if err := c.dl.sync(); err != nil {
		return err
	}
	bo := newBackoff(c.o.Backoff)
	pending := &sinks.Batch{Events: events}
	for len(pending.Events) > 0 {
		res, err := c.o.Sink.Send(ctx, pending)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && sinks.IsPermanent(err) {
			// The whole request was refused for good: dead-letter all.
			for k := range pending.Events {
				c.m.deadLettered.Inc()
				if err := c.dl.write(&msgs[origin[k]], pending.Events[k].ID, "rejected", err); err != nil {
					return err
				}
			}
			pending.Events = nil
			break
		}
		var retry []sinks.Event
		var retryOrigin []int
		var lastErr error
		if err != nil {
			retry, retryOrigin, lastErr = pending.Events, origin, err
		} else {
			failed := make(map[int]bool, len(res.Failures))
			for _, f := range res.Failures {
				if f.Index < 0 || f.Index >= len(pending.Events) || failed[f.Index] {
					continue
				}
				failed[f.Index] = true
				if sinks.IsPermanent(f.Err) {
					c.m.deadLettered.Inc()
					if err := c.dl.write(&msgs[origin[f.Index]], pending.Events[f.Index].ID, "rejected", f.Err); err != nil {
						return err
					}
					continue
				}
				retry = append(retry, pending.Events[f.Index])
				retryOrigin = append(retryOrigin, origin[f.Index])
				lastErr = f.Err
			}
			c.m.acked.Add(float64(len(pending.Events) - len(failed)))
		}
		if len(retry) == 0 {
			break
		}
		c.m.retries.Inc()
		c.o.Health.set(lastErr)
		d := bo.NextBackOff()
		c.log.Warn("collect: events not delivered; retrying", "events", len(retry), "in", d, "err", lastErr)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
		pending = &sinks.Batch{Events: retry}
		origin = retryOrigin
	}
	if err := c.dl.sync(); err != nil {
		return err
	}
	c.o.Health.set(nil)
	return nil
}

func newBackoff(b Backoff) *backoff.ExponentialBackOff {
	e := backoff.NewExponentialBackOff()
	e.InitialInterval = b.Initial
	if e.InitialInterval <= 0 {
		e.InitialInterval = 500 * time.Millisecond
	}
	e.MaxInterval = b.Max
	if e.MaxInterval <= 0 {
		e.MaxInterval = 30 * time.Second
	}
	e.Multiplier = b.Multiplier
	if e.Multiplier < 1 {
		e.Multiplier = 2
	}
	e.RandomizationFactor = b.Jitter
	if b.Jitter < 0 || b.Jitter > 1 {
		e.RandomizationFactor = 0.5
	}
	e.MaxElapsedTime = 0 // retry forever: Kafka holds the data
	e.Reset()
	return e
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// toEvent turns a message into a sink event: the id from the event.id
// header, else from the document's event.id; the key is the message key
// (host.id).
func toEvent(m *kafka.Message) (sinks.Event, error) {
	doc := bytes.TrimSpace(m.Value)
	if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
		return sinks.Event{}, errors.New("value is not a JSON object")
	}
	if bytes.IndexByte(doc, '\n') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, doc); err != nil {
			return sinks.Event{}, fmt.Errorf("compact: %w", err)
		}
		doc = buf.Bytes()
	}
	id := ""
	for _, h := range m.Headers {
		if h.Key == "event.id" {
			id = string(h.Value)
			break
		}
	}
	if id == "" {
		var d struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
			Flat string `json:"event.id"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			return sinks.Event{}, fmt.Errorf("decode: %w", err)
		}
		id = d.Event.ID
		if id == "" {
			id = d.Flat
		}
	}
	if id == "" {
		return sinks.Event{}, errors.New("no event.id header and no event.id field")
	}
	return sinks.Event{ID: id, Key: string(m.Key), Doc: doc}, nil
}

// deadLetter appends one JSON line per refused message.
type deadLetter struct {
	f     *os.File
	dirty bool
}

// openDeadLetter opens the dead-letter file: it holds event data, so it is
// 0600 in a 0700 directory, as the spool is (a file left wider by an earlier
// version is narrowed; an existing directory is left as it is).
func openDeadLetter(path string) (*deadLetter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("collect: dead-letter dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("collect: open dead-letter file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("collect: dead-letter file permissions: %w", err)
	}
	return &deadLetter{f: f}, nil
}

type dlRecord struct {
	Time      string          `json:"time"`
	Reason    string          `json:"reason"` // malformed | rejected
	Error     string          `json:"error"`
	Topic     string          `json:"topic"`
	Partition int             `json:"partition"`
	Offset    int64           `json:"offset"`
	EventID   string          `json:"event_id,omitempty"`
	Doc       json.RawMessage `json:"doc,omitempty"`
	Raw       string          `json:"raw,omitempty"` // the value when it is not JSON
}

func (d *deadLetter) write(m *kafka.Message, id, reason string, cause error) error {
	rec := dlRecord{Time: time.Now().UTC().Format(time.RFC3339Nano), Reason: reason, Error: cause.Error(),
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, EventID: id}
	if json.Valid(m.Value) {
		var buf bytes.Buffer
		if json.Compact(&buf, m.Value) == nil {
			rec.Doc = buf.Bytes()
		}
	}
	if rec.Doc == nil {
		rec.Raw = string(m.Value)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("collect: dead-letter record: %w", err)
	}
	if _, err := d.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("collect: write dead-letter file: %w", err)
	}
	d.dirty = true
	return nil
}

// sync makes dead-lettered records durable before their offsets commit.
func (d *deadLetter) sync() error {
	if !d.dirty {
		return nil
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("collect: fsync dead-letter file: %w", err)
	}
	d.dirty = false
	return nil
}

func (d *deadLetter) Close() error { return d.f.Close() }
