//go:build !bulkindexer

package main

import "context"

// rowElasticsearch needs esutil.BulkIndexer as its baseline, and esutil pulls
// in go-elasticsearch's whole typed API (about 860 packages, minutes to
// compile on 2 cores). So the row is built only with -tags bulkindexer, which
// `make bench` passes; `make bench-smoke` (inside `make test`) skips it.
func (h *harness) rowElasticsearch(context.Context) ([]Result, error) {
	return []Result{{Name: "elasticsearch.sink_vs_bulkindexer", Unit: "events/s",
		Skipped: "built without -tags bulkindexer (make bench builds with it)"}}, nil
}
