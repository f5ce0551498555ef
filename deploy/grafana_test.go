package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
)

type grafanaDashboard struct {
	Inputs        []map[string]string `json:"__inputs"`
	Title         string              `json:"title"`
	UID           string              `json:"uid"`
	Tags          []string            `json:"tags"`
	Timezone      string              `json:"timezone"`
	SchemaVersion int                 `json:"schemaVersion"`
	Version       int                 `json:"version"`
	Editable      bool                `json:"editable"`
	Refresh       string              `json:"refresh"`
	Description   string              `json:"description"`
	Time          struct{ From, To string }
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Label      string          `json:"label"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Refresh    int             `json:"refresh"`
			IncludeAll bool            `json:"includeAll"`
			Multi      bool            `json:"multi"`
			AllValue   string          `json:"allValue"`
			Current    json.RawMessage `json:"current"`
			Sort       int             `json:"sort"`
			Hide       int             `json:"hide"`
		} `json:"list"`
	} `json:"templating"`
	Annotations json.RawMessage `json:"annotations"`
	Panels      []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Datasource  struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID        string          `json:"refId"`
			Datasource   json.RawMessage `json:"datasource"`
			Expr         string          `json:"expr"`
			LegendFormat string          `json:"legendFormat"`
			Range        bool            `json:"range"`
		} `json:"targets"`
		FieldConfig json.RawMessage `json:"fieldConfig"`
		Options     json.RawMessage `json:"options"`
	} `json:"panels"`
}

// grafanaMetric finds the metric names in a PromQL expression of the
// dashboard: the agent's own, the process collector's, and up.
var grafanaMetric = regexp.MustCompile(`\b(fileward_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up)\b`)

func loadGrafana(t *testing.T) *grafanaDashboard {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "dashboards/fileward-grafana.json")))
	dec.DisallowUnknownFields()
	var d grafanaDashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("fileward-grafana.json: %v", err)
	}
	return &d
}

// TestGrafanaDashboard: the dashboard parses, its layout and variables are
// consistent, it covers what an operator watches, and every expression is
// valid PromQL (promtool checks them as recording rules).
func TestGrafanaDashboard(t *testing.T) {
	d := loadGrafana(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "job", "instance"} {
		if !vars[v] {
			t.Errorf("no $%s variable", v)
		}
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want the $datasource variable", p.Title, p.Datasource)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 || p.Description == "" {
			t.Errorf("%s: no targets or no description", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("%s: %q ignores the $job or $instance variable", p.Title, tg.Expr)
			}
			for _, m := range grafanaMetric.FindAllString(tg.Expr, -1) {
				used[m] = true
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"fileward_events_captured_total", "fileward_events_dropped_total", "fileward_spool_bytes",
		"fileward_spool_max_bytes", "fileward_sink_lag_events", "fileward_sink_errors_total", "process_start_time_seconds"} {
		if !used[m] {
			t.Errorf("no panel queries %s", m)
		}
	}

	t.Run("promtool", func(t *testing.T) {
		pt := testtool.Need(t, "promtool", "prometheus")
		// Grafana's variables, as Grafana substitutes them.
		r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "6h", "$job", ".*", "$instance", ".*")
		var b strings.Builder
		b.WriteString("groups:\n  - name: grafana\n    rules:\n")
		for i, e := range exprs {
			q, _ := json.Marshal(r.Replace(e))
			fmt.Fprintf(&b, "      - record: fileward:grafana:%d\n        expr: %s\n", i, q)
		}
		f := filepath.Join(t.TempDir(), "grafana-rules.yaml")
		os.WriteFile(f, []byte(b.String()), 0o644)
		if out, err := exec.Command(pt, "check", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, b.String())
		}
	})
}

// TestDashboardsAgainstRunningAgent runs the real agent (a replay of the
// bundled recording with a malformed line, a file sink, and a Kafka sink on a
// closed loopback port so that sink errors and lag exist) and checks that
// every metric the Grafana dashboard queries is in its /metrics, and that
// every field the Kibana dashboard uses is in the documents it wrote (the
// loss fields in an events_lost document).
func TestDashboardsAgainstRunningAgent(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fileward")
	if out, err := exec.Command("go", "build", "-o", bin, "../agent/cmd/fileward").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	demo := readFile(t, "../agent/cmd/fileward/demo/eslogger-demo.ndjson")
	in := filepath.Join(dir, "in.ndjson")
	os.WriteFile(in, append(slices.Clone(demo), []byte("this line is not eslogger JSON\n")...), 0o644)
	// A loopback port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 1s, shutdown_timeout: 1s}
source: {type: replay, replay: {path: %[2]s, format: eslogger, rate: 500, loop: true}}
batch: {max_wait: 200ms}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}
  - name: kafka
    type: kafka
    kafka: {brokers: ["%[3]s"], topic: fileward-events}
    backoff: {initial: 100ms, max: 500ms}
metrics: {listen: "127.0.0.1:0"}
`, dir, in, closed), 0o644)
	cmd := exec.Command(bin, "run", "-c", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	addrC := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`metrics on http://([^/]+)/metrics`)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrC <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrC:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not print its metrics address")
	}

	d := loadGrafana(t)
	want := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range grafanaMetric.FindAllString(tg.Expr, -1) {
				if m != "up" { // Prometheus adds up to every target itself
					want[m] = true
				}
			}
		}
	}
	var have map[string]bool
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		have = scrapeNames(t, ctx, "http://"+addr+"/metrics")
		missing := 0
		for m := range want {
			if !have[m] {
				missing++
			}
		}
		if missing == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var missing []string
	for m := range want {
		if !have[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	t.Logf("the dashboard queries %v", slices.Sorted(maps.Keys(want)))
	if len(missing) > 0 {
		t.Errorf("the Grafana dashboard queries metrics the running agent does not export: %v", missing)
	}

	// Kibana: the fields of the saved objects, in real documents.
	ndjson := string(readFile(t, "dashboards/fileward-overview.ndjson"))
	fieldRe := regexp.MustCompile(`sourceField\\?":\\?"([A-Za-z@][A-Za-z0-9_.@]*)`)
	kqlRe := regexp.MustCompile(`([a-z][a-z0-9_.]*) : \\+"([a-z_.]+)\\+"`)
	fields := map[string]bool{}
	for _, m := range fieldRe.FindAllStringSubmatch(ndjson, -1) {
		fields[m[1]] = true
	}
	queries := map[string]bool{}
	for _, m := range kqlRe.FindAllStringSubmatch(ndjson, -1) {
		fields[m[1]] = true
		queries[m[1]+"="+m[2]] = true
	}
	if len(fields) < 5 || len(queries) < 2 {
		t.Fatalf("found only fields %v and query terms %v in the Kibana objects", fields, queries)
	}
	var docs []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		docs = readDocs(t, filepath.Join(dir, "out.ndjson"))
		seen := map[string]bool{}
		for _, doc := range docs {
			for k, v := range flatten("", doc) {
				seen[k] = true
				seen[k+"="+fmt.Sprint(v)] = true
			}
		}
		var absent []string
		for f := range fields {
			if !seen[f] {
				absent = append(absent, f)
			}
		}
		for q := range queries {
			if !seen[q] {
				absent = append(absent, q)
			}
		}
		if len(absent) == 0 {
			t.Logf("%d documents hold the Kibana fields %v and values %v", len(docs), slices.Sorted(maps.Keys(fields)), slices.Sorted(maps.Keys(queries)))
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(absent)
			t.Errorf("the Kibana dashboard uses fields or values no document of the running agent has (%d documents): %v\n%s", len(docs), absent, log.String())
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrapeNames returns the metric names in a Prometheus text exposition.
func scrapeNames(t *testing.T, ctx context.Context, url string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names
}

func readDocs(t *testing.T, p string) []map[string]any {
	t.Helper()
	b, _ := os.ReadFile(p)
	var out []map[string]any
	for _, l := range bytes.Split(b, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// flatten turns nested objects into dotted keys (ECS field names); values of
// arrays are kept whole.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			for k2, v2 := range flatten(key, sub) {
				out[k2] = v2
			}
			continue
		}
		out[key] = v
	}
	return out
}
