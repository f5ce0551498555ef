package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// problems returns every error line Parse reports for src ("" = accepted).
func problems(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("b.yaml", []byte(src), env(nil))
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is not Errors: %v", err)
	}
	return strings.Split(err.Error(), "\n")
}

// sameProblems: got has exactly one line per want, in order, each starting
// with its want (FILE:LINE: key: reason, or a prefix of the reason where it
// quotes a long value).
func sameProblems(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}

// TestValidationBounds walks every numeric limit validate enforces: the
// limit itself is accepted, one step past it is refused with exactly one
// error, at the key, with its reason.
func TestValidationBounds(t *testing.T) {
	ns := func(n int) string { return strings.Repeat("a", n) }
	file := func(extra string) string {
		return "sinks:\n  - {name: f, type: file, file: {path: x" + extra + "}}\n"
	}
	kafka := func(extra string) string {
		return "sinks:\n  - {name: k, type: kafka, kafka: {brokers: [\"b:9092\"]" + extra + "}}\n"
	}
	es := func(extra string) string {
		return "sinks:\n  - {name: e, type: elasticsearch, elasticsearch: {addresses: [\"https://e:9200\"]" + extra + "}}\n"
	}
	backoff := func(b string) string {
		return "sinks:\n  - {name: f, type: file, file: {path: x}, backoff: {" + b + "}}\n"
	}
	for _, tc := range []struct {
		name, src string
		want      []string // nil: accepted
	}{
		{"max_line_bytes 4KiB", "source: {max_line_bytes: 4096}\n", nil},
		{"max_line_bytes 4KiB-1", "source: {max_line_bytes: 4095}\n", []string{"b.yaml:1: source.max_line_bytes: must be between 4KiB and 1GiB (default 1MiB)"}},
		{"max_line_bytes 1GiB", "source: {max_line_bytes: 1GiB}\n", nil},
		{"max_line_bytes 1GiB+1", "source: {max_line_bytes: 1073741825}\n", []string{"b.yaml:1: source.max_line_bytes: must be between 4KiB and 1GiB (default 1MiB)"}},

		{"namespace 100", "agent: {data_stream: {namespace: " + ns(100) + "}}\n", nil},
		{"namespace 101", "agent: {data_stream: {namespace: " + ns(101) + "}}\n", []string{"b.yaml:1: agent.data_stream.namespace: \"" + ns(101) + "\" is not a data stream namespace"}},
		{"namespace uppercase", "agent: {data_stream: {namespace: Prod}}\n", []string{"b.yaml:1: agent.data_stream.namespace: \"Prod\" is not a data stream namespace"}},
		{"namespace colon", "agent: {data_stream: {namespace: \"a:b\"}}\n", []string{"b.yaml:1: agent.data_stream.namespace: \"a:b\" is not a data stream namespace"}},
		{"namespace default in fileward mode", "agent: {data_stream: {namespace: default}}\n", nil},
		{"namespace other in defend mode", "agent: {data_stream: {mode: defend_compatible, namespace: prod}}\n", nil},

		{"shutdown_timeout 0", "agent: {shutdown_timeout: 0s}\n", nil},
		{"shutdown_timeout -1ns", "agent: {shutdown_timeout: -1ns}\n", []string{"b.yaml:1: agent.shutdown_timeout: must not be negative"}},
		{"heartbeat 0", "agent: {heartbeat: 0}\n", nil},
		{"heartbeat -1ns", "agent: {heartbeat: -1ns}\n", []string{"b.yaml:1: agent.heartbeat: must not be negative (0 disables heartbeats)"}},
		{"memory_limit 0", "agent: {memory_limit: 0}\n", nil},
		{"memory_limit 32MiB", "agent: {memory_limit: 32MiB}\n", nil},
		{"memory_limit 32MiB-1", "agent: {memory_limit: 33554431}\n", []string{"b.yaml:1: agent.memory_limit: must be 0 (no limit) or at least 32MiB (default 64MiB)"}},
		{"memory_limit -1", "agent: {memory_limit: -1}\n", []string{"b.yaml:1: agent.memory_limit"}},
		{"empty data_dir", "agent: {data_dir: \"\"}\n", []string{"b.yaml:1: agent.data_dir: must not be empty"}},

		{"replay rate 0", "source: {replay: {rate: 0}}\n", nil},
		{"replay rate -0.5", "source: {replay: {rate: -0.5}}\n", []string{"b.yaml:1: source.replay.rate: must not be negative (0 = as fast as possible)"}},
		{"eslogger without path", "source: {type: eslogger, eslogger: {path: \"\"}}\n", []string{"b.yaml:1: source.eslogger.path: must name the eslogger executable"}},
		{"eslogger path unused by replay", "source: {type: replay, replay: {path: r.ndjson}, eslogger: {path: \"\"}}\n", nil},
		{"no events", "source: {events: []}\n", []string{"b.yaml:1: source.events: must list at least one event"}},
		{"host_root /host", "source: {fanotify: {host_root: /host}}\n", nil},
		{"host_root unclean", "source: {fanotify: {host_root: /host/}}\n", []string{"b.yaml:1: source.fanotify.host_root: \"/host/\" must be a clean absolute path other than /"}},

		{"aggregate_window 0", "filters: {aggregate_window: 0}\n", nil},
		{"aggregate_window -1ns", "filters: {aggregate_window: -1ns}\n", []string{"b.yaml:1: filters.aggregate_window: must not be negative (0 disables aggregation)"}},
		{"empty exclude path", "filters: {exclude_paths: [/a, \"\"]}\n", []string{"b.yaml:1: filters.exclude_paths[1]: must not be empty"}},
		{"empty include path", "filters: {include_paths: [\"\", /a]}\n", []string{"b.yaml:1: filters.include_paths[0]: must not be empty"}},

		{"queue 1", "queue: {capacity: 1}\n", nil},
		{"queue 0", "queue: {capacity: 0}\n", []string{"b.yaml:1: queue.capacity: must be at least 1"}},
		{"batch.max_events 1", "batch: {max_events: 1}\n", nil},
		{"batch.max_events 0", "batch: {max_events: 0}\n", []string{"b.yaml:1: batch.max_events: must be at least 1"}},
		{"batch.max_bytes 1KiB", "batch: {max_bytes: 1024}\n", nil},
		{"batch.max_bytes 1KiB-1", "batch: {max_bytes: 1023}\n", []string{"b.yaml:1: batch.max_bytes: must be at least 1KiB"}},
		{"batch.max_wait 1ns", "batch: {max_wait: 1ns}\n", nil},
		{"batch.max_wait 0", "batch: {max_wait: 0}\n", []string{"b.yaml:1: batch.max_wait: must be positive, e.g. 1s"}},

		{"segment 4KiB", "spool: {segment_bytes: 4096, max_bytes: 8192}\nbatch: {max_bytes: 4096}\n", nil},
		{"segment 4KiB-1", "spool: {segment_bytes: 4095, max_bytes: 8190}\nbatch: {max_bytes: 1024}\n", []string{"b.yaml:1: spool.segment_bytes: must be at least 4KiB"}},
		// A zero segment is one error, not also "batch.max_bytes must not
		// exceed 0".
		{"segment 0", "spool: {segment_bytes: 0, max_bytes: 0}\n", []string{"b.yaml:1: spool.segment_bytes: must be at least 4KiB"}},
		{"spool twice the segment", "spool: {max_bytes: 32MiB}\n", nil},
		{"spool twice the segment -1", "spool: {max_bytes: 33554431}\n", []string{"b.yaml:1: spool.max_bytes: must be at least twice spool.segment_bytes (16MiB)"}},
		{"batch = segment", "spool: {segment_bytes: 8KiB, max_bytes: 16KiB}\nbatch: {max_bytes: 8KiB}\n", nil},
		{"batch = segment+1", "spool: {segment_bytes: 8KiB, max_bytes: 16KiB}\nbatch: {max_bytes: 8193}\n", []string{"b.yaml:2: batch.max_bytes: must not exceed spool.segment_bytes (8KiB): a batch is one spool record"}},
		{"fsync_interval 1ns", "spool: {fsync: interval, fsync_interval: 1ns}\n", nil},
		{"fsync_interval 0", "spool: {fsync: interval, fsync_interval: 0}\n", []string{"b.yaml:1: spool.fsync_interval: must be positive when spool.fsync is interval"}},
		{"fsync_interval unused", "spool: {fsync: always, fsync_interval: 0}\n", nil},
		{"compression lz4", "spool: {compression: lz4}\n", nil},
		{"compression none", "spool: {compression: none}\n", nil},
		{"compression gzip", "spool: {compression: gzip}\n", []string{`b.yaml:1: spool.compression: "gzip" is not one of: none, lz4, zstd`}},

		{"dead_letter 4KiB", "dead_letter: {max_bytes: 4096}\n", nil},
		{"dead_letter 4KiB-1", "dead_letter: {max_bytes: 4095}\n", []string{"b.yaml:1: dead_letter.max_bytes: must be at least 4KiB"}},
		{"dead_letter keep 0", "dead_letter: {keep: 0}\n", nil},
		{"dead_letter keep -1", "dead_letter: {keep: -1}\n", []string{"b.yaml:1: dead_letter.keep: must not be negative (0 keeps no rotated file)"}},

		{"no sinks", "sinks: []\n", []string{"b.yaml:1: sinks: must list at least one sink"}},
		{"sink without name", "sinks:\n  - {type: file, file: {path: x}}\n", []string{"b.yaml:2: sinks[0].name: is required"}},
		{"sink name 128", "sinks:\n  - {name: " + ns(128) + ", type: file, file: {path: x}}\n", nil},
		{"sink name 129", "sinks:\n  - {name: " + ns(129) + ", type: file, file: {path: x}}\n", []string{"b.yaml:2: sinks[0].name: \"" + ns(129) + "\" may hold only"}},
		{"file rotate 1KiB", file(", rotate_bytes: 1024"), nil},
		{"file rotate 1KiB-1", file(", rotate_bytes: 1023"), []string{"b.yaml:2: sinks[0].file.rotate_bytes: must be at least 1KiB"}},
		{"file keep 1", file(", keep: 1"), nil},
		{"file keep 0", file(", keep: 0"), []string{"b.yaml:2: sinks[0].file.keep: must be at least 1"}},
		{"file path empty", "sinks:\n  - {name: f, type: file, file: {path: \"\"}}\n", []string{"b.yaml:2: sinks[0].file.path: is required"}},
		{"file mode 0600", file(", mode: 0600"), nil},
		{"file mode 0666", file(", mode: 0666"), nil},
		{"file mode 0400", file(", mode: 0400"), []string{"b.yaml:2: sinks[0].file.mode: 0400: use read/write bits only"}},
		{"file mode 0200", file(", mode: 0200"), []string{"b.yaml:2: sinks[0].file.mode: 0200: use read/write bits only"}},
		{"file mode 0700", file(", mode: 0700"), []string{"b.yaml:2: sinks[0].file.mode: 0700: use read/write bits only"}},
		{"file mode 1600", file(", mode: 1600"), []string{"b.yaml:2: sinks[0].file.mode: 1600: use read/write bits only"}},
		// 07777 is the largest permission that parses; validate then refuses it.
		{"file mode 7777", file(", mode: 7777"), []string{"b.yaml:2: sinks[0].file.mode: 7777: use read/write bits only"}},
		{"file mode 10000", file(", mode: 10000"), []string{"b.yaml:2: sinks[0].file.mode: invalid file mode \"10000\": write it in octal"}},

		{"kafka timeout 1ns", kafka(", timeout: 1ns"), nil},
		{"kafka timeout 0", kafka(", timeout: 0"), []string{"b.yaml:2: sinks[0].kafka.timeout: must be positive"}},
		{"kafka topic empty", kafka(", topic: \"\""), []string{"b.yaml:2: sinks[0].kafka.topic: is required"}},
		{"kafka broker not host:port", "sinks:\n  - {name: k, type: kafka, kafka: {brokers: [\"b:9092\", b]}}\n", []string{"b.yaml:2: sinks[0].kafka.brokers[1]: \"b\" is not host:port"}},
		{"kafka sasl without username", kafka(", tls: {enabled: true}, sasl: {mechanism: PLAIN, password: p}"), []string{"b.yaml:2: sinks[0].kafka.sasl.username: is required with sasl.mechanism"}},
		{"kafka sasl over tls", kafka(", tls: {enabled: true}, sasl: {mechanism: SCRAM-SHA-512, username: u, password: p}"), nil},
		{"kafka sasl mechanism", kafka(", tls: {enabled: true}, sasl: {mechanism: GSSAPI, username: u}"), []string{"b.yaml:2: sinks[0].kafka.sasl.mechanism: \"GSSAPI\" is not one of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"}},
		{"kafka sasl without tls", kafka(", sasl: {mechanism: PLAIN, username: u, password: p}"), []string{"b.yaml:2: sinks[0].kafka.sasl: SASL PLAIN without tls.enabled would send the password"}},
		{"kafka cert without key", kafka(", tls: {enabled: true, cert_file: c.pem}"), []string{"b.yaml:2: sinks[0].kafka.tls: cert_file and key_file go together"}},
		{"kafka key without cert", kafka(", tls: {enabled: true, key_file: k.pem}"), []string{"b.yaml:2: sinks[0].kafka.tls: cert_file and key_file go together"}},
		{"kafka cert and key", kafka(", tls: {enabled: true, cert_file: c.pem, key_file: k.pem}"), nil},

		{"es workers 1", es(", workers: 1"), nil},
		{"es workers 64", es(", workers: 64"), nil},
		{"es workers 0", es(", workers: 0"), []string{"b.yaml:2: sinks[0].elasticsearch.workers: must be between 1 and 64 (bulk requests in flight)"}},
		{"es workers 65", es(", workers: 65"), []string{"b.yaml:2: sinks[0].elasticsearch.workers: must be between 1 and 64 (bulk requests in flight)"}},
		{"es timeout 1ns", es(", timeout: 1ns"), nil},
		{"es timeout 0", es(", timeout: 0"), []string{"b.yaml:2: sinks[0].elasticsearch.timeout: must be positive"}},
		{"es data_stream empty", es(", data_stream: \"\""), []string{"b.yaml:2: sinks[0].elasticsearch.data_stream: is required"}},
		{"es address scheme", "sinks:\n  - {name: e, type: elasticsearch, elasticsearch: {addresses: [\"https://e:9200\", \"e:9200\"]}}\n", []string{"b.yaml:2: sinks[0].elasticsearch.addresses[1]: \"e:9200\" must start with http:// or https://"}},
		{"es api_key and username", es(", api_key: k, username: u, password: p"), []string{"b.yaml:2: sinks[0].elasticsearch.api_key: set api_key or username/password, not both"}},
		{"es username without password", es(", username: u"), []string{"b.yaml:2: sinks[0].elasticsearch.username: username and password go together"}},
		{"es password without username", es(", password: p"), []string{"b.yaml:2: sinks[0].elasticsearch.username: username and password go together"}},
		{"es http without credentials", "sinks:\n  - {name: e, type: elasticsearch, elasticsearch: {addresses: [\"http://e:9200\"]}}\n", nil},
		{"es http with username", "sinks:\n  - {name: e, type: elasticsearch, elasticsearch: {addresses: [\"http://e:9200\"], username: u, password: p}}\n", []string{"b.yaml:2: sinks[0].elasticsearch.addresses[0]: http://e:9200 would send the credentials"}},
		{"es http with credentials in the URL", "sinks:\n  - {name: e, type: elasticsearch, elasticsearch: {addresses: [\"https://e:9200\", \"http://u:p@e:9200\"]}}\n", []string{"b.yaml:2: sinks[0].elasticsearch.addresses[1]: http://u:***@e:9200 would send the credentials"}},
		{"es https with api_key", es(", api_key: k"), nil},
		{"es insecure_skip_verify with none", es(", tls: {verification_mode: none, insecure_skip_verify: true}"), nil},

		{"backoff smallest", backoff("initial: 1ns, max: 1ns, multiplier: 1, jitter: 0"), nil},
		{"backoff initial 0", backoff("initial: 0, max: 1s"), []string{"b.yaml:2: sinks[0].backoff.initial: must be positive"}},
		{"backoff max < initial", backoff("initial: 2ns, max: 1ns"), []string{"b.yaml:2: sinks[0].backoff.max: must be at least backoff.initial"}},
		{"backoff multiplier 0.999", backoff("multiplier: 0.999"), []string{"b.yaml:2: sinks[0].backoff.multiplier: must be at least 1"}},
		{"backoff jitter 1", backoff("jitter: 1"), nil},
		{"backoff jitter -0.01", backoff("jitter: -0.01"), []string{"b.yaml:2: sinks[0].backoff.jitter: must be between 0 and 1"}},
		{"backoff jitter 1.01", backoff("jitter: 1.01"), []string{"b.yaml:2: sinks[0].backoff.jitter: must be between 0 and 1"}},

		{"log level", "log: {level: loud}\n", []string{"b.yaml:1: log.level: \"loud\" is not one of: debug, info, warn, error"}},
		{"log format", "log: {format: xml}\n", []string{"b.yaml:1: log.format: \"xml\" is not one of: text, json"}},
		{"metrics disabled", "metrics: {listen: \"\"}\n", nil},
		{"metrics localhost", "metrics: {listen: \"localhost:9464\"}\n", nil},
		{"metrics ::1", "metrics: {listen: \"[::1]:9464\"}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := problems(t, tc.src); !sameProblems(got, tc.want) {
				t.Errorf("%s\ngot  %q\nwant %q", tc.src, got, tc.want)
			}
		})
	}
}

// TestCollectorBatchBound: collector.batch_events 1 is accepted, 0 refused.
func TestCollectorBatchBound(t *testing.T) {
	for _, tc := range []struct {
		n    string
		want string
	}{{"1", ""}, {"0", "c.yaml:2: collector.batch_events: must be at least 1"}} {
		cfg, err := Parse("c.yaml", []byte("collector:\n  batch_events: "+tc.n+"\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.ValidateCollector()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("batch_events %s: %v", tc.n, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("batch_events %s: %v, want %q", tc.n, err, tc.want)
		}
	}
}

// TestErrorOrder: errors come in file order; one at a key absent from the
// file (line 0) comes last, and two on one line keep the order validate
// found them in.
func TestErrorOrder(t *testing.T) {
	src := "spool: {segment_bytes: 4KiB, max_bytes: 8KiB}\n" + // batch.max_bytes (default 1MiB) now exceeds the segment: no line
		"log: {level: loud}\n" +
		"source: {fanotify: {marks: [a, b]}}\n"
	want := []string{
		"b.yaml:2: log.level: \"loud\" is not one of",
		"b.yaml:3: source.fanotify.marks[0]: \"a\" must be an absolute path",
		"b.yaml:3: source.fanotify.marks[1]: \"b\" must be an absolute path",
		"b.yaml: batch.max_bytes: must not exceed spool.segment_bytes (4KiB)",
	}
	if got := problems(t, src); !sameProblems(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestLoadSizeLimit: a config of exactly MaxFileBytes loads; one byte more is
// refused by its size, before being read, with the size in the message.
func TestLoadSizeLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) string {
		t.Helper()
		head := "queue: {capacity: 7}\n"
		pad := size - len(head)
		data := head + "#" + strings.Repeat("x", pad-2) + "\n"
		if len(data) != size {
			t.Fatalf("built %d bytes, want %d", len(data), size)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := Load(write("exact.yaml", MaxFileBytes))
	if err != nil {
		t.Fatalf("a config of exactly %d bytes: %v", MaxFileBytes, err)
	}
	if cfg.Queue.Capacity != 7 {
		t.Errorf("queue.capacity = %d, want 7", cfg.Queue.Capacity)
	}
	p := write("over.yaml", MaxFileBytes+1)
	_, err = Load(p)
	want := p + ": the config file is 1.0 MiB (1048577 bytes); a config may be at most 1 MiB (is this the right file?)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrInvalid) {
		t.Errorf("Load = %v, want %q", err, want)
	}
}

// TestEmptyValuesKeepDefaults: an empty file, an empty block and an empty
// value each keep the defaults rather than failing.
func TestEmptyValuesKeepDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "agent:\nsinks:\nqueue:\n  capacity:\n"} {
		cfg, err := Parse("e.yaml", []byte(src), env(nil))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if cfg.Agent.DataDir != "./var" || cfg.Queue.Capacity != 65536 || len(cfg.Sinks) != 1 || cfg.Sinks[0].Name != "local" {
			t.Errorf("%q: defaults lost: data_dir %q capacity %d sinks %+v", src, cfg.Agent.DataDir, cfg.Queue.Capacity, cfg.Sinks)
		}
	}
}

// TestSizeLimit: the largest size ParseSize takes is 1<<62 in any unit.
func TestSizeLimit(t *testing.T) {
	for _, in := range []string{"4611686018427387904", "4503599627370496KiB", "4294967296GiB"} {
		if got, err := ParseSize(in); err != nil || got != 1<<62 {
			t.Errorf("ParseSize(%q) = %d, %v; want 1<<62", in, got, err)
		}
	}
	for _, in := range []string{"4611686018427387905", "4503599627370497KiB", "4294967297GiB"} {
		if _, err := ParseSize(in); err == nil || err.Error() != "size \""+in+"\" is too large" {
			t.Errorf("ParseSize(%q) = %v, want too large", in, err)
		}
	}
}

// TestCheckPaths: the replay input and the fanotify marks must exist on
// this host; each missing one is reported at its key.
func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec.ndjson")
	if err := os.WriteFile(rec, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	autoWant := "" // auto means fanotify on Linux only
	if runtime.GOOS == "linux" {
		autoWant = "p.yaml:1: source.fanotify.marks[0]: \"" + missing + "\" does not exist on this host"
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"auto", "source: {type: auto, fanotify: {marks: [" + missing + "]}}\n", autoWant},
		{"replay file", "source: {type: replay, replay: {path: " + rec + "}}\n", ""},
		{"replay missing", "source:\n  type: replay\n  replay: {path: " + missing + "}\n", "p.yaml:3: source.replay.path: \"" + missing + "\" does not exist on this host"},
		{"replay directory", "source:\n  type: replay\n  replay: {path: " + dir + "}\n", "p.yaml:3: source.replay.path: \"" + dir + "\" is a directory: name a recorded NDJSON file"},
		{"fanotify marks", "source:\n  type: fanotify\n  fanotify:\n    marks: [" + dir + ", " + missing + "]\n", "p.yaml:4: source.fanotify.marks[1]: \"" + missing + "\" does not exist on this host"},
		{"marks unused by replay", "source: {type: replay, replay: {path: " + rec + "}, fanotify: {marks: [" + missing + "]}}\n", ""},
		{"marks unused by eslogger", "source: {type: eslogger, fanotify: {marks: [" + missing + "]}}\n", ""},
	} {
		cfg, err := Parse("p.yaml", []byte(tc.src), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = cfg.CheckPaths()
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("%s: CheckPaths = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestMetricsListenWarning: a /metrics address that is not loopback is
// accepted with a warning at its key; loopback addresses and "localhost" are
// not warned about.
func TestMetricsListenWarning(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:9464", ""},
		{"[::1]:9464", ""},
		{"localhost:9464", ""},
		{"", ""},
		{"0.0.0.0:9464", "m.yaml:1: metrics.listen: warning: \"0.0.0.0:9464\" is not a loopback address"},
		{"metrics.example:9464", "m.yaml:1: metrics.listen: warning: \"metrics.example:9464\" is not a loopback address"},
	} {
		cfg, err := Parse("m.yaml", []byte("metrics: {listen: \""+tc.listen+"\"}\n"), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.listen, err)
		}
		got := cfg.Warnings.Error()
		if (tc.want == "" && len(cfg.Warnings) != 0) || (tc.want != "" && (len(cfg.Warnings) != 1 || !strings.HasPrefix(got, tc.want))) {
			t.Errorf("%s: warnings %q, want %q", tc.listen, got, tc.want)
		}
	}
}
