package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if cfg.Sinks[0].Type != "file" || !strings.HasPrefix(cfg.Sinks[0].File.Path, "./var/") {
		t.Errorf("example must write to a file under ./var, got %+v", cfg.Sinks[0])
	}
	if !strings.HasPrefix(cfg.Metrics.Listen, "127.0.0.1:") {
		t.Errorf("example metrics must listen on loopback, got %q", cfg.Metrics.Listen)
	}
}

func TestDefaultsMatchContract(t *testing.T) {
	cfg, err := Parse("empty.yaml", []byte("{}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.Agent.DataDir, "./var"},
		{"shutdown_timeout", cfg.Agent.ShutdownTimeout.D(), 10 * time.Second},
		{"source.type", cfg.Source.Type, "auto"},
		{"events", strings.Join(cfg.Source.Events, ","), "open,close,create,modify,rename,delete,attrib,exec"},
		{"marks", strings.Join(cfg.Source.Fanotify.Marks, ","), "/"},
		{"mark_type", cfg.Source.Fanotify.MarkType, "filesystem"},
		{"eslogger.path", cfg.Source.Eslogger.Path, "/usr/bin/eslogger"},
		{"replay.format", cfg.Source.Replay.Format, "eslogger"},
		{"exclude_paths", strings.Join(cfg.Filters.ExcludePaths, ","), "/proc/,/sys/,/dev/"},
		{"aggregate_window", cfg.Filters.AggregateWindow.D(), time.Second},
		{"queue", cfg.Queue.Capacity, 65536},
		{"queue.max_bytes", cfg.Queue.MaxBytes, Size(8 << 20)},
		{"batch.max_events", cfg.Batch.MaxEvents, 2048},
		{"batch.max_bytes", cfg.Batch.MaxBytes, Size(1 << 20)},
		{"batch.max_wait", cfg.Batch.MaxWait.D(), time.Second},
		{"spool.max_bytes", cfg.Spool.MaxBytes, Size(1 << 30)},
		{"spool.segment_bytes", cfg.Spool.SegmentBytes, Size(16 << 20)},
		{"when_full", cfg.Spool.WhenFull, "drop_oldest"},
		{"fsync", cfg.Spool.Fsync, "interval"},
		{"fsync_interval", cfg.Spool.FsyncInterval.D(), time.Second},
		{"compression", cfg.Spool.Compression, "zstd"},
		{"metrics", cfg.Metrics.Listen, "127.0.0.1:9464"},
		{"collector group", cfg.Collector.Kafka.GroupID, "fileward-collector"},
		{"collector topic", cfg.Collector.Kafka.Topic, "fileward-events"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSinkBlocksGetDefaults(t *testing.T) {
	src := `
sinks:
  - name: k
    type: kafka
    kafka:
      brokers: ["10.0.0.1:9092"]
  - name: e
    type: elasticsearch
    elasticsearch:
      addresses: ["https://elasticsearch.example:9200"]
      api_key: ${KEY}
    backoff: { initial: 1s, max: 1m }
`
	cfg, err := Parse("s.yaml", []byte(src), env(map[string]string{"KEY": "secret-value"}))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Sinks[0].Kafka
	if k.Topic != "fileward-events" || k.Compression != "zstd" || k.RequiredAcks != "all" || k.Brokers[0] != "10.0.0.1:9092" {
		t.Errorf("kafka block %+v", k)
	}
	if b := cfg.Sinks[0].Backoff; b.Initial.D() != 500*time.Millisecond || b.Max.D() != 30*time.Second || b.Multiplier != 2 || b.Jitter != 0.5 {
		t.Errorf("default backoff %+v", b)
	}
	e := cfg.Sinks[1].Elasticsearch
	if e.DataStream != "logs-fileward.file-default" || !e.SetupTemplate || e.APIKey.Value() != "secret-value" {
		t.Errorf("elasticsearch block %+v", e)
	}
	if b := cfg.Sinks[1].Backoff; b.Initial.D() != time.Second || b.Max.D() != time.Minute || b.Multiplier != 2 {
		t.Errorf("partial backoff %+v", b)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{s.String(), s.GoString()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %q", out)
		}
	}
	e := Elasticsearch{APIKey: "k3y", Password: "pw"}
	if v, _ := e.APIKey.MarshalYAML(); v != "<redacted>" {
		t.Errorf("MarshalYAML = %v", v)
	}
}

func TestThreeErrorsWithLines(t *testing.T) {
	src := `agent:
  data_dir: ./var
  colour: blue
batch:
  max_wait: 5 parsecs
sinks:
  - name: siem
    type: elasticsearch
    elasticsearch:
      addresses: ["http://127.0.0.1:9200"]
      api_key: ${FILEWARD_TEST_UNSET}
`
	_, err := Parse("bad.yaml", []byte(src), env(nil))
	var errs Errors
	if !errors.As(err, &errs) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want Errors", err)
	}
	want := []string{
		"bad.yaml:3: agent.colour: unknown key",
		"bad.yaml:5: batch.max_wait: invalid duration \"5 parsecs\"",
		"bad.yaml:11: sinks[0].elasticsearch.api_key: environment variable FILEWARD_TEST_UNSET is not set",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"bad size", "spool:\n  max_bytes: 12 furlongs\n", "bad.yaml:2: spool.max_bytes: invalid size"},
		{"bad enum", "spool:\n  when_full: drop_random\n", "bad.yaml:2: spool.when_full: \"drop_random\" is not one of"},
		{"type mismatch", "queue:\n  capacity: lots\n", "bad.yaml:2: queue.capacity: \"lots\" is not a whole number"},
		{"kafka without block", "sinks:\n  - name: k\n    type: kafka\n", "bad.yaml:2: sinks[0].kafka: is required"},
		{"kafka without brokers", "sinks:\n  - name: k\n    type: kafka\n    kafka:\n      topic: t\n", "bad.yaml:4: sinks[0].kafka.brokers: must list at least one broker"},
		{"elasticsearch without addresses", "sinks:\n  - name: e\n    type: elasticsearch\n    elasticsearch: {data_stream: logs-x-y}\n", "bad.yaml:4: sinks[0].elasticsearch.addresses: must list at least one URL"},
		{"elasticsearch without block", "sinks:\n  - name: e\n    type: elasticsearch\n", "bad.yaml:2: sinks[0].elasticsearch: is required"},
		{"file without block", "sinks:\n  - name: f\n    type: file\n", "bad.yaml:2: sinks[0].file: is required"},
		{"duplicate key", "queue:\n  capacity: 10\n  capacity: 20\n", "bad.yaml:3: queue.capacity: given twice in one mapping (first at line 2)"},
		{"duplicate top-level key", "agent: {}\nmetrics: {listen: \"\"}\nagent: {}\n", "bad.yaml:3: agent: given twice"},
		{"unknown event", "source:\n  events: [open, read]\n", "bad.yaml:2: source.events[1]: unknown event \"read\""},
		{"replay needs path", "source:\n  type: replay\n", "bad.yaml:1: source.replay.path: is required"},
		{"duplicate sink", "sinks:\n  - {name: a, type: file}\n  - {name: a, type: file}\n", "bad.yaml:3: sinks[1].name: \"a\" is used by another sink"},
		{"wrong block", "sinks:\n  - name: a\n    type: file\n    kafka: {topic: x}\n", "bad.yaml:4: sinks[0].kafka: does not apply"},
		{"kafka acks", "sinks:\n  - name: k\n    type: kafka\n    kafka:\n      required_acks: some\n", "bad.yaml:5: sinks[0].kafka.required_acks"},
		{"relative mark", "source:\n  fanotify:\n    marks: [tmp]\n", "bad.yaml:3: source.fanotify.marks[0]: \"tmp\" must be an absolute path"},
		{"relative host_root", "source:\n  fanotify:\n    host_root: host\n", "bad.yaml:3: source.fanotify.host_root: \"host\" must be a clean absolute path"},
		{"root host_root", "source:\n  fanotify:\n    host_root: /\n", "bad.yaml:3: source.fanotify.host_root: \"/\" must be a clean absolute path"},
		{"bad data stream mode", "agent:\n  data_stream:\n    mode: elastic\n", "bad.yaml:3: agent.data_stream.mode: \"elastic\" is not one of"},
		{"bad namespace", "agent:\n  data_stream:\n    namespace: Prod-1\n", "bad.yaml:3: agent.data_stream.namespace: \"Prod-1\" is not a data stream namespace"},
		{"defend default namespace", "agent:\n  data_stream:\n    mode: defend_compatible\n    namespace: default\n", "bad.yaml:4: agent.data_stream.namespace: \"default\" in defend_compatible mode"},
		{"spool bound", "spool:\n  max_bytes: 16MiB\n  segment_bytes: 16MiB\n", "bad.yaml:2: spool.max_bytes: must be at least twice"},
		{"metrics addr", "metrics:\n  listen: nope\n", "bad.yaml:2: metrics.listen"},
		{"list expected", "filters:\n  exclude_paths: /proc/\n", "bad.yaml:2: filters.exclude_paths: expected a list"},
		{"yaml syntax", "agent: [\n", "bad.yaml:"},
		{"backoff", "sinks:\n  - name: a\n    type: file\n    backoff: {multiplier: 0.5}\n", "bad.yaml:4: sinks[0].backoff.multiplier: must be at least 1"},
	}
	for _, c := range cases {
		_, err := Parse("bad.yaml", []byte(c.src), env(nil))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q lacks %q", c.name, err, c.want)
		}
		// No YAML internals, and the line only once, in the prefix.
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.Contains(line, "!!") || strings.Contains(line, "unmarshal") || strings.Contains(line, "line ") && !strings.Contains(line, "first at line") {
				t.Errorf("%s: %q leaks YAML internals or repeats the line", c.name, line)
			}
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	src := "agent:\n  data_dir: ${DIR}/data\n  name: ${NAME:-fallback}\nqueue:\n  capacity: ${CAP}\n"
	cfg, err := Parse("e.yaml", []byte(src), env(map[string]string{"DIR": "/srv", "CAP": "128"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.DataDir != "/srv/data" || cfg.Agent.Name != "fallback" || cfg.Queue.Capacity != 128 {
		t.Errorf("expanded to %q %q %d", cfg.Agent.DataDir, cfg.Agent.Name, cfg.Queue.Capacity)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "512": 512, "4KiB": 4096, "16MiB": 16 << 20, "1GiB": 1 << 30, "2 MiB": 2 << 20, "3MB": 3 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1KiB", "1.5GiB", "1TiB", "lots"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if s := Size(16 << 20).String(); s != "16MiB" {
		t.Errorf("String = %q", s)
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func TestCollectorValidation(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("collector:\n  kafka:\n    group_id: \"\"\n  batch_events: 0\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.ValidateCollector()
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: collector.kafka.group_id: is required") || !strings.Contains(err.Error(), "collector.batch_events") {
		t.Errorf("ValidateCollector = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	f.Add(ex)
	f.Add([]byte("agent: {data_dir: ${X}}\nsinks: [{name: a, type: kafka, kafka: {brokers: [b:1]}}]\n"))
	f.Add([]byte("spool:\n  max_bytes: 1GiB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, env(map[string]string{"X": "y"}))
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
	})
}
