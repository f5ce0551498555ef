// Package schema owns the ECS document that Fileward emits: the Event value
// that capture sources fill, the enums shared by every layer (actions,
// providers, loss reasons), the append-only encoder that turns an Event into
// one ECS JSON line, the field list and the Elasticsearch index template.
//
// The encoder (NewEncoder, Encoder.Append, AppendLoss, AppendHeartbeat)
// writes JSON by hand into a caller's buffer with no allocation per event,
// in a fixed field order, with deterministic ids (AppendID). DecodeECS reads
// one of those documents back into an Event for replay and conversion.
// Fields lists every field the encoders can write. docs/ecs.md describes the
// documents field by field.
//
// It must not import anything under agent/ or sinks/, and it holds no
// mutable package-level state.
package schema
