package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigRejects runs `fileward check-config` on configs that parse
// but cannot work. Each must exit 2 with the problem at its FILE:LINE, and
// no message may leak YAML internals or say its line twice.
func TestCheckConfigRejects(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, src string
		want      string // after "FILE:"
	}{
		{"kafka sink without a kafka block", "sinks:\n  - name: k\n    type: kafka\n", "2: sinks[0].kafka: is required"},
		{"kafka sink without brokers", "sinks:\n  - name: k\n    type: kafka\n    kafka:\n      topic: t\n", "4: sinks[0].kafka.brokers: must list at least one broker"},
		{"elasticsearch sink without addresses", "sinks:\n  - name: e\n    type: elasticsearch\n    elasticsearch:\n      data_stream: logs-fileward.file-default\n", "4: sinks[0].elasticsearch.addresses: must list at least one URL"},
		{"file sink without a file block", "sinks:\n  - name: f\n    type: file\n", "2: sinks[0].file: is required"},
		{"key given twice", "agent:\n  data_dir: /tmp/a\n  name: x\n  data_dir: /tmp/b\nsinks:\n  - {name: f, type: file, file: {path: /tmp/x.ndjson}}\n", "4: agent.data_dir: given twice in one mapping (first at line 2)"},
		{"replay path that does not exist", "source:\n  type: replay\n  replay:\n    path: " + dir + "/nope.ndjson\nsinks:\n  - {name: f, type: file, file: {path: /tmp/x.ndjson}}\n", "4: source.replay.path: \"" + dir + "/nope.ndjson\" does not exist"},
		{"fanotify mark that does not exist", "source:\n  type: fanotify\n  fanotify:\n    marks:\n      - /\n      - " + dir + "/nope\nsinks:\n  - {name: f, type: file, file: {path: /tmp/x.ndjson}}\n", "6: source.fanotify.marks[1]: \"" + dir + "/nope\" does not exist"},
		{"not a number", "queue:\n  capacity: lots\nsinks:\n  - {name: f, type: file, file: {path: /tmp/x.ndjson}}\n", "2: queue.capacity: \"lots\" is not a whole number"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "c"+string(rune('a'+i))+".yaml")
			if err := os.WriteFile(p, []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := fw(t, nil, "check-config", "-c", p)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if !strings.HasPrefix(lines[0], p+":"+c.want) {
				t.Errorf("first error %q, want prefix %q\n%s", lines[0], p+":"+c.want, errOut)
			}
			for _, l := range lines {
				if strings.Contains(l, "!!") || strings.Contains(l, "unmarshal") || strings.Contains(l, "yaml: ") ||
					(strings.Contains(l, "line ") && !strings.Contains(l, "first at line")) {
					t.Errorf("%q leaks YAML internals or repeats its line", l)
				}
			}
		})
	}
}
