package main

import (
	"context"
	"fmt"
	"github.com/fileward/fileward/schema"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/capture/ebpf"
	"github.com/fileward/fileward/agent/capture/eslogger"
	"github.com/fileward/fileward/agent/capture/fanotify"
	"github.com/fileward/fileward/agent/capture/replay"
	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/internal/redact"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch"
	"github.com/fileward/fileward/sinks/file"
	"github.com/fileward/fileward/sinks/kafka"

	_ "embed"
)

// demoStream is the bundled eslogger recording that `fileward run` replays
// when it cannot capture on this machine.
//
//go:embed demo/eslogger-demo.ndjson
var demoStream []byte

// demoRate is the replay rate of the fallback demo: modest, so `make run`
// never floods a laptop.
const demoRate = 20

// pickedSource is buildSource's choice.
type pickedSource struct {
	src  capture.Source
	desc string // for the start-up line
	demo bool   // the bundled demo stream, because capture is not possible here
}

// buildSource picks the capture source. With source.type auto it captures
// for real where it can (eslogger on macOS; on Linux as root eBPF, or
// fanotify when the kernel cannot run fileward's BPF programs, saying why)
// and otherwise falls back to replaying the bundled demo stream in a loop,
// saying so on stderr. ebpfOpts, when not nil, adjusts the eBPF options
// (tests inject a refused load with it).
func buildSource(cfg *config.Config, dataDir string, log *slog.Logger, stderr func(string), ebpfOpts func(*ebpf.Options)) (pickedSource, error) {
	src := &cfg.Source
	typ := src.Type
	if typ == "auto" {
		switch runtime.GOOS {
		case "darwin":
			typ = "eslogger"
		case "linux":
			s, err := newEBPF(cfg, dataDir, log, ebpfOpts)
			if err == nil {
				return pickedSource{src: s, desc: "ebpf (source.type auto)"}, nil
			}
			stderr(fmt.Sprintf("fileward: source.type auto: eBPF capture is not available here (%v); using fanotify instead", err))
			log.Warn("eBPF capture not available; falling back to fanotify", "reason", err)
			s, err = newFanotify(cfg, dataDir, log)
			if err == nil {
				return pickedSource{src: s, desc: "fanotify on " + fmt.Sprint(src.Fanotify.Marks)}, nil
			}
			stderr(fmt.Sprintf("fileward: cannot capture with fanotify here (%v); replaying the bundled demo stream instead", err))
			return demoSource(dataDir, log)
		default:
			stderr("fileward: no capture source for " + runtime.GOOS + "; replaying the bundled demo stream instead")
			return demoSource(dataDir, log)
		}
	}
	switch typ {
	case "ebpf":
		s, err := newEBPF(cfg, dataDir, log, ebpfOpts)
		if err != nil {
			return pickedSource{}, err
		}
		return pickedSource{src: s, desc: "ebpf"}, nil
	case "fanotify":
		s, err := newFanotify(cfg, dataDir, log)
		if err != nil {
			return pickedSource{}, err
		}
		return pickedSource{src: s, desc: "fanotify on " + fmt.Sprint(src.Fanotify.Marks)}, nil
	case "eslogger":
		s, err := eslogger.New(eslogger.Options{
			Path:      src.Eslogger.Path,
			Args:      src.Eslogger.Args,
			Events:    src.Events,
			Select:    src.Eslogger.Select,
			SelfPID:   os.Getpid(),
			MutePaths: []string{dataDir},
			MaxLine:   int(src.MaxLineBytes),
			// user.name and group.name through Directory Services,
			// learnt in the background (agent/usercache). Only on macOS:
			// elsewhere eslogger is a stand-in replaying a Mac's output,
			// whose ids this machine's accounts do not name.
			ResolveNames: runtime.GOOS == "darwin",
			Logger:       log,
		})
		if err != nil {
			return pickedSource{}, err
		}
		return pickedSource{src: s, desc: "eslogger (" + src.Eslogger.Path + ")"}, nil
	case "replay":
		s, err := replay.New(replay.Options{Path: src.Replay.Path, Format: src.Replay.Format, Rate: src.Replay.Rate, Loop: src.Replay.Loop,
			DropWhenFull: src.Replay.DropWhenFull, MaxLine: int(src.MaxLineBytes), Logger: log})
		if err != nil {
			return pickedSource{}, fmt.Errorf("source.replay.path: %w", err)
		}
		return pickedSource{src: s, desc: "replay of " + src.Replay.Path}, nil
	}
	return pickedSource{}, fmt.Errorf("source.type %q is not supported", typ)
}

// ownPaths are the agent's own paths: its data dir and the directories of
// its file sinks.
func ownPaths(cfg *config.Config, dataDir string) []string {
	ignore := []string{dataDir}
	for _, s := range cfg.Sinks {
		if s.File != nil {
			if p, err := filepath.Abs(s.File.Path); err == nil {
				ignore = append(ignore, filepath.Dir(p))
			}
		}
	}
	return ignore
}

func newEBPF(cfg *config.Config, dataDir string, log *slog.Logger, adjust func(*ebpf.Options)) (capture.Source, error) {
	o := ebpf.Options{
		Events:          cfg.Source.Events,
		IgnorePaths:     ownPaths(cfg, dataDir),
		ExcludePaths:    cfg.Filters.ExcludePaths,
		HostRoot:        cfg.Source.Fanotify.HostRoot,
		SelfPID:         os.Getpid(),
		AggregateWindow: cfg.Filters.AggregateWindow.D(),
		Logger:          log,
	}
	if adjust != nil {
		adjust(&o)
	}
	s, err := ebpf.New(o)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newFanotify(cfg *config.Config, dataDir string, log *slog.Logger) (capture.Source, error) {
	ignore := ownPaths(cfg, dataDir)
	return fanotify.New(fanotify.Options{
		Marks:       cfg.Source.Fanotify.Marks,
		MarkType:    cfg.Source.Fanotify.MarkType,
		Events:      cfg.Source.Events,
		Queue:       cfg.Source.Fanotify.Queue,
		IgnorePaths: ignore,
		HostRoot:    cfg.Source.Fanotify.HostRoot,
		SelfPID:     os.Getpid(),
		Logger:      log,
	})
}

// demoSource writes the bundled recording into the data dir and replays it.
func demoSource(dataDir string, log *slog.Logger) (pickedSource, error) {
	p := filepath.Join(dataDir, "state", "demo-eslogger.ndjson")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return pickedSource{}, fmt.Errorf("demo stream: %w", err)
	}
	if err := os.WriteFile(p, demoStream, 0o600); err != nil {
		return pickedSource{}, fmt.Errorf("demo stream: %w", err)
	}
	s, err := replay.New(replay.Options{Path: p, Format: "eslogger", Rate: demoRate, Loop: true, Logger: log})
	if err != nil {
		return pickedSource{}, err
	}
	return pickedSource{src: s, desc: fmt.Sprintf("replay of the bundled demo stream (%d events/s, looping)", demoRate), demo: true}, nil
}

// buildSink makes the sink of one config entry.
func buildSink(ctx context.Context, cfg *config.Config, s *config.Sink, log *slog.Logger) (sinks.Sink, string, error) {
	log = log.With("sink", s.Name)
	switch s.Type {
	case "file":
		k, err := file.New(file.Options{Path: s.File.Path, RotateBytes: int64(s.File.RotateBytes), Keep: s.File.Keep, Mode: os.FileMode(s.File.Mode), Logger: log})
		return k, s.File.Path, err
	case "kafka":
		k, err := kafka.New(kafkaOptions(s.Kafka, cfg, log))
		return k, fmt.Sprintf("kafka %v topic %s", s.Kafka.Brokers, s.Kafka.Topic), err
	case "elasticsearch":
		o := elasticsearchOptions(s.Elasticsearch, log)
		o.Streams = dataStreams(cfg)
		e, err := elasticsearch.New(ctx, o)
		return e, fmt.Sprintf("elasticsearch %v data stream %s", redact.URLs(s.Elasticsearch.Addresses), s.Elasticsearch.DataStream), err
	}
	return nil, "", fmt.Errorf("sink %s: type %q is not supported", s.Name, s.Type)
}

func kafkaOptions(k *config.Kafka, cfg *config.Config, log *slog.Logger) kafka.Options {
	return kafka.Options{
		Brokers:      k.Brokers,
		Topic:        k.Topic,
		Compression:  k.Compression,
		RequiredAcks: k.RequiredAcks,
		TLS:          kafka.TLS{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile, KeyFile: k.TLS.KeyFile, InsecureSkipVerify: k.TLS.InsecureSkipVerify},
		SASL:         kafka.SASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password.Value()},
		Timeout:      k.Timeout.D(),
		BatchEvents:  cfg.Batch.MaxEvents,
		BatchBytes:   int64(cfg.Batch.MaxBytes),
		Logger:       log,
	}
}

func elasticsearchOptions(e *config.Elasticsearch, log *slog.Logger) elasticsearch.Options {
	return elasticsearch.Options{
		Addresses:          e.Addresses,
		APIKey:             e.APIKey.Value(),
		Username:           e.Username,
		Password:           e.Password.Value(),
		DataStream:         e.DataStream,
		SetupTemplate:      e.SetupTemplate,
		CAFile:             e.TLS.CAFile,
		CAFingerprint:      e.TLS.CAFingerprint,
		VerificationMode:   e.TLS.VerificationMode,
		InsecureSkipVerify: e.TLS.InsecureSkipVerify,
		Timeout:            e.Timeout.D(),
		Logger:             log,
	}
}

func shipBackoff(b config.Backoff) ship.Backoff {
	return ship.Backoff{Initial: b.Initial.D(), Max: b.Max.D(), Multiplier: b.Multiplier, Jitter: b.Jitter}
}

// dataStreams are the streams the agent's documents name for themselves
// (agent.data_stream): file, process and agent. The collector uses its own
// config's agent.data_stream, which must match the agents'.
func dataStreams(cfg *config.Config) []string {
	m := schema.Meta{Namespace: cfg.Agent.DataStream.Namespace, DefendCompatible: cfg.Agent.DataStream.Mode == "defend_compatible"}
	return m.DataStreams()
}
