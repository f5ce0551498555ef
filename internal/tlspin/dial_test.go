package tlspin_test

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/fileward/fileward/internal/tlspin"
)

// dialAs connects to addr but verifies the server as if host:port had been
// dialled (the name a DNS entry would resolve to the server).
func dialAs(ctx context.Context, v *tlspin.Verifier, network, addr, as string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(as)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{Config: v.Config(host)}
	return d.DialContext(ctx, network, addr)
}
