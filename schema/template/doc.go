// Package template holds the Elasticsearch index template and ILM policy for
// Fileward's ECS documents, embedded from JSON files beside this code, and
// the helpers that tailor them to a data stream name.
//
// index_template.json maps every field the schema encoder writes (keyword,
// ip, date, long and boolean types as ECS defines them); a test checks that
// against the encoder's field list. ilm_policy.json is the default lifecycle.
//
// It must not import agent/ packages or talk to Elasticsearch: the
// Elasticsearch sink installs these bodies.
package template
