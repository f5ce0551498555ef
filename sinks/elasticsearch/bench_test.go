package elasticsearch

import (
	"context"
	"strconv"
	"testing"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// benchBatch is the pipeline's default batch.max_events.
const benchBatch = 2048

// benchDocs are ~1 KB ECS documents shared by both benchmarks; ids are made
// unique per event so every item is a real create.
func benchDocs() [][]byte {
	docs := make([][]byte, benchBatch)
	for i := range docs {
		docs[i] = doc("bench-"+strconv.Itoa(i), i)
	}
	return docs
}

// BenchmarkElasticsearchSink sends b.N events in batches of 2048, one Bulk
// request per Send, against bulktest. Compare with BenchmarkBulkIndexer
// (go test -tags bulkindexer -run '^$' -bench . ./sinks/elasticsearch/).
func BenchmarkElasticsearchSink(b *testing.B) {
	srv := bulktest.New(1)
	defer srv.Close()
	s, err := New(context.Background(), Options{Addresses: []string{srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	docs := benchDocs()
	batch := &sinks.Batch{Events: make([]sinks.Event, 0, benchBatch)}
	b.SetBytes(int64(len(docs[0])))
	b.ResetTimer()
	acked := 0
	for sent := 0; sent < b.N; {
		batch.Events = batch.Events[:0]
		for k := 0; k < benchBatch && sent < b.N; k++ {
			batch.Events = append(batch.Events, sinks.Event{ID: "e" + strconv.Itoa(sent), Doc: docs[k]})
			sent++
		}
		res, err := s.Send(context.Background(), batch)
		if err != nil || len(res.Failures) > 0 {
			b.Fatalf("Send: %v %v", err, res.Failures)
		}
		acked += len(batch.Events)
	}
	b.StopTimer()
	if acked != b.N || srv.Count(DefaultDataStream) != b.N {
		b.Fatalf("acked %d, indexed %d, want %d", acked, srv.Count(DefaultDataStream), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
