package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
)

func TestMetricsAndHealth(t *testing.T) {
	drops := &capture.Drops{}
	ring := capture.NewRingBytes(1, 1<<20, drops)
	ev := capture.Event{}
	ev.Path = "/tmp/x"
	wantBytes := capture.EventBytes(&ev)
	ring.TryPush(&ev)
	ring.TryPush(&ev) // full: counted as ring_full
	drops.Add(schema.LossSeqGap, 7)

	reg := NewRegistry()
	if err := RegisterCapture(reg, "replay", ring, drops); err != nil {
		t.Fatal(err)
	}
	var health Health
	degraded := false
	health.Add("sink/kafka", func() error {
		if degraded {
			return errors.New("backing off")
		}
		return nil
	})
	srv, err := Listen("127.0.0.1:0", reg, &health, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	body := get(t, "http://"+srv.Addr()+"/metrics", 200)
	for _, want := range []string{
		`fileward_events_captured_total{source="replay"} 1`,
		`fileward_events_dropped_total{reason="ring_full"} 1`,
		`fileward_events_dropped_total{reason="seq_gap"} 7`,
		`fileward_events_dropped_total{reason="spool_full"} 0`,
		`fileward_ring_depth 1`,
		fmt.Sprintf("fileward_ring_bytes %d\n", wantBytes),
		"fileward_ring_max_bytes 1.048576e+06\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := get(t, "http://"+srv.Addr()+"/healthz", 200); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	degraded = true
	if got := get(t, "http://"+srv.Addr()+"/healthz", 503); !strings.Contains(got, "sink/kafka: backing off") {
		t.Errorf("/healthz degraded = %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestListenReportsPortInUse(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", NewRegistry(), &Health{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.ln.Close()
	if _, err := Listen(srv.Addr(), NewRegistry(), &Health{}, nil); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("second Listen on %s: %v", srv.Addr(), err)
	}
}

func get(t *testing.T, url string, code int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Fatalf("GET %s = %d, want %d: %s", url, resp.StatusCode, code, b)
	}
	return string(b)
}
