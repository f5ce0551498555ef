package collect

import (
	"context"
	"net"
	"sync"
	"time"
)

// groupConns dials the consumer group's coordinator connections and can cut
// them. kafka-go's ConsumerGroup.Close does not abort a group request in
// flight: a JoinGroup waits, by design, until every member has rejoined or
// the rebalance timeout has passed (its deadline is the request timeout plus
// the rebalance timeout), a SyncGroup until the leader has assigned (request
// plus session timeout). A collector stopped while a slow rebalance held it
// in JoinGroup therefore waited that long (20 s and more with the defaults)
// before it could leave the group and exit. Cutting the connections fails
// that request at once; kafka-go then leaves the group on a new connection,
// which cut bounds to limit.
type groupConns struct {
	dialer net.Dialer
	limit  time.Duration // the longest deadline of a connection dialed after cut

	mu    sync.Mutex
	conns map[*groupConn]struct{}
	cut   bool
}

func newGroupConns(dialTimeout, limit time.Duration) *groupConns {
	return &groupConns{dialer: net.Dialer{Timeout: dialTimeout}, limit: limit, conns: map[*groupConn]struct{}{}}
}

// DialContext is the group dialer's DialFunc.
func (g *groupConns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := g.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	gc := &groupConn{Conn: c, g: g}
	g.mu.Lock()
	if g.cut {
		gc.until = time.Now().Add(g.limit)
	}
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	if !gc.until.IsZero() {
		if err := c.SetDeadline(gc.until); err != nil {
			c.Close()
			return nil, err
		}
	}
	return gc, nil
}

// cutAll closes the connections open now, so whatever request waits on
// them fails at once, and bounds every connection dialed from now on to
// limit. It returns how many connections it closed.
func (g *groupConns) cutAll() int {
	g.mu.Lock()
	g.cut = true
	open := make([]*groupConn, 0, len(g.conns))
	for c := range g.conns {
		open = append(open, c)
	}
	g.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return len(open)
}

// groupConn is one connection of groupConns; one dialed after cutAll keeps
// no deadline later than until.
type groupConn struct {
	net.Conn
	g     *groupConns
	until time.Time // zero: no bound
}

func (c *groupConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

func (c *groupConn) bound(t time.Time) time.Time {
	if !c.until.IsZero() && (t.IsZero() || t.After(c.until)) {
		return c.until
	}
	return t
}

func (c *groupConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.bound(t)) }
func (c *groupConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.bound(t)) }
func (c *groupConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.bound(t)) }
