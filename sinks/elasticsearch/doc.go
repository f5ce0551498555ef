// Package elasticsearch is the Elasticsearch sink: one Bulk API request per
// Send, "create" actions into a data stream with _id = event.id, gzip request
// bodies, and libbeat's per-item outcomes (below 300 acked; 409 on create is a
// duplicate and acked; 429 and 5xx retryable; other 4xx permanent, carrying
// the error type and reason for the dead-letter file). An HTTP 413 splits the
// batch in halves, recursively. 401 and 403 are retryable on purpose (an
// operator can fix credentials without losing events) and are logged at Error.
//
// With SetupTemplate, New installs the ILM policy and index template from
// schema/template.
//
// It must not retry or sleep (the shipper owns backoff), must not use
// esutil.BulkIndexer (it cannot confirm a batch on demand), must not import
// agent/ packages, and must never log a secret.
package elasticsearch
