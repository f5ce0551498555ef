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
// shipper calls it) and esutil.BulkIndexer (defaults: NumCPU workers,
// 5 MB flush, gzip on, create with the same _id) over the same ECS
// documents, three rounds each into fresh data streams, and compares the
// median events/s. Every round checks that its data stream holds every id
// exactly once.
func (h *harness) rowElasticsearch(ctx context.Context) ([]Result, error) {
	n := min(h.events, envOr("FWBENCH_ES_EVENTS", 30000))
	ecs, err := h.ecsInput(ctx, h.events)
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
	var sinkRates, bulkRates []float64
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

		ds = fmt.Sprintf("logs-fwbench.bulk%d-default", r)
		client, err := es8.NewClient(es8.Config{Addresses: []string{srv.URL}, CompressRequestBody: true})
		if err != nil {
			return nil, err
		}
		var failed atomic.Int64
		var firstErr atomic.Value
		t0 = time.Now()
		bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: ds,
			OnError: func(_ context.Context, err error) { firstErr.CompareAndSwap(nil, err) }})
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if err := bi.Add(ctx, esutil.BulkIndexerItem{Action: "create", DocumentID: string(eventID(d)), Body: bytes.NewReader(d),
				OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, _ esutil.BulkIndexerResponseItem, _ error) {
					failed.Add(1)
				}}); err != nil {
				return nil, err
			}
		}
		if err := bi.Close(ctx); err != nil {
			return nil, err
		}
		bulkRates = append(bulkRates, float64(len(docs))/time.Since(t0).Seconds())
		if f := failed.Load(); f > 0 || firstErr.Load() != nil {
			return nil, fmt.Errorf("BulkIndexer: %d failed items, error %v", f, firstErr.Load())
		}
		if err := check(ds); err != nil {
			return nil, err
		}
	}
	s, b := median(sinkRates), median(bulkRates)
	res := Result{Name: "elasticsearch.sink_vs_bulkindexer", Value: s, Unit: "events/s", Baseline: b, BaselineUnit: "events/s",
		BaselineName: "esutil.BulkIndexer (defaults, gzip), same server and documents", Ratio: s / b, RatioMeans: "sink / BulkIndexer",
		Notes: fmt.Sprintf("in-process bulktest server, %d events, median of %d alternating rounds: sink %v, BulkIndexer %v; each data stream verified to hold every id once",
			len(docs), rounds, fmtRates(sinkRates), fmtRates(bulkRates))}
	res.apply(Target{"ratio", ">=", 1.0})
	return []Result{res}, nil
}
