//go:build !linux

package fanotify

import (
	"context"

	"github.com/fileward/fileward/agent/capture"
)

// Source is the fanotify capture source. Off Linux it cannot be built: New
// returns ErrNotSupported.
type Source struct{}

// New returns ErrNotSupported: fanotify exists only on Linux.
func New(o Options) (*Source, error) {
	_, _, _ = o.forceDescriptor, o.forceLegacyRename, o.childFID
	return nil, ErrNotSupported
}

// Name returns "fanotify".
func (s *Source) Name() string { return "fanotify" }

// Run returns ErrNotSupported.
func (s *Source) Run(ctx context.Context, out *capture.Ring, drops *capture.Drops) error {
	return ErrNotSupported
}

// Stats returns zero counters.
func (s *Source) Stats() Stats { return Stats{} }

// Close does nothing.
func (s *Source) Close() error { return nil }
