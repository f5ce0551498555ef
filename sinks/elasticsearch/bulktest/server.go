package bulktest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is the Elasticsearch version GET / reports.
const Version = "8.19.7"

// Server is a fake Elasticsearch 8 node. Create it with New and stop it with
// Close. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string

	hs *httptest.Server

	mu        sync.Mutex
	rng       *rand.Rand
	streams   map[string]*stream // data streams and plain indices by name
	templates map[string]indexTemplate
	policies  map[string]json.RawMessage
	// components and pipelines hold component templates and ingest
	// pipelines by name (ingest.go).
	components map[string]json.RawMessage
	pipelines  map[string]*pipeline

	item429, item503 float64 // per-item fault rates
	req429, req503   float64 // whole-request fault rates
	failNext         []int   // whole-request statuses to answer next, in order
	maxContent       int     // 413 above this many (decompressed) body bytes; 0 = 100mb default
	poison           func(doc []byte) string

	requests     atomic.Int64 // _bulk requests seen
	gzipRequests atomic.Int64 // _bulk requests that were gzip-encoded
	lastAuth     atomic.Value // last Authorization header (string)
	allRequests  atomic.Int64 // HTTP requests of any kind
}

type stream struct {
	dataStream bool
	backing    string
	// template is the index template the stream was created from ("" for
	// none), and defaultPipeline its resolved index.default_pipeline.
	template        string
	defaultPipeline string
	docs            map[string]json.RawMessage
	ids             map[string]int // count of stored documents per _id
	seq             int64
}

type indexTemplate struct {
	Name       string
	Patterns   []string
	Priority   int
	DataStream bool
	Body       json.RawMessage
	// ComposedOf are the component templates, in order.
	ComposedOf []string
}

// New starts a plain-HTTP server. seed drives the fault RNG.
func New(seed uint64) *Server { return start(seed, false) }

// NewTLS starts an HTTPS server with a self-signed certificate (see
// Certificate), for TLS verification tests.
func NewTLS(seed uint64) *Server { return start(seed, true) }

// NewTLSWithCert starts an HTTPS server that presents cert (its chain as
// given), for certificate pinning tests.
func NewTLSWithCert(seed uint64, cert tls.Certificate) *Server {
	s := newServer(seed)
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	s.hs.StartTLS()
	s.URL = s.hs.URL
	return s
}

// AllRequests is the number of HTTP requests of any kind received.
func (s *Server) AllRequests() int64 { return s.allRequests.Load() }

// Certificate is the TLS server's certificate (nil for New).
func (s *Server) Certificate() *x509.Certificate { return s.hs.Certificate() }

func start(seed uint64, useTLS bool) *Server {
	s := newServer(seed)
	if useTLS {
		s.hs = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	} else {
		s.hs = httptest.NewServer(http.HandlerFunc(s.serve))
	}
	s.URL = s.hs.URL
	return s
}

func newServer(seed uint64) *Server {
	s := &Server{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		streams:   map[string]*stream{},
		templates: map[string]indexTemplate{},
		policies:  map[string]json.RawMessage{},

		components: map[string]json.RawMessage{},
		pipelines:  map[string]*pipeline{},
	}
	// Elasticsearch ships built-in index templates; "logs" matches logs-*-*
	// with data_stream enabled at priority 100, so a logs-<dataset>-<ns>
	// target is always a data stream (Elasticsearch reference: Data streams >
	// "Set up a data stream", and Index templates > "Avoid index pattern
	// collisions", which lists the built-in logs-*-* template).
	s.templates["logs"] = indexTemplate{Name: "logs", Patterns: []string{"logs-*-*"}, Priority: 100, DataStream: true,
		Body: json.RawMessage(`{"index_patterns":["logs-*-*"],"data_stream":{},"priority":100,"_meta":{"managed":true}}`)}
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.hs.Close() }

// SetItemFaults makes each bulk item fail with 429
// es_rejected_execution_exception with probability r429, else with 503
// unavailable_shards_exception with probability r503.
func (s *Server) SetItemFaults(r429, r503 float64) {
	s.mu.Lock()
	s.item429, s.item503 = r429, r503
	s.mu.Unlock()
}

// SetRequestFaults makes a whole _bulk request fail with HTTP 429 with
// probability r429, else with 503 with probability r503.
func (s *Server) SetRequestFaults(r429, r503 float64) {
	s.mu.Lock()
	s.req429, s.req503 = r429, r503
	s.mu.Unlock()
}

// FailNext makes the next len(statuses) _bulk requests fail with these HTTP
// statuses (429, 503, 413, 401, ...), in order, before looking at the body.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	s.failNext = append(s.failNext, statuses...)
	s.mu.Unlock()
}

// SetMaxContentLength answers 413 to _bulk bodies larger than n bytes after
// decompression, as http.max_content_length does (default 100mb). 0 restores
// the default.
func (s *Server) SetMaxContentLength(n int) {
	s.mu.Lock()
	s.maxContent = n
	s.mu.Unlock()
}

// SetPoison installs a rule: when it returns a non-empty reason for a
// document, the item fails with 400 mapper_parsing_exception and that reason
// (as a field whose value does not match its mapping would).
func (s *Server) SetPoison(rule func(doc []byte) string) {
	s.mu.Lock()
	s.poison = rule
	s.mu.Unlock()
}

// IDs returns the number of stored documents per _id in stream (a data stream
// or index). Exactly-once delivery means every value is 1.
func (s *Server) IDs(name string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	if st := s.streams[name]; st != nil {
		for id, n := range st.ids {
			out[id] = n
		}
	}
	return out
}

// Count is the number of documents stored in stream.
func (s *Server) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[name]; st != nil {
		return len(st.docs)
	}
	return 0
}

// Doc returns the stored source of one document.
func (s *Server) Doc(name, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[name]; st != nil {
		d, ok := st.docs[id]
		return d, ok
	}
	return nil, false
}

// Template returns the body of an installed composable index template.
func (s *Server) Template(name string) (json.RawMessage, bool) {
	t, ok := stored(s, s.templates, name)
	return t.Body, ok
}

// Policy returns the body of an installed ILM policy.
func (s *Server) Policy(name string) (json.RawMessage, bool) {
	return stored(s, s.policies, name)
}

// BulkRequests is the number of _bulk requests received, and how many of
// them had Content-Encoding: gzip.
func (s *Server) BulkRequests() (total, gzipped int64) {
	return s.requests.Load(), s.gzipRequests.Load()
}

// LastAuthorization is the Authorization header of the last request.
func (s *Server) LastAuthorization() string {
	v, _ := s.lastAuth.Load().(string)
	return v
}

// ---- HTTP ----

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Every response of Elasticsearch 8 carries X-Elastic-Product; the Go
	// client refuses a 2xx answer without it (Elasticsearch reference:
	// "REST APIs > API conventions"; go-elasticsearch genuineCheckHeader).
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	s.allRequests.Add(1)
	s.lastAuth.Store(r.Header.Get("Authorization"))
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.root(w)
	case p == "_bulk" || (len(parts) == 2 && parts[1] == "_bulk"):
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			s.errorResponse(w, http.StatusMethodNotAllowed, "illegal_argument_exception", "method not allowed for _bulk")
			return
		}
		target := ""
		if len(parts) == 2 {
			target = parts[0]
		}
		s.bulk(w, r, target)
	case len(parts) == 2 && parts[0] == "_index_template":
		s.indexTemplate(w, r, parts[1])
	case len(parts) == 2 && parts[0] == "_component_template":
		s.componentTemplate(w, r, parts[1])
	case len(parts) == 3 && parts[0] == "_ingest" && parts[1] == "pipeline":
		s.ingestPipeline(w, r, parts[2])
	case len(parts) == 3 && parts[0] == "_ilm" && parts[1] == "policy":
		s.ilmPolicy(w, r, parts[2])
	case (len(parts) == 2 && parts[1] == "_count") || p == "_count":
		s.count(w, r, parts)
	case (len(parts) == 2 && parts[1] == "_refresh") || p == "_refresh":
		// Refresh API: POST /<target>/_refresh makes recent operations
		// visible to search. Writes here are visible at once, so it only
		// reports shard counts (Elasticsearch reference: Index APIs > Refresh).
		writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]int{"total": 1, "successful": 1, "failed": 0}})
	default:
		s.errorResponse(w, http.StatusNotFound, "resource_not_found_exception", "no handler for "+r.Method+" /"+p+" in bulktest")
	}
}

// root answers GET / as the Info API does (Elasticsearch reference: REST APIs
// > Info API): tagline and version.number, which clients use to identify the
// product.
func (s *Server) root(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":         "bulktest",
		"cluster_name": "bulktest",
		"cluster_uuid": "bulktest-cluster-uuid",
		"version": map[string]any{
			"number":                              Version,
			"build_flavor":                        "default",
			"build_type":                          "tar",
			"lucene_version":                      "9.12.2",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
}

// errorResponse writes the error body shape of the REST APIs
// (Elasticsearch reference: REST APIs > API conventions > "Common options" >
// error_trace): {"error":{"root_cause":[...],"type","reason"},"status"}.
func (s *Server) errorResponse(w http.ResponseWriter, status int, typ, reason string) {
	e := map[string]string{"type": typ, "reason": reason}
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"root_cause": []any{e}, "type": typ, "reason": reason},
		"status": status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ---- Bulk API ----

type action struct {
	op    string
	index string
	id    string
	bad   string // a reason when the action line itself is invalid
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, target string) {
	s.requests.Add(1)
	// Bulk API: the body may be compressed with Content-Encoding: gzip
	// (Elasticsearch reference: REST APIs > API conventions >
	// "Content-Encoding"; http.compression).
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		s.gzipRequests.Add(1)
	}
	raw, ok := s.readRequestBody(w, r)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failNext) > 0 {
		st := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.requestFault(w, st)
		return
	}
	if f := s.rng.Float64(); f < s.req429 {
		s.requestFault(w, http.StatusTooManyRequests)
		return
	} else if f < s.req429+s.req503 {
		s.requestFault(w, http.StatusServiceUnavailable)
		return
	}
	limit := s.maxContent
	if limit == 0 {
		limit = 100 << 20 // http.max_content_length default: 100mb
	}
	if len(raw) > limit {
		s.requestFault(w, http.StatusRequestEntityTooLarge)
		return
	}
	// Bulk API, "Request body": newline-delimited JSON; the final line must
	// end with a newline.
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		s.errorResponse(w, http.StatusBadRequest, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
		return
	}

	start := time.Now()
	var items []any
	anyErr := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), len(raw)+1)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		a := parseAction(line, target)
		if a.bad != "" {
			// An unparseable action line fails the whole request
			// (Bulk API: the action_and_meta_data line must be valid).
			s.errorResponse(w, http.StatusBadRequest, "x_content_parse_exception", a.bad)
			return
		}
		var src []byte
		if a.op != "delete" {
			if !sc.Scan() {
				s.errorResponse(w, http.StatusBadRequest, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
				return
			}
			src = append([]byte(nil), sc.Bytes()...)
		}
		it, failed := s.apply(a, src)
		anyErr = anyErr || failed
		items = append(items, map[string]*itemResult{a.op: it})
	}
	// Bulk API, "Response body": took, errors (true if any item failed) and
	// one item per action, in request order, keyed by the op name.
	writeJSON(w, http.StatusOK, map[string]any{
		"took":   time.Since(start).Milliseconds(),
		"errors": anyErr,
		"items":  items,
	})
}

func (s *Server) requestFault(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusTooManyRequests:
		// Whole-request rejection when the write thread pool queue is full
		// (Elasticsearch reference: Thread pools > write; Bulk API).
		s.errorResponse(w, status, "es_rejected_execution_exception", "rejected execution of coordinating operation")
	case http.StatusServiceUnavailable:
		s.errorResponse(w, status, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];")
	case http.StatusRequestEntityTooLarge:
		// http.max_content_length exceeded: the node answers 413 with an
		// empty body (Elasticsearch reference: Networking > HTTP settings).
		w.WriteHeader(status)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `ApiKey, Basic realm="security" charset="UTF-8"`)
		s.errorResponse(w, status, "security_exception", "unable to authenticate user for REST request [/_bulk]")
	case http.StatusForbidden:
		s.errorResponse(w, status, "security_exception", "action [indices:data/write/bulk] is unauthorized")
	default:
		s.errorResponse(w, status, "exception", "injected failure "+strconv.Itoa(status))
	}
}

func parseAction(line []byte, target string) action {
	var m map[string]struct {
		Index  string `json:"_index"`
		ID     string `json:"_id"`
		OpType string `json:"op_type"`
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return action{bad: "failed to parse action line: " + err.Error()}
	}
	if len(m) != 1 {
		return action{bad: fmt.Sprintf("malformed action/metadata line, expected one action, got %d", len(m))}
	}
	for op, meta := range m {
		switch op {
		case "index", "create", "update", "delete":
		default:
			return action{bad: "Malformed action/metadata line, expected one of [create, delete, index, update] but found [" + op + "]"}
		}
		if op == "index" && meta.OpType == "create" {
			op = "create"
		}
		idx := meta.Index
		if idx == "" {
			idx = target
		}
		if idx == "" {
			return action{bad: "index is missing"}
		}
		return action{op: op, index: idx, id: meta.ID}
	}
	return action{}
}

// itemResult is one entry of the Bulk API response's items array (Bulk API,
// "Response body": _index, _id, _version, result, _shards, _seq_no,
// _primary_term, status, error{type, reason, index}).
type itemResult struct {
	Index       string      `json:"_index"`
	ID          string      `json:"_id"`
	Version     int         `json:"_version,omitempty"`
	Result      string      `json:"result,omitempty"`
	Shards      *shards     `json:"_shards,omitempty"`
	SeqNo       *int64      `json:"_seq_no,omitempty"`
	PrimaryTerm int         `json:"_primary_term,omitempty"`
	Status      int         `json:"status"`
	Error       *itemErrorB `json:"error,omitempty"`
}

type shards struct {
	Total      int `json:"total"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

type itemErrorB struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Index  string `json:"index"`
}

// apply runs one bulk item under s.mu and returns its result object.
func (s *Server) apply(a action, src []byte) (*itemResult, bool) {
	st := s.target(a.index)
	item := &itemResult{Index: st.backing, ID: a.id}
	fail := func(status int, typ, reason string) (*itemResult, bool) {
		item.Status = status
		item.Error = &itemErrorB{Type: typ, Reason: reason, Index: st.backing}
		return item, true
	}
	// Data streams: "you cannot send indexing or update requests for
	// existing documents directly to a data stream ... only op_type create"
	// (Elasticsearch reference: Data streams > "Append-only"; the node's
	// message is the one below).
	if st.dataStream && a.op != "create" {
		return fail(http.StatusBadRequest, "illegal_argument_exception",
			"only write ops with an op_type of create are allowed in data streams")
	}
	if a.op == "delete" || a.op == "update" {
		return fail(http.StatusBadRequest, "illegal_argument_exception", "bulktest implements only index and create")
	}
	// Injected shard-level rejections: per-item 429 when the write queue is
	// full and 503 when the primary is unavailable (Bulk API, "Response
	// body": each item carries its own status and error).
	if f := s.rng.Float64(); f < s.item429 {
		return fail(http.StatusTooManyRequests, "es_rejected_execution_exception",
			"rejected execution of primary operation [coordinating_and_primary_bytes=0, max_coordinating_and_primary_bytes=0]")
	} else if f < s.item429+s.item503 {
		return fail(http.StatusServiceUnavailable, "unavailable_shards_exception",
			"["+st.backing+"][0] primary shard is not active Timeout: [1m]")
	}
	// Documents must be JSON objects; a data stream document needs
	// @timestamp (Data streams > "Set up a data stream": every document
	// must contain a @timestamp field mapped as date).
	var obj struct {
		Timestamp json.RawMessage `json:"@timestamp"`
	}
	if err := json.Unmarshal(src, &obj); err != nil {
		return fail(http.StatusBadRequest, "mapper_parsing_exception", "failed to parse: "+err.Error())
	}
	if st.dataStream {
		if obj.Timestamp == nil {
			return fail(http.StatusBadRequest, "mapper_parsing_exception", "data stream timestamp field [@timestamp] is missing")
		}
	}
	if s.poison != nil {
		if reason := s.poison(src); reason != "" {
			return fail(http.StatusBadRequest, "mapper_parsing_exception", reason)
		}
	}
	// The stream's default pipeline runs before the document is stored
	// (Ingest pipelines > "Set a default pipeline": index.default_pipeline
	// applies to every request without a pipeline parameter).
	if st.defaultPipeline != "" {
		out, err := s.runPipeline(st.defaultPipeline, src)
		if err != nil {
			return fail(http.StatusBadRequest, "illegal_argument_exception", err.Error())
		}
		src = out
	}
	id := a.id
	if id == "" {
		// Index API: without _id an id is generated.
		id = "auto-" + strconv.FormatUint(s.rng.Uint64(), 36)
		item.ID = id
	}
	if _, exists := st.docs[id]; exists {
		if a.op == "create" {
			// Index API, op_type=create: "If a document with the
			// specified _id already exists, the indexing operation will
			// fail" with 409 version_conflict_engine_exception.
			return fail(http.StatusConflict, "version_conflict_engine_exception",
				"["+id+"]: version conflict, document already exists (current version [1])")
		}
		st.docs[id] = src
		st.seq++
		seq := st.seq
		item.Result, item.Status, item.Version, item.SeqNo = "updated", http.StatusOK, 2, &seq
		return item, false
	}
	st.docs[id] = src
	st.ids[id]++
	st.seq++
	seq := st.seq
	item.Result, item.Status, item.Version, item.SeqNo = "created", http.StatusCreated, 1, &seq
	item.PrimaryTerm = 1
	item.Shards = &shards{Total: 2, Successful: 1, Failed: 0}
	return item, false
}

// target returns (creating on first write) the index or data stream named
// name. A name matching an index template with data_stream enabled becomes a
// data stream whose first backing index is .ds-<name>-<yyyy.MM.dd>-000001
// (Data streams > "Backing indices").
func (s *Server) target(name string) *stream {
	if st := s.streams[name]; st != nil {
		return st
	}
	st := &stream{backing: name, docs: map[string]json.RawMessage{}, ids: map[string]int{}}
	if t, ok := s.matchTemplate(name); ok {
		st.template = t.Name
		st.defaultPipeline = s.defaultPipeline(t)
		if t.DataStream {
			st.dataStream = true
			st.backing = ".ds-" + name + "-" + time.Now().UTC().Format("2006.01.02") + "-000001"
		}
	}
	s.streams[name] = st
	return st
}

// matchTemplate picks the highest-priority template whose index_patterns
// match (Index templates: "If a new data stream or index matches more than
// one index template, the index template with the highest priority is used").
func (s *Server) matchTemplate(name string) (indexTemplate, bool) {
	var best indexTemplate
	found := false
	for _, t := range s.templates {
		for _, p := range t.Patterns {
			if ok, _ := path.Match(p, name); ok && (!found || t.Priority > best.Priority) {
				best, found = t, true
			}
		}
	}
	return best, found
}

// ---- Index templates and ILM ----

// indexTemplate serves PUT/GET /_index_template/<name> (Elasticsearch
// reference: Index APIs > "Create or update index template": body with
// index_patterns, template, priority, data_stream; response
// {"acknowledged":true}. "Get index template": {"index_templates":[{name,
// index_template}]}, 404 when missing).
func (s *Server) indexTemplate(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		var t struct {
			IndexPatterns []string        `json:"index_patterns"`
			Priority      int             `json:"priority"`
			DataStream    json.RawMessage `json:"data_stream"`
			Template      json.RawMessage `json:"template"`
			ComposedOf    []string        `json:"composed_of"`
			IgnoreMissing []string        `json:"ignore_missing_component_templates"`
		}
		raw, ok := s.readJSONBody(w, r, &t)
		if !ok {
			return
		}
		if len(t.IndexPatterns) == 0 {
			s.errorResponse(w, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
			return
		}
		if len(t.Template) > 0 {
			var tpl struct {
				Mappings json.RawMessage `json:"mappings"`
			}
			if err := json.Unmarshal(t.Template, &tpl); err != nil {
				s.errorResponse(w, http.StatusBadRequest, "x_content_parse_exception", "template: "+err.Error())
				return
			}
		}
		s.mu.Lock()
		// Create or update index template: every composed_of component
		// template must exist, unless listed in
		// ignore_missing_component_templates (Elasticsearch 8.7+).
		for _, c := range t.ComposedOf {
			if _, ok := s.components[c]; !ok && !slices.Contains(t.IgnoreMissing, c) {
				s.mu.Unlock()
				s.errorResponse(w, http.StatusBadRequest, "invalid_index_template_exception",
					fmt.Sprintf("index_template [%s] invalid, cause [index template [%s] specifies component templates [%s] that do not exist]", name, name, c))
				return
			}
		}
		for n, other := range s.templates {
			// Index templates: two templates with overlapping
			// patterns and equal priority are rejected.
			if n != name && other.Priority == t.Priority && overlaps(other.Patterns, t.IndexPatterns) {
				s.mu.Unlock()
				s.errorResponse(w, http.StatusBadRequest, "illegal_argument_exception",
					fmt.Sprintf("index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s => %v) that have the same priority [%d]", name, t.IndexPatterns, n, n, other.Patterns, t.Priority))
				return
			}
		}
		s.templates[name] = indexTemplate{Name: name, Patterns: t.IndexPatterns, Priority: t.Priority,
			DataStream: len(t.DataStream) > 0 && string(t.DataStream) != "null", Body: raw, ComposedOf: t.ComposedOf}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	case http.MethodGet, http.MethodHead:
		t, ok := stored(s, s.templates, name)
		if !ok {
			s.errorResponse(w, http.StatusNotFound, "resource_not_found_exception", "index template matching ["+name+"] not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": t.Body}}})
	default:
		s.methodNotAllowed(w)
	}
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
			if ok, _ := path.Match(x, y); ok {
				return true
			}
			if ok, _ := path.Match(y, x); ok {
				return true
			}
		}
	}
	return false
}

// ilmPolicy serves PUT/GET /_ilm/policy/<name> (Elasticsearch reference:
// ILM APIs > "Create or update lifecycle policy": body {"policy":{"phases":
// ...}}, response {"acknowledged":true}; "Get lifecycle policy":
// {"<name>":{"version","modified_date","policy"}}, 404 when missing).
func (s *Server) ilmPolicy(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodPut:
		raw, ok := s.readRequestBody(w, r)
		if !ok {
			return
		}
		var p struct {
			Policy *struct {
				Phases map[string]json.RawMessage `json:"phases"`
			} `json:"policy"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.Policy == nil {
			s.errorResponse(w, http.StatusBadRequest, "x_content_parse_exception", "[put_lifecycle_request] policy is required")
			return
		}
		s.acknowledge(w, func() { s.policies[name] = raw })
	case http.MethodGet:
		p, ok := stored(s, s.policies, name)
		if !ok {
			s.errorResponse(w, http.StatusNotFound, "resource_not_found_exception", "Lifecycle policy not found: "+name)
			return
		}
		var body struct {
			Policy json.RawMessage `json:"policy"`
		}
		_ = json.Unmarshal(p, &body)
		writeJSON(w, http.StatusOK, map[string]any{name: map[string]any{"version": 1, "modified_date": "2026-01-01T00:00:00.000Z", "policy": body.Policy}})
	default:
		s.methodNotAllowed(w)
	}
}

// count serves GET|POST /<target>/_count without a query (Elasticsearch
// reference: Search APIs > Count API: {"count":N,"_shards":{...}}; a missing
// target is 404 index_not_found_exception).
func (s *Server) count(w http.ResponseWriter, _ *http.Request, parts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if len(parts) == 2 {
		st := s.streams[parts[0]]
		if st == nil {
			s.errorResponse(w, http.StatusNotFound, "index_not_found_exception", "no such index ["+parts[0]+"]")
			return
		}
		n = len(st.docs)
	} else {
		for _, st := range s.streams {
			n += len(st.docs)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": n, "_shards": map[string]int{"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
}

// readBody reads a request body, decompressing Content-Encoding: gzip as
// every REST endpoint does when http.compression is on (the default)
// (Elasticsearch reference: Networking > HTTP settings, http.compression).
func readBody(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("invalid gzip body: %w", err)
		}
		defer zr.Close()
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return raw, nil
}

// readRequestBody reads a request's body (readBody); when it cannot, it
// answers 400 parse_exception, as Elasticsearch does for a body it cannot
// read, and returns false.
func (s *Server) readRequestBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := readBody(r)
	if err != nil {
		s.errorResponse(w, http.StatusBadRequest, "parse_exception", err.Error())
		return nil, false
	}
	return raw, true
}

// readJSONBody reads the body of a create-or-update request
// (readRequestBody) and decodes it into v; a body that does not decode is
// answered 400 x_content_parse_exception. It returns the body as sent, and
// false when it has answered.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request, v any) ([]byte, bool) {
	raw, ok := s.readRequestBody(w, r)
	if !ok {
		return nil, false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		s.errorResponse(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
		return nil, false
	}
	return raw, true
}

// acknowledge runs put (which stores what a create-or-update request
// sent) under s.mu and answers {"acknowledged":true}, as the create or
// update APIs of index templates, component templates, ingest pipelines and
// ILM policies do.
func (s *Server) acknowledge(w http.ResponseWriter, put func()) {
	s.mu.Lock()
	put()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
}

// stored is m[name], read under s.mu.
func stored[V any](s *Server, m map[string]V, name string) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[name]
	return v, ok
}

// methodNotAllowed answers a method an endpoint does not serve: 405
// illegal_argument_exception.
func (s *Server) methodNotAllowed(w http.ResponseWriter) {
	s.errorResponse(w, http.StatusMethodNotAllowed, "illegal_argument_exception", "method not allowed")
}
