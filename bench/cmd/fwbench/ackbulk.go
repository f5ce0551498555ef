package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ackBulk is the collector scaling row's Elasticsearch. It answers the Bulk
// API as Elasticsearch documents it, after holding every _bulk request for a
// fixed latency (as a remote cluster would), but stores nothing: it keeps
// only the ids, to check that every event arrived exactly once. bulktest,
// which parses, runs the ingest pipeline on and stores every document under
// one lock, spent about 0.4–0.5 s of its own per 2048-document request, so it
// and not the collectors was the limit of that row; here the only cost a
// request meets is the latency, and a collector's ceiling is its requests in
// flight (elasticsearch.workers) times batch_events over the latency.
//
// Elasticsearch reference, Bulk API: the body is NDJSON, an action line
// ({"create":{"_index":...,"_id":...}}) followed by the document; the
// response is {"took","errors","items"}, one item per action in request
// order, keyed by the op, with _index, _id, _version, result, _shards,
// _seq_no, _primary_term and status; a create of an _id that exists is a
// 409 version_conflict_engine_exception. Whole-request rejection (write
// queue full) is 429 es_rejected_execution_exception. Every response carries
// X-Elastic-Product: Elasticsearch (REST API conventions), which the Go
// client checks.
type ackBulk struct {
	latency time.Duration
	refuse  atomic.Bool // answer 429 to every _bulk request

	requests, inflight, maxInflight atomic.Int64

	mu   sync.Mutex
	ids  map[string]struct{}
	seq  int64
	dups int64 // creates of an id already acknowledged (answered 409)

	srv *httptest.Server
	URL string
}

func newAckBulk(latency time.Duration) *ackBulk {
	a := &ackBulk{latency: latency, ids: map[string]struct{}{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	a.URL = a.srv.URL
	return a
}

func (a *ackBulk) Close() { a.srv.Close() }

// count is how many distinct ids were acknowledged; dups how many creates
// found their id there already.
func (a *ackBulk) count() (ids int, dups int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids), a.dups
}

func (a *ackBulk) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	p := strings.Trim(r.URL.Path, "/")
	switch {
	case p == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		// Info API.
		ackJSON(w, http.StatusOK, `{"name":"fwbench-ack","cluster_name":"fwbench","cluster_uuid":"fwbench","version":{"number":"8.15.0","build_flavor":"default","lucene_version":"9.11.1","minimum_wire_compatibility_version":"7.17.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"You Know, for Search"}`)
	case strings.HasSuffix(p, "_bulk") && r.Method == http.MethodPost:
		target, _ := strings.CutSuffix(p, "_bulk")
		a.bulk(w, r, strings.TrimSuffix(target, "/"))
	default:
		ackJSON(w, http.StatusNotFound, fmt.Sprintf(`{"error":{"root_cause":[{"type":"resource_not_found_exception","reason":"no handler for %s /%s in fwbench's bulk stand-in"}],"type":"resource_not_found_exception","reason":"no handler"},"status":404}`, r.Method, p))
	}
}

func ackJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

type ackAction struct {
	Index string `json:"_index"`
	ID    string `json:"_id"`
}

func (a *ackBulk) bulk(w http.ResponseWriter, r *http.Request, target string) {
	a.requests.Add(1)
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		m := a.maxInflight.Load()
		if n <= m || a.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	start := time.Now()
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			ackJSON(w, http.StatusBadRequest, `{"error":{"type":"parse_exception","reason":"bad gzip body"},"status":400}`)
			return
		}
		defer zr.Close()
		body = zr
	}
	type op struct{ name, index, id string }
	var ops []op
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 100<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var act map[string]ackAction
		if err := json.Unmarshal(line, &act); err != nil || len(act) != 1 {
			ackJSON(w, http.StatusBadRequest, `{"error":{"type":"x_content_parse_exception","reason":"malformed action/metadata line"},"status":400}`)
			return
		}
		for name, m := range act {
			if m.Index == "" {
				m.Index = target
			}
			ops = append(ops, op{name, m.Index, m.ID})
		}
		if !sc.Scan() { // the document: not parsed, not kept
			ackJSON(w, http.StatusBadRequest, `{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}`)
			return
		}
	}
	if err := sc.Err(); err != nil {
		ackJSON(w, http.StatusBadRequest, fmt.Sprintf(`{"error":{"type":"parse_exception","reason":%q},"status":400}`, err.Error()))
		return
	}
	if a.refuse.Load() { // at once: a request refused does not hold a slot
		ackJSON(w, http.StatusTooManyRequests, `{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}],"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"},"status":429}`)
		return
	}
	select {
	case <-time.After(a.latency):
	case <-r.Context().Done():
		return
	}
	var out bytes.Buffer
	out.Grow(len(ops) * 200)
	fmt.Fprintf(&out, `{"took":%d,"errors":false,"items":[`, time.Since(start).Milliseconds())
	day := time.Now().UTC().Format("2006.01.02")
	a.mu.Lock()
	for i, o := range ops {
		if i > 0 {
			out.WriteByte(',')
		}
		idx, _ := json.Marshal(".ds-" + o.index + "-" + day + "-000001")
		id, _ := json.Marshal(o.id)
		if _, dup := a.ids[o.id]; dup && o.name == "create" {
			a.dups++
			fmt.Fprintf(&out, `{%q:{"_index":%s,"_id":%s,"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[%s]: version conflict, document already exists (current version [1])"}}}`,
				o.name, idx, id, strings.Trim(string(id), `"`))
			continue
		}
		a.ids[o.id] = struct{}{}
		a.seq++
		fmt.Fprintf(&out, `{%q:{"_index":%s,"_id":%s,"_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":201}}`,
			o.name, idx, id, a.seq)
	}
	a.mu.Unlock()
	out.WriteString("]}")
	ackJSON(w, http.StatusOK, out.String())
}
