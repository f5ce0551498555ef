// Package telemetry serves /metrics (Prometheus text format, from a registry
// the caller owns) and /healthz, and registers the agent-wide counters that
// read capture's atomic values: events captured, events dropped by reason and
// the ring depth.
//
// It never uses the global Prometheus registry and holds no package-level
// mutable state.
package telemetry
