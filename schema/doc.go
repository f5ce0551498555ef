// Package schema owns the ECS document that Fileward emits: the Event value
// that capture sources fill, the enums shared by every layer (actions,
// providers, loss reasons), the append-only encoder that turns an Event into
// one ECS JSON line, the field list and the Elasticsearch index template.
//
// It must not import anything under agent/ or sinks/, and it holds no
// mutable package-level state.
package schema
