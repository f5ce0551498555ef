package main

import (
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkEncode-2                 	  560126	      2101 ns/op	 763.92 MB/s	       0 B/op	       0 allocs/op
BenchmarkSpoolAppend/1024KiB-2    	      84	   1719665 ns/op	 609.76 MB/s	     185 B/op	       2 allocs/op
BenchmarkSpoolAppend/1024KiB-2    	      84	   1719665 ns/op	 48.5 MB/s	     185 B/op	       2 allocs/op
BenchmarkSpoolAppend/1024KiB-2    	      84	   1719665 ns/op	 700 MB/s	     185 B/op	       2 allocs/op
BenchmarkCaptureOverhead-2   	       1	87846685963 ns/op	         5.822 agent-cpu-s/1M-events	     45200 events/s	         0 kernel_overflow
BenchmarkCaptureOverhead: a log line that is not a result
--- BENCH: BenchmarkCaptureOverhead-2
PASS
`
	got, err := parseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d lines, want 3: %v", len(got), got)
	}
	if e := got["BenchmarkEncode"]; e.N != 1 || e.Metrics["ns/op"] != 2101 || e.Metrics["allocs/op"] != 0 || e.Metrics["MB/s"] != 763.92 {
		t.Errorf("BenchmarkEncode = %+v", e)
	}
	if s := got["BenchmarkSpoolAppend/1024KiB"]; s.Metrics["MB/s"] != 609.76 || s.N != 3 {
		t.Errorf("sub-benchmark = %+v", s)
	}
	if c := got["BenchmarkCaptureOverhead"]; c.Metrics["agent-cpu-s/1M-events"] != 5.822 || c.Metrics["events/s"] != 45200 {
		t.Errorf("custom metrics = %+v", c)
	}
	if _, err := parseBench(strings.NewReader("BenchmarkX-2 10 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed without error")
	}
}

func TestParseMetric(t *testing.T) {
	text := `# HELP fileward_sink_events_acked_total x
fileward_sink_events_acked_total{sink="local"} 1.5e+06
fileward_sink_events_acked_total{sink="kafka"} 7
fileward_sink_events_acked_total_other 99
fileward_spool_bytes 1.073741824e+09
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fileward_sink_events_acked_total", []string{`sink="local"`}, 1.5e6},
		{"fileward_sink_events_acked_total", nil, 1.5e6 + 7},
		{"fileward_spool_bytes", nil, 1 << 30},
	} {
		got, err := parseMetric(strings.NewReader(text), c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("%s%v = %v, %v; want %v", c.name, c.labels, got, err, c.want)
		}
	}
	if _, err := parseMetric(strings.NewReader(text), "fileward_ring_depth"); err == nil {
		t.Error("a missing metric gave no error")
	}
}

func TestTargets(t *testing.T) {
	r := Result{Value: 400, Baseline: 2000, Ratio: 5}
	r.apply(Target{"ratio", ">=", 5})
	if r.Met == nil || !*r.Met || r.Target != "ratio >= 5" {
		t.Errorf("ratio 5 >= 5: %+v", r)
	}
	r = Result{Value: 120}
	r.apply(Target{"value", "<=", 100})
	if r.Met == nil || *r.Met {
		t.Errorf("120 <= 100 met: %+v", r)
	}
	r = Result{Value: 1}
	r.apply(Target{})
	if r.Met != nil || r.Target != "" {
		t.Errorf("no target: %+v", r)
	}
	r = Result{Value: 1}
	r.apply(Target{"ratio", ">=", 0.9})
	if r.Met == nil || *r.Met {
		t.Errorf("a ratio target without a baseline counts as met: %+v", r)
	}
}

func TestEventID(t *testing.T) {
	doc := []byte(`{"@timestamp":"x","event":{"kind":"event","id":"cede1b14","sequence":0},"process":{"entity_id":"55dd"}}`)
	if got := string(eventID(doc)); got != "cede1b14" {
		t.Errorf("eventID = %q", got)
	}
}
