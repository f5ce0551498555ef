// Package template holds what the Elasticsearch sink installs for
// Fileward's ECS documents: the ILM policy, the component template with
// every mapping (embedded from JSON files beside this code), the ingest
// pipeline that sets event.ingested, and the index template of each data
// stream, composed of them.
//
// component_template.json maps every field the schema encoder writes
// (keyword, wildcard, constant_keyword, date, long and boolean types as ECS
// defines them); a test checks that against the encoder's field list and
// regenerates it with -update. ilm_policy.json is the default lifecycle.
//
// It must not import agent/ packages or talk to Elasticsearch: the
// Elasticsearch sink installs these bodies.
package template
