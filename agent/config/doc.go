// Package config loads Fileward's YAML configuration strictly: unknown keys
// are errors, ${VAR} expands from the environment (an unset variable is an
// error), sizes and durations parse, defaults are those of docs/configuration.md, and every
// problem is reported as FILE:LINE: key.path: reason.
//
// It imports nothing internal and holds no package-level mutable state.
package config
