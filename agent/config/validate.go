package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/fileward/fileward/internal/redact"
	"github.com/fileward/fileward/internal/tlspin"
)

// Validate checks a config built in code (Load validates by itself).
func (c *Config) Validate() error {
	if errs := c.validate(nil); len(errs) > 0 {
		return errs
	}
	return nil
}

type checker struct {
	file  string
	lines map[string]int
	errs  Errors
	warns Errors
}

// at reports a problem at path, using the line of path or of its nearest
// ancestor that is in the file.
func (c *checker) at(path, format string, args ...any) {
	line := 0
	for p := path; p != ""; p = parent(p) {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
	}
	c.errs = append(c.errs, Error{File: c.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// warn records a warning at path (the message starts with "warning: ").
func (c *checker) warn(path, format string, args ...any) {
	n := len(c.errs)
	c.at(path, "warning: "+format, args...)
	c.warns = append(c.warns, c.errs[n])
	c.errs = c.errs[:n]
}

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		c.at(path, "%q is not one of: %s", v, strings.Join(allowed, ", "))
	}
}

// MinMemoryLimit is the smallest agent.memory_limit other than 0: below it
// the collector would run almost continuously.
const MinMemoryLimit = 32 << 20

var sinkNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (cfg *Config) validate(lines map[string]int) Errors {
	c := &checker{file: cfg.File, lines: lines}
	if cfg.Agent.DataDir == "" {
		c.at("agent.data_dir", "must not be empty: the spool, state and dead-letter files live there")
	}
	if cfg.Agent.ShutdownTimeout < 0 {
		c.at("agent.shutdown_timeout", "must not be negative")
	}
	if cfg.Agent.Heartbeat < 0 {
		c.at("agent.heartbeat", "must not be negative (0 disables heartbeats)")
	}
	if ml := cfg.Agent.MemoryLimit; ml < 0 || (ml > 0 && ml < MinMemoryLimit) {
		c.at("agent.memory_limit", "must be 0 (no limit) or at least 32MiB (default 64MiB)")
	}

	ds := &cfg.Agent.DataStream
	c.oneOf("agent.data_stream.mode", ds.Mode, "fileward", "defend_compatible")
	if ns := ds.Namespace; ns != "" && (len(ns) > 100 || ns != strings.ToLower(ns) || strings.ContainsAny(ns, "-\\/*?\"<>| ,#:")) {
		c.at("agent.data_stream.namespace", "%q is not a data stream namespace: use at most 100 lowercase characters without - \\ / * ? \" < > | , # : or spaces", ns)
	}
	if ds.Mode == "defend_compatible" && ds.Namespace == "default" {
		c.at("agent.data_stream.namespace", "\"default\" in defend_compatible mode would share logs-endpoint.events.*-default with Elastic Defend's own documents; leave it empty (fileward) or name another namespace")
	}

	s := &cfg.Source
	c.oneOf("source.type", s.Type, "auto", "ebpf", "fanotify", "eslogger", "replay")
	if len(s.Events) == 0 {
		c.at("source.events", "must list at least one event")
	}
	for i, e := range s.Events {
		if !slices.Contains(EventNames(), e) {
			c.at(fmt.Sprintf("source.events[%d]", i), "unknown event %q (known: %s)", e, strings.Join(EventNames(), ", "))
		}
	}
	c.oneOf("source.fanotify.mark_type", s.Fanotify.MarkType, "filesystem", "mount", "inode")
	c.oneOf("source.fanotify.queue", s.Fanotify.Queue, "default", "unlimited")
	for i, m := range s.Fanotify.Marks {
		if !strings.HasPrefix(m, "/") {
			c.at(fmt.Sprintf("source.fanotify.marks[%d]", i), "%q must be an absolute path", m)
		}
	}
	if hr := s.Fanotify.HostRoot; hr != "" && (!strings.HasPrefix(hr, "/") || hr == "/" || filepath.Clean(hr) != hr) {
		c.at("source.fanotify.host_root", "%q must be a clean absolute path other than /, e.g. /host", hr)
	}
	if s.Type == "eslogger" && s.Eslogger.Path == "" {
		c.at("source.eslogger.path", "must name the eslogger executable")
	}
	if s.MaxLineBytes < 4096 || s.MaxLineBytes > 1<<30 {
		c.at("source.max_line_bytes", "must be between 4KiB and 1GiB (default 1MiB)")
	}
	c.oneOf("source.replay.format", s.Replay.Format, "eslogger", "ecs")
	if s.Replay.Rate < 0 {
		c.at("source.replay.rate", "must not be negative (0 = as fast as possible)")
	}
	if s.Type == "replay" && s.Replay.Path == "" {
		c.at("source.replay.path", "is required when source.type is replay")
	}

	f := &cfg.Filters
	if f.AggregateWindow < 0 {
		c.at("filters.aggregate_window", "must not be negative (0 disables aggregation)")
	}
	for i, p := range f.ExcludePaths {
		if p == "" {
			c.at(fmt.Sprintf("filters.exclude_paths[%d]", i), "must not be empty")
		}
	}
	for i, p := range f.IncludePaths {
		if p == "" {
			c.at(fmt.Sprintf("filters.include_paths[%d]", i), "must not be empty")
		}
	}

	if cfg.Queue.Capacity < 1 {
		c.at("queue.capacity", "must be at least 1")
	}
	if cfg.Queue.MaxBytes < 64<<10 {
		c.at("queue.max_bytes", "must be at least 64KiB")
	}
	b := &cfg.Batch
	if b.MaxEvents < 1 {
		c.at("batch.max_events", "must be at least 1")
	}
	if b.MaxBytes < 1024 {
		c.at("batch.max_bytes", "must be at least 1KiB")
	}
	if b.MaxWait <= 0 {
		c.at("batch.max_wait", "must be positive, e.g. 1s")
	}

	sp := &cfg.Spool
	if sp.SegmentBytes < 4096 {
		c.at("spool.segment_bytes", "must be at least 4KiB")
	}
	if sp.MaxBytes < 2*sp.SegmentBytes {
		c.at("spool.max_bytes", "must be at least twice spool.segment_bytes (%s)", sp.SegmentBytes)
	}
	if b.MaxBytes > 0 && sp.SegmentBytes > 0 && b.MaxBytes > sp.SegmentBytes {
		c.at("batch.max_bytes", "must not exceed spool.segment_bytes (%s): a batch is one spool record", sp.SegmentBytes)
	}
	c.oneOf("spool.when_full", sp.WhenFull, "drop_oldest", "drop_newest")
	c.oneOf("spool.fsync", sp.Fsync, "always", "interval", "never")
	c.oneOf("spool.compression", sp.Compression, "none", "lz4", "zstd")
	if sp.Fsync == "interval" && sp.FsyncInterval <= 0 {
		c.at("spool.fsync_interval", "must be positive when spool.fsync is interval")
	}

	if len(cfg.Sinks) == 0 {
		c.at("sinks", "must list at least one sink")
	}
	seen := map[string]bool{}
	for i := range cfg.Sinks {
		validateSink(c, fmt.Sprintf("sinks[%d]", i), &cfg.Sinks[i], seen)
	}

	c.oneOf("log.level", cfg.Log.Level, "debug", "info", "warn", "error")
	c.oneOf("log.format", cfg.Log.Format, "text", "json")
	if cfg.DeadLetter.MaxBytes < 4096 {
		c.at("dead_letter.max_bytes", "must be at least 4KiB")
	}
	if cfg.DeadLetter.Keep < 0 {
		c.at("dead_letter.keep", "must not be negative (0 keeps no rotated file)")
	}

	if l := cfg.Metrics.Listen; l != "" {
		if host, _, err := net.SplitHostPort(l); err != nil {
			c.at("metrics.listen", "%q is not host:port (use 127.0.0.1:9464, or \"\" to disable)", l)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			c.warn("metrics.listen", "%q is not a loopback address: /metrics and /healthz have no authentication; restrict who can reach it", l)
		}
	}
	cfg.Warnings = c.warns
	return c.errs
}

func validateSink(c *checker, p string, s *Sink, seen map[string]bool) {
	switch {
	case s.Name == "":
		c.at(p+".name", "is required")
	case !sinkNameRe.MatchString(s.Name):
		c.at(p+".name", "%q may hold only letters, digits, '.', '_' and '-', at most 128 characters (it names files)", s.Name)
	case seen[s.Name]:
		c.at(p+".name", "%q is used by another sink", s.Name)
	}
	seen[s.Name] = true
	c.oneOf(p+".type", s.Type, "file", "kafka", "elasticsearch")
	blocks := map[string]bool{"file": s.File != nil, "kafka": s.Kafka != nil, "elasticsearch": s.Elasticsearch != nil}
	for name, present := range blocks {
		if present && name != s.Type {
			c.at(p+"."+name, "does not apply to a sink of type %q", s.Type)
		}
	}
	switch s.Type {
	case "file":
		if s.File == nil {
			c.at(p+".file", "is required for a sink of type file, with at least its path")
			s.File = ptr(DefaultFileSink())
			break
		}
		if s.File.Path == "" {
			c.at(p+".file.path", "is required")
		}
		if s.File.RotateBytes < 1024 {
			c.at(p+".file.rotate_bytes", "must be at least 1KiB")
		}
		if s.File.Keep < 1 {
			c.at(p+".file.keep", "must be at least 1")
		}
		if m := s.File.Mode; m&^0o666 != 0 || m&0o600 != 0o600 {
			c.at(p+".file.mode", "%s: use read/write bits only, with the owner's read and write (0600, the default, or 0640 for a local shipper in the file's group)", m)
		}
	case "kafka":
		if s.Kafka == nil {
			c.at(p+".kafka", "is required for a sink of type kafka, with its brokers")
			s.Kafka = ptr(DefaultKafka())
			break
		}
		validateKafka(c, p+".kafka", s.Kafka)
	case "elasticsearch":
		if s.Elasticsearch == nil {
			c.at(p+".elasticsearch", "is required for a sink of type elasticsearch, with its addresses")
			s.Elasticsearch = ptr(DefaultElasticsearch())
			break
		}
		validateElasticsearch(c, p+".elasticsearch", s.Elasticsearch)
	}
	validateBackoff(c, p+".backoff", &s.Backoff)
}

// validateKafka checks a Kafka block of a sink or the collector.
func validateKafka(c *checker, p string, k *Kafka) {
	if len(k.Brokers) == 0 {
		c.at(p+".brokers", "must list at least one broker as host:port")
	}
	for i, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			c.at(fmt.Sprintf("%s.brokers[%d]", p, i), "%q is not host:port", b)
		}
	}
	if k.Topic == "" {
		c.at(p+".topic", "is required")
	}
	c.oneOf(p+".compression", k.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	c.oneOf(p+".required_acks", k.RequiredAcks, "none", "one", "all")
	if k.SASL.Mechanism != "" {
		c.oneOf(p+".sasl.mechanism", k.SASL.Mechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
		if k.SASL.Username == "" {
			c.at(p+".sasl.username", "is required with sasl.mechanism")
		}
	}
	if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
		c.at(p+".tls", "cert_file and key_file go together")
	}
	if k.Timeout <= 0 {
		c.at(p+".timeout", "must be positive")
	}
	if k.SASL.Mechanism != "" && !k.TLS.Enabled {
		if k.AllowInsecureCredentials {
			c.warn(p+".sasl", "SASL %s without tls.enabled sends the password and every event unencrypted (allowed by allow_insecure_credentials)", k.SASL.Mechanism)
		} else {
			c.at(p+".sasl", "SASL %s without tls.enabled would send the password and every event unencrypted; set tls.enabled: true, or allow_insecure_credentials: true if that is intended", k.SASL.Mechanism)
		}
	}
}

func validateElasticsearch(c *checker, p string, e *Elasticsearch) {
	if len(e.Addresses) == 0 {
		c.at(p+".addresses", "must list at least one URL")
	}
	for i, a := range e.Addresses {
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			c.at(fmt.Sprintf("%s.addresses[%d]", p, i), "%q must start with http:// or https://", redact.URL(a))
		}
	}
	if e.DataStream == "" {
		c.at(p+".data_stream", "is required, e.g. logs-fileward.file-default")
	}
	if e.Workers < 1 || e.Workers > 64 {
		c.at(p+".workers", "must be between 1 and 64 (bulk requests in flight)")
	}
	if e.APIKey != "" && e.Username != "" {
		c.at(p+".api_key", "set api_key or username/password, not both")
	}
	if (e.Username == "") != (e.Password == "") {
		c.at(p+".username", "username and password go together")
	}
	if e.Timeout <= 0 {
		c.at(p+".timeout", "must be positive")
	}
	for i, a := range e.Addresses {
		if !strings.HasPrefix(a, "http://") {
			continue
		}
		u, err := url.Parse(a)
		inURL := err == nil && u.User != nil
		if e.APIKey == "" && e.Username == "" && !inURL {
			continue
		}
		ap := fmt.Sprintf("%s.addresses[%d]", p, i)
		if e.AllowInsecureCredentials {
			c.warn(ap, "%s sends the credentials and every event unencrypted (allowed by allow_insecure_credentials)", redact.URL(a))
		} else {
			c.at(ap, "%s would send the credentials (api_key, username/password) and every event unencrypted; use https://, or set allow_insecure_credentials: true if that is intended", redact.URL(a))
		}
	}
	if m := e.TLS.VerificationMode; m != "" {
		c.oneOf(p+".tls.verification_mode", m, tlspin.Modes()...)
		if e.TLS.InsecureSkipVerify && m != tlspin.ModeNone {
			c.at(p+".tls.insecure_skip_verify", "contradicts tls.verification_mode %q; remove one", m)
		}
	}
	if fp := e.TLS.CAFingerprint; fp != "" {
		if _, err := tlspin.ParseFingerprint(fp); err != nil {
			c.at(p+".tls.ca_fingerprint", "%v", err)
		}
	}
}

func validateBackoff(c *checker, p string, b *Backoff) {
	if b.Initial <= 0 {
		c.at(p+".initial", "must be positive")
	}
	if b.Max < b.Initial {
		c.at(p+".max", "must be at least backoff.initial")
	}
	if b.Multiplier < 1 {
		c.at(p+".multiplier", "must be at least 1")
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		c.at(p+".jitter", "must be between 0 and 1")
	}
}

// ValidateCollector checks the collector block; `fileward collect` calls it.
func (cfg *Config) ValidateCollector() error {
	c := &checker{file: cfg.File, lines: cfg.lines}
	validateKafka(c, "collector.kafka", &cfg.Collector.Kafka)
	if cfg.Collector.Kafka.GroupID == "" {
		c.at("collector.kafka.group_id", "is required")
	}
	validateElasticsearch(c, "collector.elasticsearch", &cfg.Collector.Elasticsearch)
	validateBackoff(c, "collector.backoff", &cfg.Collector.Backoff)
	if cfg.Collector.BatchEvents < 1 {
		c.at("collector.batch_events", "must be at least 1")
	}
	cfg.Warnings = append(cfg.Warnings, c.warns...)
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}
