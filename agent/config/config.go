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
	Log       Log       `yaml:"log"`
	Collector Collector `yaml:"collector"`
	// DeadLetter bounds each sink's dead-letter file,
	// <data_dir>/dead-letter/<sink>.ndjson.
	DeadLetter DeadLetter `yaml:"dead_letter"`

	// File is the path the config was loaded from ("" when built in code).
	File string `yaml:"-"`
	// Warnings are problems that do not stop the agent (credentials sent
	// unencrypted on purpose, ...), in the same FILE:LINE: key: form.
	Warnings Errors `yaml:"-"`
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
	// MemoryLimit is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit) for `fileward run`; 0 = none. The
	// GOMEMLIMIT environment variable, when set, wins.
	MemoryLimit Size `yaml:"memory_limit"`
	// DataStream says which data streams the documents name in their
	// data_stream.* fields (and so where the Elasticsearch sink and the
	// collector write them).
	DataStream DataStream `yaml:"data_stream"`
}

// DataStream is agent.data_stream.
type DataStream struct {
	// Namespace is data_stream.namespace ("" = default, or fileward in
	// defend_compatible mode).
	Namespace string `yaml:"namespace"`
	// Mode is "fileward" (logs-fileward.{file,process}-<ns>) or
	// "defend_compatible" (logs-endpoint.events.{file,process}-<ns>).
	Mode string `yaml:"mode"`
}

// Source selects and configures the capture backend.
type Source struct {
	Type     string   `yaml:"type"` // auto | ebpf | fanotify | eslogger | replay
	Events   []string `yaml:"events"`
	Fanotify Fanotify `yaml:"fanotify"`
	Eslogger Eslogger `yaml:"eslogger"`
	Replay   Replay   `yaml:"replay"`
	// MaxLineBytes bounds one eslogger line (live or replayed): a longer
	// line is skipped without being read whole and counted as malformed.
	MaxLineBytes Size `yaml:"max_line_bytes"`
}

// Fanotify configures Linux capture.
type Fanotify struct {
	Marks    []string `yaml:"marks"`
	MarkType string   `yaml:"mark_type"` // filesystem | mount | inode
	Queue    string   `yaml:"queue"`     // default | unlimited
	// ProcessArgs adds process.args from /proc/<pid>/cmdline.
	ProcessArgs bool `yaml:"process_args"`
	// HostRoot is where the host's root filesystem is mounted when the agent
	// runs in a container (the DaemonSet mounts it at /host). The prefix is
	// stripped from every path before encoding, so documents carry host
	// paths (/etc/shadow, not /host/etc/shadow). "" = the agent sees the
	// host's paths as they are.
	HostRoot string `yaml:"host_root"`
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
	// DropWhenFull makes replay behave like live capture: never wait for
	// ring space, drop and count ring_full instead. By default a replay (a
	// backfill) waits and loses nothing. For tests and benchmarks.
	DropWhenFull bool `yaml:"drop_when_full"`
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
	// MaxBytes bounds the memory the queued events hold (capture.EventBytes);
	// the ring is full at whichever bound comes first.
	MaxBytes Size `yaml:"max_bytes"`
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
	Compression   string   `yaml:"compression"` // none | lz4 | zstd
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
	// Mode is the output files' permission in octal; default 0600. 0640
	// lets a local shipper in the file's group read them.
	Mode FileMode `yaml:"mode"`
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
	// AllowInsecureCredentials accepts SASL credentials over a connection
	// without TLS (refused otherwise).
	AllowInsecureCredentials bool `yaml:"allow_insecure_credentials"`
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
	// AllowInsecureCredentials accepts api_key, username/password or
	// credentials in an address over http:// (refused otherwise).
	AllowInsecureCredentials bool `yaml:"allow_insecure_credentials"`
	// Workers is the most bulk requests in flight at once (default 2).
	// A 429 from Elasticsearch lowers the number in flight, down to one,
	// until answers come back without throttling.
	Workers int `yaml:"workers"`
}

// ESTLS for Elasticsearch.
type ESTLS struct {
	CAFile             string `yaml:"ca_file"`
	CAFingerprint      string `yaml:"ca_fingerprint"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// VerificationMode is full (default), certificate or none (Beats'
	// ssl.verification_mode).
	VerificationMode string `yaml:"verification_mode"`
}

// Backoff is a sink's retry schedule.
type Backoff struct {
	Initial    Duration `yaml:"initial"`
	Max        Duration `yaml:"max"`
	Multiplier float64  `yaml:"multiplier"`
	Jitter     float64  `yaml:"jitter"`
}

// Log configures the agent's own log on stderr. The --log-level and
// --log-format flags of `fileward run` override it.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
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

// DeadLetter is the dead_letter block: each sink's dead-letter file rotates
// when it would pass MaxBytes, keeping Keep rotated files (<sink>.ndjson.1
// is the newest); the events in a file rotated away are counted in
// fileward_dead_letter_discarded_events_total.
type DeadLetter struct {
	MaxBytes Size `yaml:"max_bytes"`
	Keep     int  `yaml:"keep"`
}
