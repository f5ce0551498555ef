// Package usercache names user and group ids for user.name and group.name
// without ever blocking the caller: a lookup answers from an immutable,
// copy-on-write map, and an id not in it is queued for a background
// goroutine that asks the operating system.
//
// On macOS the agent is built without cgo, and os/user then reads only
// /etc/passwd and /etc/group, which hold none of the accounts Directory
// Services manages (every local user made in System Settings, and every
// network account). So on macOS the resolver runs `dscacheutil -q user -a
// uid N` (and `-q group -a gid N`), which asks Directory Services the way
// getpwuid(3) does. Elsewhere it uses os/user.
package usercache

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Kind says which name space an id is in.
type Kind uint8

const (
	// User ids (uid → user.name).
	User Kind = iota
	// Group ids (gid → group.name).
	Group
)

// Resolver looks one id up. It may block; it runs only on the cache's own
// goroutine. An error or "" means the id has no name.
type Resolver func(ctx context.Context, k Kind, id uint32) (string, error)

// maxNames bounds each map; a full map starts over.
const maxNames = 4096

type request struct {
	k  Kind
	id uint32
}

// Cache is safe for concurrent use. Its zero value is not usable: use New.
type Cache struct {
	names   [2]atomic.Pointer[map[uint32]string]
	queue   chan request
	resolve Resolver
	timeout time.Duration
	log     *slog.Logger
	done    chan struct{}
}

// New starts a cache whose goroutine runs until ctx ends. resolve nil means
// the platform's resolver (Platform).
func New(ctx context.Context, resolve Resolver, log *slog.Logger) *Cache {
	if resolve == nil {
		resolve = Platform
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{queue: make(chan request, 256), resolve: resolve, timeout: 2 * time.Second, log: log, done: make(chan struct{})}
	for k := range c.names {
		m := map[uint32]string{}
		c.names[k].Store(&m)
	}
	go c.run(ctx)
	return c
}

// Name returns the name of id if it is already known, else "" at once; an
// unknown id is then queued (without waiting: a full queue drops the
// request, and a later lookup asks again) so that later events carry it.
func (c *Cache) Name(k Kind, id uint32) string {
	m := *c.names[k].Load()
	if n, ok := m[id]; ok {
		return n
	}
	select {
	case c.queue <- request{k, id}:
	default:
	}
	return ""
}

// Done is closed when the goroutine has stopped.
func (c *Cache) Done() <-chan struct{} { return c.done }

func (c *Cache) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.queue:
			if _, ok := (*c.names[r.k].Load())[r.id]; ok {
				continue // asked twice before the first answer
			}
			rctx, cancel := context.WithTimeout(ctx, c.timeout)
			name, err := c.resolve(rctx, r.k, r.id)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Debug("usercache: no name", "kind", r.k, "id", r.id, "err", err)
				name = ""
			}
			old := *c.names[r.k].Load()
			m := make(map[uint32]string, len(old)+1)
			if len(old) < maxNames {
				for k, v := range old {
					m[k] = v
				}
			}
			m[r.id] = name
			c.names[r.k].Store(&m)
		}
	}
}
