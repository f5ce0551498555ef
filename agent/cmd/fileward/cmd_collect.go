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
	"syscall"
	"time"

	"github.com/fileward/fileward/agent/collect"
	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/telemetry"
	"github.com/fileward/fileward/sinks/elasticsearch"
)

// cmdCollect runs the central tier: Kafka consumer group → Elasticsearch,
// until ctx is cancelled (SIGINT/SIGTERM). Exit 0 on a clean stop, 2 on bad
// config, 1 when it cannot start.
func cmdCollect(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("collect", stdout, stderr)
	cfg, path, code, done := commandConfig(fs, args, stdout, stderr)
	if done {
		return code
	}
	seen := len(cfg.Warnings)
	if err := cfg.ValidateCollector(); err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return 2
	}
	printWarnings(stderr, cfg.Warnings[seen:])
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "collector")
	cc := cfg.Collector
	ec := cc.Elasticsearch

	startCtx, cancel := context.WithTimeout(ctx, ec.Timeout.D()+5*time.Second)
	sink, err := elasticsearch.New(startCtx, elasticsearch.Options{
		Addresses:          ec.Addresses,
		APIKey:             ec.APIKey.Value(),
		Username:           ec.Username,
		Password:           ec.Password.Value(),
		DataStream:         ec.DataStream,
		Streams:            dataStreams(cfg),
		SetupTemplate:      ec.SetupTemplate,
		CAFile:             ec.TLS.CAFile,
		CAFingerprint:      ec.TLS.CAFingerprint,
		VerificationMode:   ec.TLS.VerificationMode,
		InsecureSkipVerify: ec.TLS.InsecureSkipVerify,
		Timeout:            ec.Timeout.D(),
		Logger:             log,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "fileward collect: %v\n", err)
		return 1
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sink.Close(cctx)
	}()

	reg := telemetry.NewRegistry()
	health := &collect.Health{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// A logrotate-style SIGHUP must not kill the collector; it does not
	// reload, so it says what to do instead.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP: fileward collect does not reload its config; restart it to apply changes")
			case <-runCtx.Done():
				return
			}
		}
	}()
	metricsDone := make(chan error, 1)
	if cfg.Metrics.Listen != "" {
		h := &telemetry.Health{}
		h.Add("elasticsearch", health.Err)
		srv, err := telemetry.Listen(cfg.Metrics.Listen, reg, h, log)
		if err != nil {
			fmt.Fprintf(stderr, "fileward collect: %s\n", startFailure(err))
			return 1
		}
		log.Info("serving /metrics and /healthz", "addr", srv.Addr())
		go func() { metricsDone <- srv.Serve(runCtx) }()
	} else {
		metricsDone <- nil
	}

	dl := cc.DeadLetter
	if dl == "" {
		dl = filepath.Join(cfg.Agent.DataDir, "dead-letter", "collector.ndjson")
	}
	k := cc.Kafka
	err = collect.Run(runCtx, collect.Options{
		Brokers: k.Brokers,
		Topic:   k.Topic,
		GroupID: k.GroupID,
		TLS: collect.TLS{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile,
			KeyFile: k.TLS.KeyFile, InsecureSkipVerify: k.TLS.InsecureSkipVerify},
		SASL:        collect.SASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password.Value()},
		Sink:        sink,
		BatchEvents: cc.BatchEvents,
		Workers:     ec.Workers,
		BatchWait:   cc.BatchWait.D(),
		Backoff: collect.Backoff{Initial: cc.Backoff.Initial.D(), Max: cc.Backoff.Max.D(),
			Multiplier: cc.Backoff.Multiplier, Jitter: cc.Backoff.Jitter},
		DeadLetterPath: dl,
		Logger:         log,
		Registerer:     reg,
		Health:         health,
	})
	stop()
	if merr := <-metricsDone; merr != nil {
		log.Warn("metrics server", "err", merr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fileward collect: %v\n", err)
		return 1
	}
	return 0
}
