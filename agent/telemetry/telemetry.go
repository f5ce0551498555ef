package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/internal/redact"
	"github.com/fileward/fileward/schema"
)

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// RegisterCapture registers fileward_events_captured_total{source},
// fileward_events_dropped_total{reason}, fileward_ring_depth,
// fileward_ring_bytes and fileward_ring_max_bytes, read from the ring and the
// drop counters at scrape time.
func RegisterCapture(reg prometheus.Registerer, source string, ring *capture.Ring, drops *capture.Drops) error {
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fileward_events_captured_total",
			Help:        "Events the capture source handed to the ring.",
			ConstLabels: prometheus.Labels{"source": source},
		}, func() float64 { return float64(ring.Pushed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fileward_ring_depth",
			Help: "Events waiting in the ring between capture and pipeline.",
		}, func() float64 { return float64(ring.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fileward_ring_bytes",
			Help: "Memory the queued events hold, as the agent estimates it (queue.max_bytes bounds it).",
		}, func() float64 { return float64(ring.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fileward_ring_max_bytes",
			Help: "queue.max_bytes: the ring is full at this many bytes of queued events (0: bounded in events only).",
		}, func() float64 { return float64(ring.MaxBytes()) }),
	}
	for r := schema.LossReason(0); r < schema.LossReasonCount; r++ {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fileward_events_dropped_total",
			Help:        "Events lost, by reason. Each loss also travels in the stream as an events_lost event.",
			ConstLabels: prometheus.Labels{"reason": r.String()},
		}, func() float64 { return float64(drops.Load(r)) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register capture metrics: %w", err)
		}
	}
	return nil
}

// Check reports one component's health: nil when healthy, else why not.
type Check func() error

// Health aggregates named checks for /healthz. It is safe for concurrent use.
type Health struct {
	mu     sync.Mutex
	checks map[string]Check
}

// Add registers a check under name, replacing any earlier one.
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checks == nil {
		h.checks = map[string]Check{}
	}
	h.checks[name] = c
}

// Remove drops the check under name (a sink removed by a config reload).
func (h *Health) Remove(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.checks, name)
}

// ServeHTTP answers 200 "ok" when every check passes, else 503 with
// "degraded" and one line per failing check.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	var bad []string
	for name, c := range h.checks {
		if err := c(); err != nil {
			bad = append(bad, name+": "+redact.Text(err.Error()))
		}
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(bad) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintln(w, "degraded")
	fmt.Fprintln(w, strings.Join(bad, "\n"))
}

// Server serves /metrics and /healthz.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr and returns a server ready to Serve. Binding happens
// here so that a port in use is a start-up error, not a silent failure.
func Listen(addr string, gather prometheus.Gatherer, health *Health, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorLog: slogAdapter{log}}))
	mux.Handle("/healthz", health)
	return &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then shuts down within a second.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("metrics server shutdown: %w", err)
	}
	return nil
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) {
	if a.log != nil {
		a.log.Error("metrics", "err", fmt.Sprint(v...))
	}
}
