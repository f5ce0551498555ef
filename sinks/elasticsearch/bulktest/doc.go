// Package bulktest is an in-process HTTP server that behaves as Elasticsearch 8
// does for the parts of its API that Fileward uses: the product header on
// every response, GET /, the Bulk API (create into data streams, with the
// documented per-item errors), index templates, ILM policies, _count and
// _refresh. Real Elasticsearch cannot run in CI, so the Elasticsearch sink and
// the collector are tested against this server; `make e2e` runs the same
// scenario against a real cluster (deploy/compose).
//
// Every behaviour cites the section of the Elasticsearch reference it follows.
// Faults (per-item 429/503, whole-request 429/503/413, poison documents) are
// injected through setters and driven by a seeded RNG so tests are
// repeatable.
//
// It must not be used outside tests and benchmarks, and it implements nothing
// beyond what the sink and collector call: searches, mappings enforcement and
// cluster APIs are out of scope.
package bulktest
