package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// sinkRun is one configured sink with its shipper.
type sinkRun struct {
	name   string
	cfg    config.Sink // as configured, to tell a changed sink on reload
	desc   string      // for the start-up line
	sink   sinks.Sink
	sh     *ship.Shipper
	reg    *prometheus.Registry // the shipper's metrics, dropped with it
	cancel context.CancelFunc   // set by shipperGroup.start
	done   chan struct{}        // closed when the shipper's Run returned
}

// newSinkRun builds a sink and its shipper; nothing runs yet.
func (a *agent) newSinkRun(ctx context.Context, cfg *config.Config, sc *config.Sink) (*sinkRun, error) {
	k, desc, err := buildSink(ctx, cfg, sc, a.log)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	reg := prometheus.NewRegistry()
	sh, err := ship.New(ship.Options{
		Name: sc.Name, Sink: k, Spool: a.spool, Backoff: shipBackoff(sc.Backoff),
		DeadLetterDir:      filepath.Join(a.dataDir, "dead-letter"),
		DeadLetterMaxBytes: int64(cfg.DeadLetter.MaxBytes), DeadLetterKeep: cfg.DeadLetter.Keep,
		Workers: sinkWorkers(sc),
		Logger:  a.log, Registerer: reg, // ship adds the sink attribute
		OnRejected: func(n uint64) { a.drops.Add(schema.LossRejected, n) },
	})
	if err != nil {
		k.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	a.gather.add(reg)
	a.health.Add("sink/"+sc.Name, func() error {
		if !sh.Healthy() {
			return errors.New("delivery failing, backing off")
		}
		return nil
	})
	return &sinkRun{name: sc.Name, cfg: *sc, desc: desc, sink: k, sh: sh, reg: reg, done: make(chan struct{})}, nil
}

// shipperGroup runs the shippers, each with its own cancel.
type shipperGroup struct {
	ctx context.Context // parent of every shipper's context
	wg  sync.WaitGroup
}

func (g *shipperGroup) start(sr *sinkRun, log *slog.Logger) {
	ctx, cancel := context.WithCancel(g.ctx)
	sr.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(sr.done)
		if err := sr.sh.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("shipper stopped", "sink", sr.name, "err", err)
		}
	}()
}

// stopSinkRun stops a running shipper (its cursor stays on disk at the last
// acknowledged record) and closes its sink.
func (a *agent) stopSinkRun(sr *sinkRun) {
	if sr.cancel != nil {
		sr.cancel()
		<-sr.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sr.sink.Close(ctx); err != nil {
		a.log.Warn("closing sink", "sink", sr.name, "err", err)
	}
	a.gather.remove(sr.reg)
	a.health.Remove("sink/" + sr.name)
}

// gatherer is the agent's /metrics: the base registry plus one registry per
// running sink, so that a sink removed or changed by a reload takes its
// series with it and its successor can register them again.
type gatherer struct {
	base prometheus.Gatherer
	mu   sync.Mutex
	regs []*prometheus.Registry
}

func (g *gatherer) add(r *prometheus.Registry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.regs = append(g.regs, r)
}

func (g *gatherer) remove(r *prometheus.Registry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.regs = slices.DeleteFunc(g.regs, func(x *prometheus.Registry) bool { return x == r })
}

// Gather implements prometheus.Gatherer.
func (g *gatherer) Gather() ([]*dto.MetricFamily, error) {
	g.mu.Lock()
	gs := prometheus.Gatherers{g.base}
	for _, r := range g.regs {
		gs = append(gs, r)
	}
	g.mu.Unlock()
	return gs.Gather()
}

// restartSections are the parts of the config a reload cannot apply to a
// running agent: they shape the capture source, the ring, the spool, the
// pipeline's batches, the log or the agent's identity. Filters, sinks and
// agent.shutdown_timeout reload.
var restartSections = []struct {
	key string
	get func(c *config.Config) any
}{
	{"agent.data_dir", func(c *config.Config) any { return c.Agent.DataDir }},
	{"agent.name", func(c *config.Config) any { return c.Agent.Name }},
	{"agent.host_id", func(c *config.Config) any { return c.Agent.HostID }},
	{"agent.heartbeat", func(c *config.Config) any { return c.Agent.Heartbeat }},
	{"agent.memory_limit", func(c *config.Config) any { return c.Agent.MemoryLimit }},
	{"source", func(c *config.Config) any { return c.Source }},
	{"queue", func(c *config.Config) any { return c.Queue }},
	{"batch", func(c *config.Config) any { return c.Batch }},
	{"spool", func(c *config.Config) any { return c.Spool }},
	{"metrics", func(c *config.Config) any { return c.Metrics }},
	{"log", func(c *config.Config) any { return c.Log }},
}

// restartNeeded lists the keys, as written in the file, whose value differs
// between the running config and next and that need a restart.
func restartNeeded(running, next *config.Config) []string {
	var keys []string
	for _, s := range restartSections {
		keys = append(keys, diffKeys(s.key, reflect.ValueOf(s.get(running)), reflect.ValueOf(s.get(next)))...)
	}
	return keys
}

// diffKeys walks two values of one config struct type and names the leaf
// keys (by their yaml tags) that differ.
func diffKeys(path string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{path}
	}
	var out []string
	for i := 0; i < a.NumField(); i++ {
		tag := strings.Split(a.Type().Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		out = append(out, diffKeys(path+"."+tag, a.Field(i), b.Field(i))...)
	}
	return out
}

// reload re-reads the config file (SIGHUP). An invalid file is logged error
// by error and changes nothing. A valid one applies its filters, aggregation
// window, sinks and shutdown_timeout; a key that needs a restart is logged
// and keeps its running value, so nothing is half-applied. Kept sinks keep
// their cursors; a removed sink's cursor stays on disk.
func (a *agent) reload(ctx context.Context) {
	if a.cfgPath == "" {
		a.log.Warn("SIGHUP: the agent runs on its built-in defaults (no -c, no config file found); nothing to reload")
		return
	}
	a.log.Info("SIGHUP: reloading the config", "file", a.cfgPath)
	next, err := config.Load(a.cfgPath)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				a.log.Error("reload rejected, the agent keeps its running config: " + e.Error())
			}
		} else {
			a.log.Error("reload rejected, the agent keeps its running config: " + err.Error())
		}
		return
	}
	for _, k := range restartNeeded(a.cfg, next) {
		a.log.Warn("restart needed for " + k + ": it keeps its running value until fileward restarts")
	}
	// The keys that need a restart keep their running values.
	next.Agent.DataDir, next.Agent.Name, next.Agent.HostID, next.Agent.Heartbeat =
		a.cfg.Agent.DataDir, a.cfg.Agent.Name, a.cfg.Agent.HostID, a.cfg.Agent.Heartbeat
	next.Source, next.Queue, next.Batch, next.Spool, next.Metrics, next.Log = a.cfg.Source, a.cfg.Queue, a.cfg.Batch, a.cfg.Spool, a.cfg.Metrics, a.cfg.Log

	// Build the new and changed sinks first: if one cannot be built, the
	// reload changes nothing.
	running := map[string]*sinkRun{}
	for _, sr := range a.sinkRuns {
		running[sr.name] = sr
	}
	var keep, fresh []*sinkRun
	var order []*sinkRun
	for i := range next.Sinks {
		sc := &next.Sinks[i]
		if sr, ok := running[sc.Name]; ok && reflect.DeepEqual(sr.cfg, *sc) {
			keep = append(keep, sr)
			order = append(order, sr)
			continue
		}
		sr, err := a.newSinkRun(ctx, next, sc)
		if err != nil {
			for _, f := range fresh {
				a.stopSinkRun(f)
			}
			a.log.Error("reload rejected, the agent keeps its running config: " + err.Error())
			return
		}
		fresh = append(fresh, sr)
		order = append(order, sr)
	}

	// Filters and aggregation: applied between two events.
	applied := a.pipe.Reconfigure(a.rules(next), next.Filters.AggregateWindow.D())

	// Stop the removed and changed sinks, then start the new ones: a changed
	// sink's successor resumes from its cursor.
	for _, sr := range a.sinkRuns {
		if !slices.Contains(keep, sr) {
			verb := "removed"
			if slices.ContainsFunc(fresh, func(f *sinkRun) bool { return f.name == sr.name }) {
				verb = "changed"
			}
			a.stopSinkRun(sr)
			if verb == "removed" {
				a.log.Info("sink removed; its spool cursor stays on disk (fileward spool prune removes it)", "sink", sr.name)
			} else {
				a.log.Info("sink changed; it resumes from its cursor", "sink", sr.name)
			}
		}
	}
	for _, sr := range fresh {
		a.ships.start(sr, a.log)
		if _, ok := running[sr.name]; !ok {
			a.log.Info("sink added", "sink", sr.name, "to", sr.desc)
		}
	}
	a.sinkRuns = order
	a.cfg = next
	select {
	case <-applied:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		a.log.Warn("the pipeline has not applied the new filters within 5s; it will at its next event")
	}
	a.log.Info("config reloaded", "file", a.cfgPath, "sinks", len(order))
}
