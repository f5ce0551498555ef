package main

import (
	"testing"

	"github.com/fileward/fileward/agent/config"
)

// TestAgentConfigParses checks that the rows' agent config is one the agent
// accepts (its decoding is strict), with and without a spool codec.
func TestAgentConfigParses(t *testing.T) {
	for _, codec := range []string{"", "none", "lz4", "zstd"} {
		c := agentConfig{DataDir: t.TempDir(), Input: "/dev/null", SpoolCompression: codec, Sinks: fileSink(t.TempDir())}
		cfg, err := config.Parse("fwbench.yaml", []byte(c.yaml()), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("codec %q: %v\n%s", codec, err, c.yaml())
		}
		want := codec
		if want == "" {
			want = config.Default().Spool.Compression
		}
		if got := cfg.Spool.Compression; got != want {
			t.Errorf("codec %q: spool.compression %q, want %q", codec, got, want)
		}
	}
}
