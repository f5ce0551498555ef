package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks"
	fwes "github.com/fileward/fileward/sinks/elasticsearch"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// rowElasticsearchFaults measures delivery under Elasticsearch
// back-pressure: the shipper (agent/ship, with the default backoff and
// elasticsearch.workers 2) moves the same events from a real spool through
// the Elasticsearch sink to the bulktest server, once with no faults and
// once with 30% of bulk items answered 429 and 10% of bulk requests 503, in
// this run, alternating, three rounds each. The ratio is the median faulty
// rate over the median fault-free one; each data stream is checked to hold
// every id exactly once.
func (h *harness) rowElasticsearchFaults(ctx context.Context) ([]Result, error) {
	n := min(h.events, envOr("FWBENCH_ES_FAULT_EVENTS", 50000))
	ecs, err := h.ecsInput(ctx, h.kafkaEvents())
	if err != nil {
		return nil, err
	}
	docs, err := readLines(ecs, n)
	if err != nil {
		return nil, err
	}
	n = len(docs)
	srv := bulktest.New(7)
	defer srv.Close()
	run := func(name string, item429, req503 float64) (float64, int64, error) {
		srv.SetItemFaults(item429, 0)
		srv.SetRequestFaults(0, req503)
		defer srv.SetItemFaults(0, 0)
		defer srv.SetRequestFaults(0, 0)
		dir := filepath.Join(h.work, "esfaults-"+name)
		os.RemoveAll(dir)
		sp, err := spool.Open(ctx, spool.Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: 16 << 20, Fsync: spool.FsyncNever})
		if err != nil {
			return 0, 0, err
		}
		defer sp.Close()
		for i := 0; i < len(docs); i += 2048 {
			var evs []sinks.Event
			for _, d := range docs[i:min(i+2048, len(docs))] {
				evs = append(evs, sinks.Event{ID: string(eventID(d)), Key: "fwbench-host", Doc: d})
			}
			if err := sp.Append(ctx, sinks.AppendBatch(nil, evs), len(evs)); err != nil {
				return 0, 0, err
			}
		}
		ds := "logs-fwbench.faults" + name + "-default"
		es, err := fwes.New(ctx, fwes.Options{Addresses: []string{srv.URL}, DataStream: ds})
		if err != nil {
			return 0, 0, err
		}
		defer es.Close(ctx)
		var rejected uint64
		sh, err := ship.New(ship.Options{Name: "es", Sink: es, Spool: sp, Workers: 2,
			DeadLetterDir: filepath.Join(dir, "dead-letter"), Registerer: prometheus.NewRegistry(),
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnRejected: func(k uint64) { rejected += k }})
		if err != nil {
			return 0, 0, err
		}
		req0, _ := srv.BulkRequests()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		t0 := time.Now()
		sh.Drain()
		if err := sh.Run(rctx); err != nil {
			return 0, 0, err
		}
		el := time.Since(t0)
		if rctx.Err() != nil {
			return 0, 0, fmt.Errorf("%s: not delivered within 10 minutes", name)
		}
		ids := srv.IDs(ds)
		if len(ids) != len(docs) || rejected != 0 {
			return 0, 0, fmt.Errorf("%s: data stream holds %d ids (%d rejected), want %d", name, len(ids), rejected, len(docs))
		}
		for id, c := range ids {
			if c != 1 {
				return 0, 0, fmt.Errorf("%s: id %s stored %d times", name, id, c)
			}
		}
		req1, _ := srv.BulkRequests()
		return float64(len(docs)) / el.Seconds(), req1 - req0, nil
	}
	rounds := 3
	if h.smoke {
		rounds = 1
	}
	var cleans, faults []float64
	var cleanReqs, faultyReqs int64
	for r := 0; r < rounds; r++ {
		c, cr, err := run(fmt.Sprintf("clean%d", r), 0, 0)
		if err != nil {
			return nil, err
		}
		f, fr, err := run(fmt.Sprintf("faulty%d", r), 0.3, 0.1)
		if err != nil {
			return nil, err
		}
		cleans, faults = append(cleans, c), append(faults, f)
		cleanReqs, faultyReqs = cleanReqs+cr, faultyReqs+fr
	}
	clean, faulty := median(cleans), median(faults)
	res := Result{Name: "elasticsearch.backpressure_faulty_vs_clean", Value: faulty, Unit: "events/s",
		Baseline: clean, BaselineUnit: "events/s", BaselineName: "the same shipper, events and server with no faults",
		Ratio: faulty / clean, RatioMeans: "rate with 30% item 429s and 10% request 503s / fault-free rate",
		Notes: fmt.Sprintf("%d events spool → shipper (default backoff, workers 2) → Elasticsearch sink → in-process bulktest; median of %d alternating rounds: faulty %v, clean %v; %d bulk requests faulty, %d clean; every id stored exactly once in every round",
			n, rounds, fmtRates(faults), fmtRates(cleans), faultyReqs, cleanReqs)}
	res.apply(Target{"ratio", ">=", 0.3})
	return []Result{res}, nil
}
