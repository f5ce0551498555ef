//go:build bulkindexer

// This baseline needs esutil, which imports the go-elasticsearch root
// package and with it the whole typed API (minutes to compile under -race),
// so it is behind a build tag:
//
//	go test -tags bulkindexer -run '^$' -bench . -benchtime 100000x ./sinks/elasticsearch/

package elasticsearch

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// BenchmarkBulkIndexer is the baseline: esutil.BulkIndexer on the same
// server, the same documents, the same gzip transport, one worker and a
// flush size of one 2048-event batch; Close waits for every ack.
func BenchmarkBulkIndexer(b *testing.B) {
	srv := bulktest.New(1)
	defer srv.Close()
	s, err := New(context.Background(), Options{Addresses: []string{srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	docs := benchDocs()
	flush := 0
	for _, d := range docs {
		flush += len(d) + 40
	}
	var acked, failed atomic.Int64
	b.SetBytes(int64(len(docs[0])))
	b.ResetTimer()
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:        s.client, // the sink's transport: same gzip level and product check
		Index:         DefaultDataStream,
		NumWorkers:    1,
		FlushBytes:    flush,
		FlushInterval: time.Hour, // flush on size (and Close) only, like a full batch
	})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action:     "create",
			DocumentID: "e" + strconv.Itoa(i),
			Body:       bytes.NewReader(docs[i%benchBatch]),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
				acked.Add(1)
			},
			OnFailure: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem, error) {
				failed.Add(1)
			},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if acked.Load() != int64(b.N) || failed.Load() != 0 {
		b.Fatalf("acked %d failed %d, want %d", acked.Load(), failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
