package config

import "time"

// Default returns the configuration docs/configuration.md documents, with the local
// file sink as the only sink.
func Default() Config {
	return Config{
		Agent: Agent{
			DataDir:         "./var",
			ShutdownTimeout: Duration(10 * time.Second),
			Heartbeat:       Duration(60 * time.Second),
			MemoryLimit:     64 << 20,
			DataStream:      DataStream{Mode: "fileward"},
		},
		Source: Source{
			Type:     "auto",
			Events:   []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"},
			Fanotify: Fanotify{Marks: []string{"/"}, MarkType: "filesystem", Queue: "default"},
			Eslogger: Eslogger{Path: "/usr/bin/eslogger"},
			Replay:   Replay{Format: "eslogger"},

			MaxLineBytes: 1 << 20,
		},
		Filters: Filters{
			ExcludePaths:    []string{"/proc/", "/sys/", "/dev/"},
			AggregateWindow: Duration(time.Second),
		},
		Queue: Queue{Capacity: 65536, MaxBytes: 8 << 20},
		Batch: Batch{MaxEvents: 2048, MaxBytes: 1 << 20, MaxWait: Duration(time.Second)},
		Spool: Spool{
			MaxBytes:      1 << 30,
			SegmentBytes:  16 << 20,
			WhenFull:      "drop_oldest",
			Fsync:         "interval",
			FsyncInterval: Duration(time.Second),
			Compression:   "zstd",
		},
		Sinks: []Sink{{
			Name:    "local",
			Type:    "file",
			File:    ptr(DefaultFileSink()),
			Backoff: DefaultBackoff(),
		}},
		Metrics:    Metrics{Listen: "127.0.0.1:9464"},
		Log:        Log{Level: "info", Format: "text"},
		DeadLetter: DeadLetter{MaxBytes: 64 << 20, Keep: 2},
		Collector: Collector{
			Kafka:         defaultCollectorKafka(),
			Elasticsearch: DefaultElasticsearch(),
			BatchEvents:   2048,
			BatchWait:     Duration(time.Second),
			Backoff:       DefaultBackoff(),
			DeadLetter:    "./var/dead-letter/collector.ndjson",
		},
	}
}

func ptr[T any](v T) *T { return &v }

// DefaultBackoff is a sink's retry schedule unless its config says otherwise.
func DefaultBackoff() Backoff {
	return Backoff{Initial: Duration(500 * time.Millisecond), Max: Duration(30 * time.Second), Multiplier: 2, Jitter: 0.5}
}

// DefaultFileSink is the file sink's block.
func DefaultFileSink() FileSink {
	return FileSink{Path: "./var/events.ndjson", RotateBytes: 100 << 20, Keep: 5, Mode: 0o600}
}

// DefaultKafka is the Kafka sink's block.
func DefaultKafka() Kafka {
	return Kafka{
		Brokers:      []string{"127.0.0.1:9092"},
		Topic:        "fileward-events",
		Compression:  "zstd",
		RequiredAcks: "all",
		Timeout:      Duration(30 * time.Second),
	}
}

func defaultCollectorKafka() Kafka {
	k := DefaultKafka()
	k.GroupID = "fileward-collector"
	return k
}

// DefaultElasticsearch is the Elasticsearch sink's block.
func DefaultElasticsearch() Elasticsearch {
	return Elasticsearch{
		Addresses:     []string{"https://127.0.0.1:9200"},
		DataStream:    "logs-fileward.file-default",
		SetupTemplate: true,
		Timeout:       Duration(30 * time.Second),
		Workers:       2,
	}
}

// EventNames lists the names source.events accepts.
func EventNames() []string {
	return []string{
		"open", "close", "create", "modify", "rename", "delete", "attrib", "exec",
		"access", "write", "truncate", "link", "clone", "exchange", "setextattr",
	}
}
