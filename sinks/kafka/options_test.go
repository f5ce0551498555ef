package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestNewDefaults: zero values take the documented defaults, explicit values
// are used as given, and the per-message limit is never below 1 MiB.
func TestNewDefaults(t *testing.T) {
	brokers := []string{"127.0.0.1:1"}
	for _, c := range []struct {
		name        string
		o           Options
		timeout     time.Duration
		events      int
		maxMessage  int64
		writerBytes int64 // with compression: the limit plus perMessageAllowance per event of a batch
		compression string
	}{
		{"zero values", Options{}, DefaultTimeout, DefaultBatchEvents, DefaultBatchBytes, 1<<20 + 2048*256, "zstd"},
		{"explicit", Options{Timeout: 3 * time.Second, BatchEvents: 10, BatchBytes: 4 << 20, Compression: "gzip"}, 3 * time.Second, 10, 4 << 20, 4<<20 + 10*256, "gzip"},
		{"small batch bytes", Options{BatchBytes: 1000}, DefaultTimeout, DefaultBatchEvents, minMessageBytes, 1<<20 + 2048*256, "zstd"},
		{"one event", Options{BatchEvents: 1}, DefaultTimeout, 1, DefaultBatchBytes, 1<<20 + 256, "zstd"},
		{"no compression", Options{Compression: "none"}, DefaultTimeout, DefaultBatchEvents, DefaultBatchBytes, DefaultBatchBytes, "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.Brokers, o.Topic = brokers, testTopic
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			w := s.w
			if w.ReadTimeout != c.timeout || w.WriteTimeout != c.timeout || s.transport.DialTimeout != c.timeout {
				t.Errorf("timeouts read %v write %v dial %v, want %v", w.ReadTimeout, w.WriteTimeout, s.transport.DialTimeout, c.timeout)
			}
			if w.BatchSize != c.events {
				t.Errorf("writer batch size %d, want %d", w.BatchSize, c.events)
			}
			if s.maxMessage != c.maxMessage || w.BatchBytes != c.writerBytes {
				t.Errorf("message limit %d (writer %d), want %d (writer %d)", s.maxMessage, w.BatchBytes, c.maxMessage, c.writerBytes)
			}
			if w.MaxAttempts != 1 || w.Async || w.BatchTimeout != BatchTimeout {
				t.Errorf("writer attempts %d async %v batch timeout %v: the shipper owns retries and Send waits", w.MaxAttempts, w.Async, w.BatchTimeout)
			}
			if got := compressionName(w.Compression); got != c.compression {
				t.Errorf("compression %s, want %s", got, c.compression)
			}
		})
	}
	for _, o := range []Options{{Timeout: -1}, {BatchEvents: -1}, {BatchBytes: -1}} {
		o.Brokers, o.Topic = brokers, testTopic
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("New(%+v) = %v, want a negative-value error", o, err)
		}
	}
}

// TestConfiguredLog: New logs what it configured (TLS and SASL named, never
// the password), and warns when SASL credentials would travel without TLS,
// and only then.
func TestConfiguredLog(t *testing.T) {
	for _, c := range []struct {
		name     string
		tls      TLS
		sasl     SASL
		warn     bool
		wantAttr []string
	}{
		{"plain", TLS{}, SASL{}, false, []string{"tls=false", "sasl=none"}},
		{"sasl without tls", TLS{}, SASL{Mechanism: "plain", Username: "u", Password: "pw-secret"}, true, []string{"tls=false", "sasl=PLAIN"}},
		{"sasl with tls", TLS{Enabled: true, InsecureSkipVerify: true}, SASL{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "pw-secret"}, false, []string{"tls=true", "sasl=SCRAM-SHA-256"}},
		{"tls alone", TLS{Enabled: true}, SASL{}, false, []string{"tls=true", "sasl=none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			s, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Topic: testTopic, TLS: c.tls, SASL: c.sasl,
				RequiredAcks: "one", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			out := logs.String()
			if got := strings.Contains(out, "SASL without TLS sends credentials and events unencrypted"); got != c.warn {
				t.Errorf("unencrypted-SASL warning logged: %v, want %v\n%s", got, c.warn, out)
			}
			var conf string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "kafka sink configured") {
					conf = l
				}
			}
			for _, a := range append(c.wantAttr, "topic="+testTopic, "required_acks=one", "compression=zstd") {
				if !strings.Contains(conf, a) {
					t.Errorf("configured line lacks %q: %s", a, conf)
				}
			}
			if strings.Contains(out, "pw-secret") {
				t.Errorf("the password was logged:\n%s", out)
			}
		})
	}
}
