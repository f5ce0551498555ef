package config

// Config is the whole agent and collector configuration (docs/configuration.md).
type Config struct {
	Agent     Agent     `yaml:"agent"`
	Source    Source    `yaml:"source"`
	Filters   Filters   `yaml:"filters"`
	Queue     Queue     `yaml:"queue"`
	Batch     Batch     `yaml:"batch"`
	Spool     Spool     `yaml:"spool"`
	Sinks     []Sink    `yaml:"sinks"`
	Metrics   Metrics   `yaml:"metrics"`
	Collector Collector `yaml:"collector"`

	// File is the path the config was loaded from ("" when built in code).
	File string `yaml:"-"`
	// lines maps key paths to their lines in File, for later validation.
	lines map[string]int
}

// Agent holds identity and lifecycle settings.
type Agent struct {
	Name            string   `yaml:"name"`     // default: hostname
	DataDir         string   `yaml:"data_dir"` // spool, state, dead-letter
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// HostID overrides host.id; by default it is read from /etc/machine-id
	// (Linux) or IOPlatformUUID (macOS), else derived from the host name.
	HostID string `yaml:"host_id"`
	// Heartbeat is how often a heartbeat event enters the stream; 0 disables.
	Heartbeat Duration `yaml:"heartbeat"`
}

// Source selects and configures the capture backend.
type Source struct {
	Type     string   `yaml:"type"` // auto | fanotify | eslogger | replay
	Events   []string `yaml:"events"`
	Fanotify Fanotify `yaml:"fanotify"`
	Eslogger Eslogger `yaml:"eslogger"`
	Replay   Replay   `yaml:"replay"`
}

// Fanotify configures Linux capture.
type Fanotify struct {
	Marks    []string `yaml:"marks"`
	MarkType string   `yaml:"mark_type"` // filesystem | mount | inode
	Queue    string   `yaml:"queue"`     // default | unlimited
	// ProcessArgs adds process.args from /proc/<pid>/cmdline.
	ProcessArgs bool `yaml:"process_args"`
}

// Eslogger configures macOS capture through Apple's eslogger.
type Eslogger struct {
	Path string `yaml:"path"`
	// Args are extra arguments passed before the event names (tests use it
	// to steer a stand-in executable).
	Args []string `yaml:"args"`
	// Select is passed as --select prefixes where eslogger supports it.
	Select []string `yaml:"select"`
}

// Replay feeds a recorded stream.
type Replay struct {
	Path   string  `yaml:"path"`
	Format string  `yaml:"format"` // eslogger | ecs
	Rate   float64 `yaml:"rate"`   // events/s, 0 = as fast as possible
	Loop   bool    `yaml:"loop"`
}

// Filters are the noise rules the pipeline applies.
type Filters struct {
	ExcludePaths       []string `yaml:"exclude_paths"`
	IncludePaths       []string `yaml:"include_paths"`
	ExcludeExecutables []string `yaml:"exclude_executables"`
	ExcludeSigningIDs  []string `yaml:"exclude_signing_ids"`
	AggregateWindow    Duration `yaml:"aggregate_window"`
}

// Queue sizes the ring between capture and pipeline.
type Queue struct {
	Capacity int `yaml:"capacity"`
}

// Batch bounds a pipeline batch.
type Batch struct {
	MaxEvents int      `yaml:"max_events"`
	MaxBytes  Size     `yaml:"max_bytes"`
	MaxWait   Duration `yaml:"max_wait"`
}

// Spool configures the on-disk backlog.
type Spool struct {
	MaxBytes      Size     `yaml:"max_bytes"`
	SegmentBytes  Size     `yaml:"segment_bytes"`
	WhenFull      string   `yaml:"when_full"` // drop_oldest | drop_newest
	Fsync         string   `yaml:"fsync"`     // always | interval | never
	FsyncInterval Duration `yaml:"fsync_interval"`
}

// Sink is one destination.
type Sink struct {
	Name          string         `yaml:"name"`
	Type          string         `yaml:"type"` // file | kafka | elasticsearch
	File          *FileSink      `yaml:"file"`
	Kafka         *Kafka         `yaml:"kafka"`
	Elasticsearch *Elasticsearch `yaml:"elasticsearch"`
	Backoff       Backoff        `yaml:"backoff"`
}

// FileSink writes rotating NDJSON.
type FileSink struct {
	Path        string `yaml:"path"`
	RotateBytes Size   `yaml:"rotate_bytes"`
	Keep        int    `yaml:"keep"`
}

// Kafka configures the Kafka sink (and the collector's consumer).
type Kafka struct {
	Brokers      []string `yaml:"brokers"`
	Topic        string   `yaml:"topic"`
	Compression  string   `yaml:"compression"`   // none | gzip | snappy | lz4 | zstd
	RequiredAcks string   `yaml:"required_acks"` // none | one | all
	TLS          TLS      `yaml:"tls"`
	SASL         SASL     `yaml:"sasl"`
	// GroupID is the consumer group; only the collector uses it.
	GroupID string `yaml:"group_id"`
	// Timeout bounds one produce request.
	Timeout Duration `yaml:"timeout"`
}

// TLS for Kafka.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL for Kafka.
type SASL struct {
	Mechanism string `yaml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username  string `yaml:"username"`
	Password  Secret `yaml:"password"`
}

// Elasticsearch configures the Elasticsearch sink (and the collector's output).
type Elasticsearch struct {
	Addresses     []string `yaml:"addresses"`
	APIKey        Secret   `yaml:"api_key"`
	Username      string   `yaml:"username"`
	Password      Secret   `yaml:"password"`
	DataStream    string   `yaml:"data_stream"`
	SetupTemplate bool     `yaml:"setup_template"`
	TLS           ESTLS    `yaml:"tls"`
	// Timeout bounds one bulk request.
	Timeout Duration `yaml:"timeout"`
}

// ESTLS for Elasticsearch.
type ESTLS struct {
	CAFile             string `yaml:"ca_file"`
	CAFingerprint      string `yaml:"ca_fingerprint"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Backoff is a sink's retry schedule.
type Backoff struct {
	Initial    Duration `yaml:"initial"`
	Max        Duration `yaml:"max"`
	Multiplier float64  `yaml:"multiplier"`
	Jitter     float64  `yaml:"jitter"`
}

// Metrics configures /metrics and /healthz.
type Metrics struct {
	Listen string `yaml:"listen"` // "" disables
}

// Collector configures `fileward collect`.
type Collector struct {
	Kafka         Kafka         `yaml:"kafka"`
	Elasticsearch Elasticsearch `yaml:"elasticsearch"`
	// BatchEvents bounds one Elasticsearch bulk request of the collector.
	BatchEvents int      `yaml:"batch_events"`
	BatchWait   Duration `yaml:"batch_wait"`
	Backoff     Backoff  `yaml:"backoff"`
	// DeadLetter is the collector's dead-letter file.
	DeadLetter string `yaml:"dead_letter"`
}
