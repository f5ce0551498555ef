//go:build !linux

package procfs

import (
	"log/slog"
	"time"

	"github.com/fileward/fileward/schema"
)

// Options configures a Cache.
type Options struct {
	Size     int
	Args     bool
	HostID   string
	TTL      time.Duration
	HostRoot string
	Logger   *slog.Logger
}

// Cache enriches events from /proc. Off Linux there is no /proc: Enrich
// always returns false.
type Cache struct{}

// New returns a cache that resolves nothing off Linux.
func New(o Options) *Cache { return &Cache{} }

// Enrich returns false: there is no /proc on this OS.
func (c *Cache) Enrich(ev *schema.Event) bool { return false }

// Close does nothing.
func (c *Cache) Close() {}

// Len returns 0.
func (c *Cache) Len() int { return 0 }
