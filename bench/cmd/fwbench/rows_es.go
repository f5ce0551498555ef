//go:build bulkindexer

package main

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	es8 "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/fileward/fileward/sinks"
	fwes "github.com/fileward/fileward/sinks/elasticsearch"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// rowElasticsearch alternates, in this process and on one bulktest server,
// the Elasticsearch sink (one gzip bulk request per batch of 2048, as the
// shipper calls it) and esutil.BulkIndexer over the same ECS documents,
// three rounds each into fresh data streams, and compares the median
// events/s. The target row sets BulkIndexer up like for like, as the
// package's own BenchmarkBulkIndexer does (one worker, a flush at one
// batch's bytes, no flush timer, gzip, create with the same _id); a second
// row uses BulkIndexer's defaults (NumCPU workers, 5 MB flush, 30 s timer).
// Every round checks that its data stream holds every id exactly once.
func (h *harness) rowElasticsearch(ctx context.Context) ([]Result, error) {
	n := min(h.events, envOr("FWBENCH_ES_EVENTS", 20000))
	ecs, err := h.ecsInput(ctx, h.kafkaEvents())
	if err != nil {
		return nil, err
	}
	docs, err := readLines(ecs, n)
	if err != nil {
		return nil, err
	}
	srv := bulktest.New(1)
	defer srv.Close()
	var batches []sinks.Batch
	for i := 0; i < len(docs); i += 2048 {
		var b sinks.Batch
		for _, d := range docs[i:min(i+2048, len(docs))] {
			b.Events = append(b.Events, sinks.Event{ID: string(eventID(d)), Key: "fwbench-host", Doc: d})
		}
		batches = append(batches, b)
	}
	rounds := 3
	if h.smoke {
		rounds = 1
	}
	check := func(ds string) error {
		ids := srv.IDs(ds)
		if len(ids) != len(docs) {
			return fmt.Errorf("data stream %s holds %d ids, want %d", ds, len(ids), len(docs))
		}
		for id, c := range ids {
			if c != 1 {
				return fmt.Errorf("data stream %s: id %s stored %d times", ds, id, c)
			}
		}
		return nil
	}
	var sinkRates, bulkRates, defRates []float64
	flush := 0
	for _, e := range batches[0].Events {
		flush += len(e.Doc) + 80 // the action line: {"create":{"_index":…,"_id":…}}
	}
	for r := 0; r < rounds; r++ {
		ds := fmt.Sprintf("logs-fwbench.sink%d-default", r)
		s, err := fwes.New(ctx, fwes.Options{Addresses: []string{srv.URL}, DataStream: ds})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		for i := range batches {
			res, err := s.Send(ctx, &batches[i])
			if err != nil || len(res.Failures) > 0 {
				s.Close(ctx)
				return nil, fmt.Errorf("elasticsearch sink: %v (%d failures)", err, len(res.Failures))
			}
		}
		sinkRates = append(sinkRates, float64(len(docs))/time.Since(t0).Seconds())
		s.Close(ctx)
		if err := check(ds); err != nil {
			return nil, err
		}

		rate, err := h.bulkIndexer(ctx, srv.URL, fmt.Sprintf("logs-fwbench.bulk%d-default", r), docs, flush, check)
		if err != nil {
			return nil, err
		}
		bulkRates = append(bulkRates, rate)
		rate, err = h.bulkIndexer(ctx, srv.URL, fmt.Sprintf("logs-fwbench.bulkdef%d-default", r), docs, 0, check)
		if err != nil {
			return nil, err
		}
		defRates = append(defRates, rate)
	}
	s, b := median(sinkRates), median(bulkRates)
	res := Result{Name: "elasticsearch.sink_vs_bulkindexer", Value: s, Unit: "events/s", Baseline: b, BaselineUnit: "events/s",
		BaselineName: "esutil.BulkIndexer, 1 worker, flush at one batch's bytes, no timer, gzip; same server and documents", Ratio: s / b, RatioMeans: "sink / BulkIndexer",
		Notes: fmt.Sprintf("in-process bulktest server, %d events, median of %d alternating rounds: sink %v, BulkIndexer %v; each data stream verified to hold every id once",
			len(docs), rounds, fmtRates(sinkRates), fmtRates(bulkRates))}
	res.apply(Target{"ratio", ">=", 1.0})
	d := median(defRates)
	def := Result{Name: "elasticsearch.sink_vs_bulkindexer_defaults", Value: s, Unit: "events/s", Baseline: d, BaselineUnit: "events/s",
		BaselineName: "esutil.BulkIndexer with its defaults (NumCPU workers, 5 MB flush, 30 s timer) and gzip", Ratio: s / d, RatioMeans: "sink / BulkIndexer",
		Notes: fmt.Sprintf("informational; BulkIndexer defaults %v", fmtRates(defRates))}
	return []Result{res, def}, nil
}

// bulkIndexer indexes docs into ds with esutil.BulkIndexer (flush bytes
// and one worker when flush > 0, its defaults otherwise), checks the data
// stream, and returns events/s.
func (h *harness) bulkIndexer(ctx context.Context, url, ds string, docs [][]byte, flush int, check func(string) error) (float64, error) {
	client, err := es8.NewClient(es8.Config{Addresses: []string{url}, CompressRequestBody: true})
	if err != nil {
		return 0, err
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	cfg := esutil.BulkIndexerConfig{Client: client, Index: ds,
		OnError: func(_ context.Context, err error) { firstErr.CompareAndSwap(nil, err) }}
	if flush > 0 {
		cfg.NumWorkers, cfg.FlushBytes, cfg.FlushInterval = 1, flush, time.Hour
	}
	t0 := time.Now()
	bi, err := esutil.NewBulkIndexer(cfg)
	if err != nil {
		return 0, err
	}
	for _, d := range docs {
		if err := bi.Add(ctx, esutil.BulkIndexerItem{Action: "create", DocumentID: string(eventID(d)), Body: bytes.NewReader(d),
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, _ esutil.BulkIndexerResponseItem, _ error) {
				failed.Add(1)
			}}); err != nil {
			return 0, err
		}
	}
	if err := bi.Close(ctx); err != nil {
		return 0, err
	}
	rate := float64(len(docs)) / time.Since(t0).Seconds()
	if f := failed.Load(); f > 0 || firstErr.Load() != nil {
		return 0, fmt.Errorf("BulkIndexer: %d failed items, error %v", f, firstErr.Load())
	}
	return rate, check(ds)
}
