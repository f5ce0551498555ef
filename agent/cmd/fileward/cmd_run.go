package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/capture/ebpf"
	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/pipeline"
	"github.com/fileward/fileward/agent/procfs"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/agent/telemetry"
	"github.com/fileward/fileward/schema"
)

// cmdRun runs the agent until ctx is done (SIGINT/SIGTERM). Exit codes:
// 0 clean stop, 2 bad config, 1 a failure to start or a capture failure.
func cmdRun(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("run", stdout, stderr)
	logLevel := fs.String("log-level", "", "`LEVEL`: debug, info, warn or error (overrides log.level)")
	logFormat := fs.String("log-format", "", "`FORMAT`: text or json (overrides log.format)")
	// SIGHUP reloads the config; until the agent runs, it waits here
	// instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Never the built-in defaults silently: they watch / and spool in the
	// current directory (commandConfig insists on a config file).
	cfg, path, code, done := commandConfig(fs, args, stdout, stderr)
	if done {
		return code
	}
	log, err := newLogger(cfg.Log, *logLevel, *logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fileward: %v\n", err)
		return 2
	}
	applyMemoryLimit(cfg.Agent.MemoryLimit, os.Getenv("GOMEMLIMIT"), log)
	a, err := newAgent(ctx, cfg, log, stderr)
	if err == nil {
		a.cfgPath = path
		fmt.Fprintf(stderr, "  config: %s\n", path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fileward: cannot start: %s%s\n", startFailure(err), versionHint(err))
		return 1
	}
	if err := a.run(ctx, hup); err != nil {
		fmt.Fprintf(stderr, "fileward: %v\n", err)
		return 1
	}
	return 0
}

// applyMemoryLimit sets the Go runtime's soft memory limit to
// agent.memory_limit, unless the GOMEMLIMIT environment variable (env) is
// set: the runtime has applied that one already, and it wins. It returns
// the limit in force (math.MaxInt64: none).
func applyMemoryLimit(limit config.Size, env string, log *slog.Logger) int64 {
	if env != "" {
		cur := debug.SetMemoryLimit(-1)
		if limit > 0 {
			log.Info("GOMEMLIMIT is set: it replaces agent.memory_limit", "GOMEMLIMIT", env, "agent.memory_limit", limit.String())
		}
		return cur
	}
	if limit <= 0 {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(int64(limit))
	return int64(limit)
}

// newLogger is the agent's logger: log.level and log.format from the
// config, each overridden by its flag when that is set.
func newLogger(lc config.Log, levelFlag, formatFlag string, w io.Writer) (*slog.Logger, error) {
	lv, format := lc.Level, lc.Format
	if levelFlag != "" {
		lv = levelFlag
	}
	if formatFlag != "" {
		format = formatFlag
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(lv)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", lv)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// agent is the running graph: source → ring → pipeline → spool → shippers.
type agent struct {
	cfg      *config.Config
	log      *slog.Logger
	dataDir  string
	source   capture.Source
	ring     *capture.Ring
	drops    *capture.Drops
	returned *capture.Drops // loss counts whose report was dropped unread: reported again
	pipe     *pipeline.Pipeline
	spool    *spool.Spool
	sinkRuns []*sinkRun // in config order
	procs    *procfs.Cache
	metrics  *telemetry.Server
	describe string
	demo     bool // replaying the bundled demo stream because capture is not possible
	lock     *dataDirLock

	cfgPath string // the config file, for reloads ("" = built-in defaults)
	health  *telemetry.Health
	gather  *gatherer    // the base registry plus one per sink
	ships   shipperGroup // the running shippers
}

// newAgent builds the graph. Every error it returns is a failure to start
// (exit 1); startFailure turns it into one line with the cause and the fix.
// Whatever was opened before the failure is closed again.
func newAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer) (_ *agent, err error) {
	dataDir, err := filepath.Abs(cfg.Agent.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent.data_dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent.data_dir %s: %w", dataDir, err)
	}
	// a is not the named result: a failed start returns nil and still closes
	// what a holds.
	a := &agent{cfg: cfg, log: log, dataDir: dataDir, drops: &capture.Drops{}, returned: &capture.Drops{}}
	defer func() {
		if err != nil {
			a.closeAll(context.Background())
		}
	}()
	if a.lock, err = lockDataDir(dataDir); err != nil {
		return nil, err
	}
	meta, err := hostMeta(cfg.Agent.HostID, cfg.Agent.Name, dataDir)
	if err != nil {
		return nil, fmt.Errorf("agent.data_dir %s: %w", dataDir, err)
	}
	if hr := cfg.Source.Fanotify.HostRoot; hr != "" {
		fillHostOS(&meta, hr)
	}
	meta.Namespace = cfg.Agent.DataStream.Namespace
	meta.DefendCompatible = cfg.Agent.DataStream.Mode == "defend_compatible"
	reg := telemetry.NewRegistry()
	if err := reg.Register(buildInfo()); err != nil {
		return nil, err
	}
	a.health = &telemetry.Health{}
	a.gather = &gatherer{base: reg}

	a.source, err = a.pickSource(stderr)
	if err != nil {
		return nil, err
	}
	a.ring = capture.NewRingBytes(cfg.Queue.Capacity, int64(cfg.Queue.MaxBytes), a.drops)
	if err := telemetry.RegisterCapture(reg, a.source.Name(), a.ring, a.drops); err != nil {
		return nil, err
	}

	sp := cfg.Spool
	a.spool, err = spool.Open(ctx, spool.Options{
		Dir: filepath.Join(dataDir, "spool"), MaxBytes: int64(sp.MaxBytes), SegmentBytes: int64(sp.SegmentBytes),
		WhenFull: sp.WhenFull, Fsync: sp.Fsync, FsyncInterval: sp.FsyncInterval.D(), Compression: sp.Compression,
		Logger: log.With("component", "spool"), Registerer: reg,
		OnDrop:    func(n uint64) { a.drops.Add(schema.LossSpoolFull, n) },
		OnCorrupt: func(n uint64) { a.drops.Add(schema.LossCorrupt, n) },
		OnReportDropped: func(c spool.LossCounts) {
			for name, n := range c {
				if r, ok := schema.ParseLossReason(name); ok {
					a.returned.Add(r, n)
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", filepath.Join(dataDir, "spool"), err)
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
		sr, err := a.newSinkRun(ctx, cfg, &cfg.Sinks[i])
		if err != nil {
			return nil, err
		}
		a.sinkRuns = append(a.sinkRuns, sr)
		dests = append(dests, sr.name+" → "+sr.desc)
	}

	if a.demo && len(cfg.Filters.IncludePaths) > 0 {
		fmt.Fprintln(stderr, "fileward: filters.include_paths does not apply to the demo stream")
	}
	po := pipeline.Options{
		Ring: a.ring, Drops: a.drops, Returned: a.returned, Encoder: schema.NewEncoder(meta), Output: a.spool,
		Rules:           a.rules(cfg),
		AggregateWindow: cfg.Filters.AggregateWindow.D(),
		BatchEvents:     cfg.Batch.MaxEvents, BatchBytes: int(cfg.Batch.MaxBytes), BatchWait: cfg.Batch.MaxWait.D(),
		Heartbeat: cfg.Agent.Heartbeat.D(),
		Stats: func(h *schema.Heartbeat) {
			h.SpoolBytes = a.spool.Bytes()
		},
		Logger: log.With("component", "pipeline"), Registerer: reg,
	}
	if e, ok := a.source.(interface{ Enrich(*schema.Event) bool }); ok && a.source.Name() == "ebpf" {
		// The kernel gives every process field but the executable of a
		// process whose exec it did not see (one older than the agent).
		po.Enrich = e.Enrich
	}
	if a.source.Name() == "ebpf" && cfg.Filters.AggregateWindow.D() > 0 {
		// The kernel counts repeats of these exactly in the same window
		// (agent/capture/ebpf): the pipeline does not hold them again.
		po.SourceAggregated = []schema.Action{schema.ActionOpen, schema.ActionClose, schema.ActionModification}
		// What is left to hold (creations, deletions, renames… repeated
		// on one path by one process within a window) is rare: a
		// sixteenth of the default bound keeps a burst of distinct paths
		// from holding 65,536 whole events (36 MiB, twice that in RSS).
		po.AggregateMax = 4096
	}
	if a.source.Name() == "fanotify" {
		a.procs = procfs.New(procfs.Options{Args: cfg.Source.Fanotify.ProcessArgs, HostID: meta.HostID, HostRoot: cfg.Source.Fanotify.HostRoot, Logger: log})
		po.Enrich = a.procs.Enrich
	}
	a.pipe, err = pipeline.New(po)
	if err != nil {
		return nil, err
	}
	a.health.Add("capture", captureCheck(a.drops, time.Now, 30*time.Second))

	metricsAt := "metrics disabled"
	if cfg.Metrics.Listen != "" {
		a.metrics, err = telemetry.Listen(cfg.Metrics.Listen, a.gather, a.health, log)
		if err != nil {
			return nil, err
		}
		metricsAt = "metrics on http://" + a.metrics.Addr() + "/metrics (health: /healthz)"
	}
	fmt.Fprintf(stderr, "fileward %s: capturing with %s\n  events go to: %s\n  spool: %s (max %s)\n  %s\n",
		version, a.describe, strings.Join(dests, "; "), filepath.Join(dataDir, "spool"), sp.MaxBytes, metricsAt)
	return a, nil
}

// refuseEBPFEnv, set to 1, makes the eBPF source hand the kernel a program
// its verifier refuses, so that source.type auto's fallback to fanotify can
// be tested on a machine where eBPF works (docs/linux.md).
const refuseEBPFEnv = "FILEWARD_TEST_REFUSE_EBPF"

func (a *agent) pickSource(stderr io.Writer) (capture.Source, error) {
	var adjust func(*ebpf.Options)
	if os.Getenv(refuseEBPFEnv) == "1" {
		// Tests of the fallback: the kernel refuses the BPF programs for real.
		adjust = func(o *ebpf.Options) { o.InjectLoadFailure = true }
	}
	p, err := buildSource(a.cfg, a.dataDir, a.log, func(msg string) { fmt.Fprintln(stderr, msg) }, adjust)
	if err != nil {
		return nil, err
	}
	a.describe, a.demo = p.desc, p.demo
	return p.src, nil
}

// rules are the pipeline's filter rules of cfg.
func (a *agent) rules(cfg *config.Config) pipeline.Rules {
	include := cfg.Filters.IncludePaths
	if a.demo {
		// The demo is a recording from a Mac: the include rules written for
		// live capture on this machine would drop all of it.
		include = nil
	}
	return pipeline.Rules{
		ExcludePaths: cfg.Filters.ExcludePaths, IncludePaths: include,
		ExcludeExecutables: cfg.Filters.ExcludeExecutables, ExcludeSigningIDs: cfg.Filters.ExcludeSigningIDs,
		MutePIDs: []int32{int32(os.Getpid())}, MutePaths: []string{a.dataDir},
	}
}

// run starts every goroutine and, when ctx is done (or the source fails),
// shuts down in order: stop capture, drain the pipeline into the spool, fsync,
// give the shippers shutdown_timeout to deliver, then leave the rest spooled.
// Each value on hup (SIGHUP) reloads the config.
func (a *agent) run(ctx context.Context, hup <-chan os.Signal) error {
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
	a.ships.ctx = shipCtx
	for _, sr := range a.sinkRuns {
		a.ships.start(sr, a.log)
	}
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- a.pipe.Run(pipeCtx) }()
	srcDone := make(chan error, 1)
	go func() { srcDone <- a.source.Run(srcCtx, a.ring, a.drops) }()

	var runErr error
loop:
	for {
		select {
		case <-hup:
			a.reload(ctx)
		case <-ctx.Done():
			a.log.Info("stopping: signal received")
			stopSrc()
			if srcDone != nil {
				if err := <-srcDone; err != nil && !errors.Is(err, context.Canceled) {
					a.log.Warn("capture source stopped with an error", "err", err)
				}
			}
			break loop
		case err := <-srcDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				runErr = fmt.Errorf("capture: %w", err)
				a.log.Error("capture failed; shutting down", "err", err)
				break loop
			}
			// A finite replay ended: keep shipping (and reloading) until
			// told to stop.
			a.log.Info("capture source finished; the agent keeps shipping until stopped")
			srcDone = nil
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
	for _, sr := range a.sinkRuns {
		sr.sh.Drain()
	}
	drained := make(chan struct{})
	go func() { a.ships.wg.Wait(); close(drained) }()
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
	for _, sr := range a.sinkRuns {
		if err := sr.sink.Close(ctx); err != nil {
			a.log.Warn("closing sink", "sink", sr.name, "err", err)
		}
	}
	a.sinkRuns = nil
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
	if c, ok := a.source.(interface{ Close() error }); ok {
		c.Close()
	}
	a.lock.release()
	a.lock = nil
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

// sinkWorkers is how many Sends a sink may have in flight: the
// Elasticsearch sink's elasticsearch.workers, one for the others (Kafka and
// the file keep their order).
func sinkWorkers(sc *config.Sink) int {
	if sc.Type == "elasticsearch" && sc.Elasticsearch != nil {
		return sc.Elasticsearch.Workers
	}
	return 1
}
