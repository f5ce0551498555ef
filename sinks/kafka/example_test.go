package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/kafka"
)

// How `fileward run` builds the sink from the sinks[].kafka config block
// and the pipeline's batch settings, and what a shipper does with a Result.
func Example() {
	s, err := kafka.New(kafka.Options{
		Brokers:      []string{"127.0.0.1:9092"},
		Topic:        "fileward-events",
		Compression:  "zstd",
		RequiredAcks: "all",
		TLS:          kafka.TLS{Enabled: false},
		SASL:         kafka.SASL{Mechanism: ""},
		Timeout:      10 * time.Second,
		BatchEvents:  2048,    // batch.max_events
		BatchBytes:   1 << 20, // batch.max_bytes
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Send(ctx, &sinks.Batch{Events: []sinks.Event{
		{ID: "0b6c…", Key: "host-id", Doc: []byte(`{"event":{"id":"0b6c…"}}`)},
	}})
	switch {
	case err != nil && sinks.IsPermanent(err):
		// dead-letter the whole batch
	case err != nil:
		// back off and retry the whole batch
	default:
		for _, f := range res.Failures {
			_ = f // dead-letter f.Index if sinks.IsPermanent(f.Err), else retry it
		}
	}
}
