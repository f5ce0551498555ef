package config

import (
	"strings"
	"testing"
)

// TestSecurityKeys covers the keys of issue 13: each bad value is an error
// at its key, each good one loads.
func TestSecurityKeys(t *testing.T) {
	es := func(extra string) string {
		return "sinks:\n  - name: siem\n    type: elasticsearch\n    elasticsearch:\n      addresses: [\"https://127.0.0.1:9200\"]\n" + extra
	}
	fp := strings.Repeat("AB:", 31) + "AB"
	for _, tc := range []struct {
		name, yaml, errPath string
	}{
		{"verification_mode full", es("      tls: {verification_mode: full}\n"), ""},
		{"verification_mode certificate", es("      tls: {verification_mode: certificate}\n"), ""},
		{"verification_mode none", es("      tls: {verification_mode: none}\n"), ""},
		{"verification_mode strict", es("      tls: {verification_mode: strict}\n"), "sinks[0].elasticsearch.tls.verification_mode"},
		{"insecure with full", es("      tls: {verification_mode: full, insecure_skip_verify: true}\n"), "sinks[0].elasticsearch.tls.insecure_skip_verify"},
		{"fingerprint with colons", es("      tls: {ca_fingerprint: \"" + fp + "\"}\n"), ""},
		{"fingerprint too short", es("      tls: {ca_fingerprint: \"AB:CD\"}\n"), "sinks[0].elasticsearch.tls.ca_fingerprint"},
		{"max_line_bytes", "source: {max_line_bytes: 4MiB}\n", ""},
		{"max_line_bytes too small", "source: {max_line_bytes: 100}\n", "source.max_line_bytes"},
		{"file mode", "sinks:\n  - {name: f, type: file, file: {path: x, mode: 0640}}\n", ""},
		{"file mode exec", "sinks:\n  - {name: f, type: file, file: {path: x, mode: 0750}}\n", "sinks[0].file.mode"},
		{"file mode not octal", "sinks:\n  - {name: f, type: file, file: {path: x, mode: 0999}}\n", "sinks[0].file.mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml), env(nil))
			if tc.errPath == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), " "+tc.errPath+": ") {
				t.Fatalf("want an error at %s, got %v", tc.errPath, err)
			}
		})
	}
}

// TestCollectorInsecureCredentials: the collector's blocks follow the same
// rule as the sinks', through ValidateCollector.
func TestCollectorInsecureCredentials(t *testing.T) {
	base := "collector:\n  kafka: {brokers: [\"k:9092\"], sasl: {mechanism: PLAIN, username: u, password: p}%s}\n  elasticsearch: {addresses: [\"http://e:9200\"], api_key: a2V5%s}\n"
	cfg, err := Parse("c.yaml", []byte(strings.ReplaceAll(base, "%s", "")), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.ValidateCollector()
	if err == nil || !strings.Contains(err.Error(), "collector.kafka.sasl: ") || !strings.Contains(err.Error(), "collector.elasticsearch.addresses[0]: ") {
		t.Fatalf("collector: %v", err)
	}
	cfg, err = Parse("c.yaml", []byte(strings.ReplaceAll(base, "%s", ", allow_insecure_credentials: true")), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateCollector(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings.Error(), "warning: ") {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
}
