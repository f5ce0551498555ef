package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/elastic/elastic-transport-go/v8/elastictransport"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/fileward/fileward/internal/redact"
	"github.com/fileward/fileward/internal/tlspin"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/schema/template"
	"github.com/fileward/fileward/sinks"
)

// DefaultDataStream is the data stream events go to unless Options says
// otherwise.
const DefaultDataStream = "logs-fileward.file-default"

// Options configures a Sink. Zero values take the documented defaults.
type Options struct {
	// Addresses are the node URLs (http:// or https://). Required.
	Addresses []string
	// APIKey is the base64 "id:key" API key; it takes precedence over
	// Username/Password.
	APIKey   string
	Username string
	Password string
	// DataStream is the write target of documents that do not name their
	// own stream (data_stream.* after @timestamp, as every document of this
	// agent does) or name one not in Streams; default DefaultDataStream.
	DataStream string
	// Streams are the data streams documents may name for themselves (the
	// agent's schema.Meta.DataStreams(): file, process and agent). A
	// document naming one of them is written there (the bulk action's
	// _index); SetupTemplate installs a template for each.
	Streams []string
	// SetupTemplate installs the ILM policy and index template in New
	// (PUT is idempotent, so every start may do it).
	SetupTemplate bool
	// CAFile is a PEM bundle trusted in addition to nothing else: when set,
	// only these roots are trusted.
	CAFile string
	// CAFingerprint is the hex SHA-256 of the CA certificate that signed
	// the server's (as Elasticsearch prints at first start); colons are
	// allowed. That CA becomes the only root: see internal/tlspin.
	CAFingerprint string
	// VerificationMode is full (default), certificate (no hostname check)
	// or none, as Beats' ssl.verification_mode.
	VerificationMode string
	// InsecureSkipVerify disables TLS verification (verification_mode
	// none). Off by default; only for tests.
	InsecureSkipVerify bool
	// Timeout bounds one bulk request; default 30s.
	Timeout time.Duration
	// Logger receives warnings (nil discards). Secrets are never logged.
	Logger *slog.Logger
	// Transport overrides the HTTP transport (tests, benchmarks). When nil
	// a clone of http.DefaultTransport with the TLS settings above is used.
	Transport http.RoundTripper
}

// Sink writes batches to an Elasticsearch data stream with one Bulk request
// per Send. It implements sinks.Sink. Send is safe for concurrent use, so a
// shipper may keep several bulk requests in flight (elasticsearch.workers).
type Sink struct {
	client  *productChecked
	ds      string
	streams map[string]bool
	timeout time.Duration
	log     *slog.Logger

	// templatePending is true while SetupTemplate is requested but the
	// template could not be installed yet (Elasticsearch unreachable);
	// Send installs it first. Guarded by mu.
	mu              sync.Mutex
	templatePending bool

	bufs sync.Pool // *bytes.Buffer request bodies, one per Send in flight
}

// ItemError is one bulk item Elasticsearch refused.
type ItemError struct {
	Status int    // the item's HTTP status
	Type   string // error.type, e.g. mapper_parsing_exception
	Reason string // error.reason (with caused_by appended when present)
}

// Throttled reports an item Elasticsearch refused with 429 (a full write
// queue): the sender should slow down (see agent/deliver).
func (e *ItemError) Throttled() bool { return e.Status == http.StatusTooManyRequests }

func (e *ItemError) Error() string {
	return fmt.Sprintf("elasticsearch item status %d: %s: %s", e.Status, e.Type, e.Reason)
}

// RequestError is a whole Bulk (or setup) request Elasticsearch refused.
type RequestError struct {
	Status int
	Type   string
	Reason string
}

// Throttled reports a whole request refused with 429.
func (e *RequestError) Throttled() bool { return e.Status == http.StatusTooManyRequests }

func (e *RequestError) Error() string {
	if e.Type == "" {
		if e.Reason != "" { // "error" was a string
			return fmt.Sprintf("elasticsearch answered HTTP %d: %s", e.Status, e.Reason)
		}
		return fmt.Sprintf("elasticsearch answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("elasticsearch answered HTTP %d: %s: %s", e.Status, e.Type, e.Reason)
}

// New builds the client, checks the options and, with SetupTemplate,
// installs the ILM policy and the index template. When Elasticsearch cannot
// be reached yet the installation is deferred to the first Send (which then
// returns a retryable error until it succeeds); a template Elasticsearch
// rejects (400) fails New.
func New(ctx context.Context, o Options) (*Sink, error) {
	if len(o.Addresses) == 0 {
		return nil, errors.New("elasticsearch: no addresses: set elasticsearch.addresses, e.g. https://127.0.0.1:9200")
	}
	for _, a := range o.Addresses {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("elasticsearch: address %q must be an http:// or https:// URL", redact.URL(a))
		}
	}
	if o.DataStream == "" {
		o.DataStream = DefaultDataStream
	}
	if _, _, err := template.ForDataStream(o.DataStream); err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	streams := map[string]bool{}
	for _, ds := range o.Streams {
		if _, err := template.ForStream(ds); err != nil {
			return nil, fmt.Errorf("elasticsearch: %w", err)
		}
		streams[ds] = true
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := o.Transport
	if tr == nil {
		t, err := newTransport(o, log)
		if err != nil {
			return nil, err
		}
		tr = t
	}
	// Credentials in an address (https://user:pass@host) become basic
	// auth, as elastictransport would use them, and the URLs handed to the
	// library carry no userinfo: nothing it prints can hold the password.
	urls := make([]*url.URL, len(o.Addresses))
	var userinfo *url.Userinfo
	for i, a := range o.Addresses {
		urls[i], _ = url.Parse(a)
		if u := urls[i].User; u != nil {
			if userinfo != nil && userinfo.String() != u.String() {
				return nil, errors.New("elasticsearch: addresses carry different credentials; use one api_key or username/password for the cluster")
			}
			userinfo = u
			urls[i].User = nil
		}
	}
	if userinfo != nil {
		o.APIKey = ""
		o.Username = userinfo.Username()
		o.Password, _ = userinfo.Password()
	}
	if o.APIKey != "" || o.Username != "" {
		for _, u := range urls {
			if u.Scheme == "http" {
				log.Warn("elasticsearch: credentials over http:// are sent unencrypted, with every event; use https://", "address", u.String())
			}
		}
	}
	topts := []elastictransport.Option{
		elastictransport.WithURLs(urls...),
		elastictransport.WithTransport(tr),
		// gzip level 1, as libbeat's output.elasticsearch compression_level
		// default: most of the size win for a fraction of the CPU.
		elastictransport.WithCompression(gzip.BestSpeed),
		// The shipper owns retries and backoff: one attempt per Send.
		elastictransport.WithDisableRetry(),
	}
	switch {
	case o.APIKey != "":
		topts = append(topts, elastictransport.WithAPIKey(o.APIKey))
	case o.Username != "":
		topts = append(topts, elastictransport.WithBasicAuth(o.Username, o.Password))
	}
	// tls.ca_fingerprint is checked by tlspin in the transport, never by
	// elastictransport's WithCertificateFingerprint: that one accepts any
	// chain that merely contains the pinned certificate.
	tp, err := elastictransport.NewClient(topts...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: transport: %w", err)
	}
	client := &productChecked{tp: tp}
	s := &Sink{client: client, ds: o.DataStream, streams: streams, timeout: o.Timeout, log: log, templatePending: o.SetupTemplate}
	if o.SetupTemplate {
		if err := s.installTemplate(ctx); err != nil {
			if sinks.IsPermanent(err) {
				return nil, err
			}
			log.Warn("elasticsearch: index template not installed yet; will retry before the first bulk request",
				"data_stream", s.ds, "err", err)
		}
	}
	return s, nil
}

// newTransport is a clone of http.DefaultTransport whose TLS connections
// are verified by tlspin (pinning, verification_mode), directly or through
// a proxy.
func newTransport(o Options, log *slog.Logger) (http.RoundTripper, error) {
	mode := o.VerificationMode
	if o.InsecureSkipVerify {
		if mode != "" && mode != tlspin.ModeNone {
			return nil, fmt.Errorf("elasticsearch: tls.insecure_skip_verify contradicts tls.verification_mode %q; remove one", mode)
		}
		mode = tlspin.ModeNone
	}
	v, err := tlspin.New(tlspin.Options{CAFile: o.CAFile, CAFingerprint: o.CAFingerprint, Mode: mode, Logger: log, Component: "elasticsearch"})
	if err != nil {
		return nil, err
	}
	if v.Mode() == tlspin.ModeNone {
		log.Warn("elasticsearch: TLS certificate verification is off (verification_mode none): anyone on the path can read the credentials and the events")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	return v.Transport(t), nil
}

// Templates returns the index templates the sink installs: one for its
// DataStream and one for each of Streams, each once.
func (s *Sink) Templates() []template.IndexTemplate {
	names := append([]string{s.ds}, sortedKeys(s.streams)...)
	seen := map[string]bool{}
	var out []template.IndexTemplate
	for _, ds := range names {
		t, err := template.ForStream(ds)
		if err != nil || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// installTemplate PUTs, in order, the ILM policy, the component template
// with the mappings, the ingest pipeline that sets event.ingested, and an
// index template per stream naming that pipeline as default_pipeline. Each
// PUT is idempotent.
func (s *Sink) installTemplate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := esapi.ILMPutLifecycleRequest{Policy: template.PolicyName, Body: bytes.NewReader(template.ILMPolicy())}.Do(ctx, s.client)
	if err := s.checkSetup(res, err, "put ILM policy "+template.PolicyName); err != nil {
		return err
	}
	res, err = esapi.ClusterPutComponentTemplateRequest{Name: template.ComponentName, Body: bytes.NewReader(template.ComponentTemplate())}.Do(ctx, s.client)
	if err := s.checkSetup(res, err, "put component template "+template.ComponentName); err != nil {
		return err
	}
	res, err = esapi.IngestPutPipelineRequest{PipelineID: template.PipelineName, Body: bytes.NewReader(template.Pipeline())}.Do(ctx, s.client)
	if err := s.checkSetup(res, err, "put ingest pipeline "+template.PipelineName); err != nil {
		return err
	}
	var names []string
	for _, t := range s.Templates() {
		res, err = esapi.IndicesPutIndexTemplateRequest{Name: t.Name, Body: bytes.NewReader(t.Body())}.Do(ctx, s.client)
		if err := s.checkSetup(res, err, "put index template "+t.Name); err != nil {
			return err
		}
		names = append(names, t.Name)
	}
	s.mu.Lock()
	s.templatePending = false
	s.mu.Unlock()
	s.log.Info("elasticsearch: ILM policy, component template, ingest pipeline and index templates installed",
		"templates", names, "pipeline", template.PipelineName, "policy", template.PolicyName)
	return nil
}

func (s *Sink) checkSetup(res *esapi.Response, err error, what string) error {
	if err != nil {
		return fmt.Errorf("elasticsearch: %s: %w", what, err)
	}
	defer drain(res.Body)
	if res.StatusCode < 300 {
		return nil
	}
	rerr := readRequestError(res)
	if retryableStatus(res.StatusCode) {
		s.logAuth(res.StatusCode, rerr)
		return fmt.Errorf("elasticsearch: %s: %w", what, rerr)
	}
	return sinks.Permanent(fmt.Errorf("elasticsearch: %s: %w", what, rerr))
}

// retryableStatus says whether a whole-request status can succeed later.
// 401 and 403 are retryable on purpose: an operator can fix a key or a role
// without the events being dead-lettered meanwhile; they are logged at Error.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusTooManyRequests, code >= 500,
		code == http.StatusUnauthorized, code == http.StatusForbidden,
		code == http.StatusNotFound, code == http.StatusRequestTimeout:
		return true
	}
	return false
}

func (s *Sink) logAuth(code int, err error) {
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		s.log.Error("elasticsearch: authentication or authorization failed; check api_key or username/password and the role's privileges on the data stream (events are kept and retried)",
			"status", code, "data_stream", s.ds, "err", err)
	}
}

// Send writes b with one Bulk request (more only when Elasticsearch answers
// 413 and the batch is split). See sinks.Sink for the meaning of the
// results: per-item 429/5xx are retryable Failures, other per-item 4xx are
// Permanent Failures carrying *ItemError, and 409 on create counts as
// delivered.
func (s *Sink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	var res sinks.Result
	if b == nil || len(b.Events) == 0 {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	s.mu.Lock()
	pending := s.templatePending
	s.mu.Unlock()
	if pending {
		if err := s.installTemplate(ctx); err != nil {
			return res, fmt.Errorf("elasticsearch: index template not installed: %w", err)
		}
	}
	idx := make([]int, 0, len(b.Events))
	for i := range b.Events {
		if err := checkEvent(&b.Events[i]); err != nil {
			res.Failures = append(res.Failures, sinks.Failure{Index: i, Err: sinks.Permanent(err)})
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return res, nil
	}
	fails, err := s.bulk(ctx, b.Events, idx, false)
	if err != nil {
		return sinks.Result{}, err
	}
	res.Failures = append(res.Failures, fails...)
	return res, nil
}

// checkEvent refuses what cannot be framed as one NDJSON line.
func checkEvent(e *sinks.Event) error {
	if e.ID == "" {
		return errors.New("elasticsearch: event has no event.id")
	}
	if len(e.Doc) == 0 || e.Doc[0] != '{' {
		return errors.New("elasticsearch: document is not a JSON object")
	}
	if bytes.IndexByte(e.Doc, '\n') >= 0 {
		return errors.New("elasticsearch: document contains a raw newline and cannot be framed as NDJSON")
	}
	return nil
}

// bulk sends events[idx...] in one request. split is true inside a 413
// split, where a request-level error becomes per-item failures so the halves
// already delivered are not reported as undelivered.
func (s *Sink) bulk(ctx context.Context, events []sinks.Event, idx []int, split bool) ([]sinks.Failure, error) {
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer s.bufs.Put(buf)
	for _, i := range idx {
		target := ""
		if ds, ok := schema.DataStreamOf(events[i].Doc); ok && ds != s.ds && s.streams[ds] {
			target = ds
		}
		writeAction(buf, target, events[i].ID)
		buf.Write(events[i].Doc)
		buf.WriteByte('\n')
	}
	// Compression inside the transport does not watch ctx: do not start it
	// for a context that has already ended.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := esapi.BulkRequest{Index: s.ds, Body: bytes.NewReader(buf.Bytes())}.Do(rctx, s.client)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return s.requestFailed(idx, split, fmt.Errorf("elasticsearch: bulk request: %w", err))
	}
	defer drain(resp.Body)
	switch {
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		if len(idx) == 1 {
			return []sinks.Failure{{Index: idx[0], Err: sinks.Permanent(&ItemError{Status: 413, Type: "request_entity_too_large",
				Reason: fmt.Sprintf("a single document of %d bytes exceeds http.max_content_length", len(events[idx[0]].Doc))})}}, nil
		}
		s.log.Debug("elasticsearch: 413, splitting batch", "events", len(idx))
		drain(resp.Body)
		half := len(idx) / 2
		f1, err := s.bulk(ctx, events, idx[:half], true)
		if err != nil {
			return nil, err
		}
		f2, err := s.bulk(ctx, events, idx[half:], true)
		if err != nil {
			return nil, err
		}
		return append(f1, f2...), nil
	case resp.StatusCode >= 300:
		rerr := readRequestError(resp)
		if retryableStatus(resp.StatusCode) {
			s.logAuth(resp.StatusCode, rerr)
			return s.requestFailed(idx, split, fmt.Errorf("elasticsearch: bulk: %w", rerr))
		}
		return s.requestFailed(idx, split, sinks.Permanent(fmt.Errorf("elasticsearch: bulk: %w", rerr)))
	}
	return s.classify(resp.Body, idx, split)
}

func (s *Sink) requestFailed(idx []int, split bool, err error) ([]sinks.Failure, error) {
	if !split {
		return nil, err
	}
	f := make([]sinks.Failure, len(idx))
	for k, i := range idx {
		f[k] = sinks.Failure{Index: i, Err: err}
	}
	return f, nil
}

type bulkResponse struct {
	Errors bool       `json:"errors"`
	Items  []bulkItem `json:"items"`
}

type bulkItem struct {
	Create *itemResult `json:"create"`
}

type itemResult struct {
	Status int        `json:"status"`
	Error  *errorBody `json:"error"`
}

type errorBody struct {
	Type     string     `json:"type"`
	Reason   string     `json:"reason"`
	CausedBy *errorBody `json:"caused_by"`
}

func (e *errorBody) text() (typ, reason string) {
	if e == nil {
		return "", ""
	}
	reason = e.Reason
	if e.CausedBy != nil && e.CausedBy.Reason != "" {
		reason += " (caused by " + e.CausedBy.Type + ": " + e.CausedBy.Reason + ")"
	}
	return e.Type, reason
}

// classify maps each item to libbeat's outcomes: < 300 acked; 409 on create
// acked (the document is already there); 429 and 5xx retryable; any other
// status permanent.
func (s *Sink) classify(body io.Reader, idx []int, split bool) ([]sinks.Failure, error) {
	var br bulkResponse
	if err := json.NewDecoder(body).Decode(&br); err != nil {
		return s.requestFailed(idx, split, fmt.Errorf("elasticsearch: decode bulk response: %w", err))
	}
	if len(br.Items) != len(idx) {
		return s.requestFailed(idx, split, fmt.Errorf("elasticsearch: bulk response has %d items for %d actions", len(br.Items), len(idx)))
	}
	var fails []sinks.Failure
	for k, it := range br.Items {
		r := it.Create
		if r == nil {
			fails = append(fails, sinks.Failure{Index: idx[k], Err: errors.New("elasticsearch: bulk item without a create result")})
			continue
		}
		switch {
		case r.Status >= 200 && r.Status < 300:
		case r.Status == http.StatusConflict:
			// Duplicate of a document already indexed: delivered.
		default:
			typ, reason := r.Error.text()
			ie := &ItemError{Status: r.Status, Type: typ, Reason: reason}
			var err error = ie
			if r.Status != http.StatusTooManyRequests && r.Status < 500 {
				err = sinks.Permanent(ie)
			}
			fails = append(fails, sinks.Failure{Index: idx[k], Err: err})
		}
	}
	return fails, nil
}

// writeAction writes {"create":{"_id":ID}} and a newline, or, for a
// document that names another of the sink's streams,
// {"create":{"_index":TARGET,"_id":ID}}: the action's _index overrides the
// URL's target (/<data stream>/_bulk), as the Bulk API documents. target
// is a stream name the sink checked (schema.DataStreamOf allows no quote or
// backslash).
func writeAction(buf *bytes.Buffer, target, id string) {
	buf.WriteString(`{"create":{`)
	if target != "" {
		buf.WriteString(`"_index":"`)
		buf.WriteString(target)
		buf.WriteString(`",`)
	}
	buf.WriteString(`"_id":`)
	safe := true
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			safe = false
			break
		}
	}
	if safe {
		buf.WriteByte('"')
		buf.WriteString(id)
		buf.WriteByte('"')
	} else {
		q, _ := json.Marshal(id)
		buf.Write(q)
	}
	buf.WriteString("}}\n")
}

func readRequestError(res *esapi.Response) *RequestError {
	re := &RequestError{Status: res.StatusCode}
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(raw, &body) == nil && len(body.Error) > 0 {
		var eb errorBody
		if json.Unmarshal(body.Error, &eb) == nil && eb.Type != "" {
			re.Type, re.Reason = eb.text()
		} else {
			var s string
			if json.Unmarshal(body.Error, &s) == nil {
				re.Reason = s
			}
		}
	}
	return re
}

func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	_ = r.Close()
}

// Close releases the client's connections.
func (s *Sink) Close(ctx context.Context) error {
	return s.client.tp.Close(ctx)
}

// errNotElasticsearch is the answer when a server lacks the product header.
var errNotElasticsearch = errors.New("elasticsearch: the server is not Elasticsearch: its answer lacks the X-Elastic-Product: Elasticsearch header")

// productChecked is the esapi transport: elastictransport plus the product
// check go-elasticsearch's client does (a successful answer must carry
// X-Elastic-Product: Elasticsearch). The sink uses esapi with the transport
// directly, not the elasticsearch.Client, because that package pulls in the
// whole typed API, which takes minutes to compile with -race.
type productChecked struct {
	tp *elastictransport.Client
}

func (p *productChecked) Perform(req *http.Request) (*http.Response, error) {
	res, err := p.tp.Perform(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 && res.Header.Get("X-Elastic-Product") != "Elasticsearch" {
		drain(res.Body)
		return nil, errNotElasticsearch
	}
	return res, nil
}

var _ sinks.Sink = (*Sink)(nil)
