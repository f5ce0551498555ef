//go:build !(linux && (amd64 || arm64))

package ebpf

import (
	"context"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
)

// Source is the eBPF capture source; it is built for Linux (amd64, arm64)
// only.
type Source struct{}

// Supported says why eBPF capture cannot run here: it is not built.
func Supported() error { return ErrNotSupported }

// New returns ErrNotSupported.
func New(Options) (*Source, error) { return nil, ErrNotSupported }

// Name returns "ebpf".
func (s *Source) Name() string { return "ebpf" }

// Run returns ErrNotSupported.
func (s *Source) Run(context.Context, *capture.Ring, *capture.Drops) error { return ErrNotSupported }

// Close does nothing.
func (s *Source) Close() error { return nil }

// Stats returns zeros.
func (s *Source) Stats() Stats { return Stats{} }

// Enrich does nothing.
func (s *Source) Enrich(*schema.Event) bool { return false }
