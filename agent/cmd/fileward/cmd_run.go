package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/pipeline"
	"github.com/fileward/fileward/agent/procfs"
	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/agent/telemetry"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// cmdRun runs the agent until ctx is done (SIGINT/SIGTERM). Exit codes:
// 0 clean stop, 2 bad config, 1 a failure to start or a capture failure.
func cmdRun(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file (default: the built-in defaults of CONTRACT.md)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg *config.Config
	if *path == "" {
		d := config.Default()
		if err := d.Validate(); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg = &d
	} else {
		var code int
		if cfg, code = loadConfig(*path, stderr); code != 0 {
			return code
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "run: -log-level %q: %v\n", *logLevel, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := newAgent(ctx, cfg, log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fileward: %v%s\n", err, versionHint(err))
		return 1
	}
	if err := a.run(ctx); err != nil {
		fmt.Fprintf(stderr, "fileward: %v\n", err)
		return 1
	}
	return 0
}

// agent is the running graph: source → ring → pipeline → spool → shippers.
type agent struct {
	cfg      *config.Config
	log      *slog.Logger
	dataDir  string
	source   capture.Source
	ring     *capture.Ring
	drops    *capture.Drops
	pipe     *pipeline.Pipeline
	spool    *spool.Spool
	shippers []*ship.Shipper
	sinks    []sinks.Sink
	procs    *procfs.Cache
	metrics  *telemetry.Server
	describe string
	demo     bool // replaying the bundled demo stream because capture is not possible
}

func newAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer) (a *agent, err error) {
	dataDir, err := filepath.Abs(cfg.Agent.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent.data_dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("agent.data_dir %s: %w (create it, or point agent.data_dir somewhere writable)", dataDir, err)
	}
	a = &agent{cfg: cfg, log: log, dataDir: dataDir, drops: &capture.Drops{}}
	// Every error return below sets a to nil: close through a copy.
	built := a
	defer func() {
		if err != nil {
			built.closeAll(context.Background())
		}
	}()
	meta, err := hostMeta(cfg.Agent.HostID, cfg.Agent.Name, dataDir)
	if err != nil {
		return nil, err
	}
	reg := telemetry.NewRegistry()
	var health telemetry.Health

	a.source, err = a.pickSource(stderr)
	if err != nil {
		return nil, err
	}
	a.ring = capture.NewRing(cfg.Queue.Capacity, a.drops)
	if err := telemetry.RegisterCapture(reg, a.source.Name(), a.ring, a.drops); err != nil {
		return nil, err
	}

	sp := cfg.Spool
	a.spool, err = spool.Open(ctx, spool.Options{
		Dir: filepath.Join(dataDir, "spool"), MaxBytes: int64(sp.MaxBytes), SegmentBytes: int64(sp.SegmentBytes),
		WhenFull: sp.WhenFull, Fsync: sp.Fsync, FsyncInterval: sp.FsyncInterval.D(),
		Logger: log.With("component", "spool"), Registerer: reg,
		OnDrop: func(n uint64) { a.drops.Add(schema.LossSpoolFull, n) },
	})
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fileward_spool_max_bytes", Help: "spool.max_bytes: the bound fileward_spool_bytes stays under (plus one segment).",
	}, func() float64 { return float64(sp.MaxBytes) })); err != nil {
		return nil, err
	}
	// Sinks removed from the config must not pin the spool.
	var names []string
	for _, s := range cfg.Sinks {
		names = append(names, s.Name)
	}
	for _, c := range a.spool.Cursors() {
		if !slices.Contains(names, c) {
			log.Info("removing the spool cursor of a sink that is no longer configured", "sink", c)
			if err := a.spool.RemoveCursor(c); err != nil {
				return nil, fmt.Errorf("remove cursor %s: %w", c, err)
			}
		}
	}

	var dests []string
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		k, desc, err := buildSink(ctx, cfg, sc, log)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		a.sinks = append(a.sinks, k)
		sh, err := ship.New(ship.Options{
			Name: sc.Name, Sink: k, Spool: a.spool, Backoff: shipBackoff(sc.Backoff),
			DeadLetterDir: filepath.Join(dataDir, "dead-letter"),
			Logger:        log, Registerer: reg, // ship adds the sink attribute
			OnRejected: func(n uint64) { a.drops.Add(schema.LossRejected, n) },
		})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		a.shippers = append(a.shippers, sh)
		health.Add("sink/"+sc.Name, func() error {
			if !sh.Healthy() {
				return errors.New("delivery failing, backing off")
			}
			return nil
		})
		dests = append(dests, sc.Name+" → "+desc)
	}

	include := cfg.Filters.IncludePaths
	if a.demo && len(include) > 0 {
		// The demo is a recording from a Mac: the include rules written for
		// live capture on this machine would drop all of it.
		fmt.Fprintln(stderr, "fileward: filters.include_paths does not apply to the demo stream")
		include = nil
	}
	po := pipeline.Options{
		Ring: a.ring, Drops: a.drops, Encoder: schema.NewEncoder(meta), Output: a.spool,
		Rules: pipeline.Rules{
			ExcludePaths: cfg.Filters.ExcludePaths, IncludePaths: include,
			ExcludeExecutables: cfg.Filters.ExcludeExecutables, ExcludeSigningIDs: cfg.Filters.ExcludeSigningIDs,
			MutePIDs: []int32{int32(os.Getpid())}, MutePaths: []string{dataDir},
		},
		AggregateWindow: cfg.Filters.AggregateWindow.D(),
		BatchEvents:     cfg.Batch.MaxEvents, BatchBytes: int(cfg.Batch.MaxBytes), BatchWait: cfg.Batch.MaxWait.D(),
		Heartbeat: cfg.Agent.Heartbeat.D(),
		Stats: func(h *schema.Heartbeat) {
			h.SpoolBytes = a.spool.Bytes()
		},
		Logger: log.With("component", "pipeline"), Registerer: reg,
	}
	if a.source.Name() == "fanotify" {
		a.procs = procfs.New(procfs.Options{Args: cfg.Source.Fanotify.ProcessArgs, HostID: meta.HostID, Logger: log})
		po.Enrich = a.procs.Enrich
	}
	a.pipe, err = pipeline.New(po)
	if err != nil {
		return nil, err
	}
	health.Add("capture", captureCheck(a.drops, time.Now, 30*time.Second))

	metricsAt := "metrics disabled"
	if cfg.Metrics.Listen != "" {
		a.metrics, err = telemetry.Listen(cfg.Metrics.Listen, reg, &health, log)
		if err != nil {
			return nil, err
		}
		metricsAt = "metrics on http://" + a.metrics.Addr() + "/metrics (health: /healthz)"
	}
	fmt.Fprintf(stderr, "fileward %s: capturing with %s\n  events go to: %s\n  spool: %s (max %s)\n  %s\n",
		version, a.describe, strings.Join(dests, "; "), filepath.Join(dataDir, "spool"), sp.MaxBytes, metricsAt)
	return a, nil
}

func (a *agent) pickSource(stderr io.Writer) (capture.Source, error) {
	p, err := buildSource(a.cfg, a.dataDir, a.log, func(msg string) { fmt.Fprintln(stderr, msg) })
	if err != nil {
		return nil, err
	}
	a.describe, a.demo = p.desc, p.demo
	return p.src, nil
}

// run starts every goroutine and, when ctx is done (or the source fails),
// shuts down in order: stop capture, drain the pipeline into the spool, fsync,
// give the shippers shutdown_timeout to deliver, then leave the rest spooled.
func (a *agent) run(ctx context.Context) error {
	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	defer stopShip()
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()

	if a.metrics != nil {
		go func() {
			if err := a.metrics.Serve(metricsCtx); err != nil {
				a.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	var shipWG sync.WaitGroup
	for _, sh := range a.shippers {
		shipWG.Add(1)
		go func() {
			defer shipWG.Done()
			if err := sh.Run(shipCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("shipper stopped", "err", err)
			}
		}()
	}
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- a.pipe.Run(pipeCtx) }()
	srcDone := make(chan error, 1)
	go func() { srcDone <- a.source.Run(srcCtx, a.ring, a.drops) }()

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("stopping: signal received")
		stopSrc()
		if err := <-srcDone; err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("capture source stopped with an error", "err", err)
		}
	case err := <-srcDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("capture: %w", err)
			a.log.Error("capture failed; shutting down", "err", err)
		} else {
			// A finite replay ended: keep shipping until told to stop.
			a.log.Info("capture source finished; the agent keeps shipping until stopped")
			<-ctx.Done()
			a.log.Info("stopping: signal received")
		}
	}

	// The source has stopped: the pipeline drains the ring into the spool.
	stopPipe()
	if err := <-pipeDone; err != nil {
		a.log.Error("pipeline", "err", err)
	}
	if err := a.spool.Sync(); err != nil {
		a.log.Error("spool fsync at shutdown", "err", err)
	}
	// Give the shippers shutdown_timeout to deliver what is spooled.
	for _, sh := range a.shippers {
		sh.Drain()
	}
	drained := make(chan struct{})
	go func() { shipWG.Wait(); close(drained) }()
	timeout := a.cfg.Agent.ShutdownTimeout.D()
	select {
	case <-drained:
	case <-time.After(timeout):
		a.log.Warn("shutdown_timeout reached; the rest stays in the spool for the next start", "timeout", timeout)
		stopShip()
		<-drained
	}
	stopShip()
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.closeAll(closeCtx)
	stopMetrics()
	a.log.Info("stopped")
	return runErr
}

func (a *agent) closeAll(ctx context.Context) {
	for _, k := range a.sinks {
		if err := k.Close(ctx); err != nil {
			a.log.Warn("closing sink", "err", err)
		}
	}
	a.sinks = nil
	if a.spool != nil {
		if err := a.spool.Close(); err != nil {
			a.log.Error("closing spool", "err", err)
		}
		a.spool = nil
	}
	if a.procs != nil {
		a.procs.Close()
		a.procs = nil
	}
}

// captureCheck reports capture as degraded while it is losing events: when a
// capture-side loss counter (ring_full, kernel_overflow, seq_gap,
// source_restart) moved within the last window.
func captureCheck(drops *capture.Drops, now func() time.Time, window time.Duration) telemetry.Check {
	var mu sync.Mutex
	var last uint64
	var movedAt time.Time
	reasons := []schema.LossReason{schema.LossRingFull, schema.LossKernelOverflow, schema.LossSeqGap, schema.LossSourceRestart}
	return func() error {
		var total uint64
		for _, r := range reasons {
			total += drops.Load(r)
		}
		mu.Lock()
		defer mu.Unlock()
		t := now()
		if total != last {
			last, movedAt = total, t
		}
		if !movedAt.IsZero() && t.Sub(movedAt) < window {
			return fmt.Errorf("losing events (ring_full, kernel_overflow, seq_gap or source_restart rose within %s)", window)
		}
		return nil
	}
}
