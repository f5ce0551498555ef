// Package compose holds the docker-compose end-to-end stack (Kafka,
// Elasticsearch, Kibana, the collector and a replaying agent) and e2e.sh,
// which `make e2e` runs on machines with Docker. This test only checks the
// files parse and agree with each other; it cannot run the stack.
package compose

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/internal/testtool"
)

func TestComposeFileParses(t *testing.T) {
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image   string         `yaml:"image"`
			Build   map[string]any `yaml:"build"`
			Volumes []string       `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, s := range []string{"kafka", "elasticsearch", "kibana", "collector", "agent"} {
		if _, ok := f.Services[s]; !ok {
			t.Errorf("service %s missing", s)
		}
	}
	if df, _ := f.Services["collector"].Build["dockerfile"].(string); df != "Dockerfile.collector" {
		t.Errorf("collector builds %q", df)
	}
	if _, err := os.Stat("../../Dockerfile.collector"); err != nil {
		t.Error(err)
	}
	// Every bind-mounted host path exists.
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			i := strings.IndexByte(v, ':')
			if i <= 0 {
				continue
			}
			if src := v[:i]; src[0] == '.' {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: volume %s: %v", name, v, err)
				}
			}
		}
	}
}

func TestConfigsLoad(t *testing.T) {
	cfg, err := config.Load("config/collector.yaml")
	if err != nil {
		t.Fatalf("collector.yaml: %v", err)
	}
	if err := cfg.ValidateCollector(); err != nil {
		t.Fatalf("collector.yaml: %v", err)
	}
	if cfg.Collector.Elasticsearch.DataStream != "logs-fileward.file-default" || cfg.Metrics.Listen != "0.0.0.0:9465" {
		t.Errorf("collector.yaml: data stream %q, metrics %q; e2e.sh expects logs-fileward.file-default and :9465",
			cfg.Collector.Elasticsearch.DataStream, cfg.Metrics.Listen)
	}
	acfg, err := config.Load("config/agent.yaml")
	if err != nil {
		t.Fatalf("agent.yaml: %v", err)
	}
	kinds := map[string]bool{}
	for _, s := range acfg.Sinks {
		kinds[s.Type] = true
		if s.Type == "kafka" && s.Kafka.Topic != cfg.Collector.Kafka.Topic {
			t.Errorf("agent writes topic %q, collector reads %q", s.Kafka.Topic, cfg.Collector.Kafka.Topic)
		}
	}
	if !kinds["kafka"] || !kinds["file"] {
		t.Errorf("agent.yaml needs a kafka sink and the file sink e2e.sh reads: %v", kinds)
	}
}

func TestE2EScriptSyntax(t *testing.T) {
	sh := testtool.Need(t, "sh", "dash")
	if out, err := exec.Command(sh, "-n", "e2e.sh").CombinedOutput(); err != nil {
		t.Fatalf("sh -n e2e.sh: %v\n%s", err, out)
	}
}
