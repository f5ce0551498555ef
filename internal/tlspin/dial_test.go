package tlspin_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// dialTo is a DialContext that connects to addr whatever the request's
// host, as a DNS entry naming the server would.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// connectProxy is an HTTP proxy that tunnels CONNECT requests.
type connectProxy struct {
	*httptest.Server
	tunnels atomic.Int64
}

func newConnectProxy(t *testing.T) *connectProxy {
	p := &connectProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		p.tunnels.Add(1)
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { io.Copy(up, rw); up.Close() }()
		io.Copy(conn, bufio.NewReader(up))
		conn.Close()
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *connectProxy) url() *url.URL {
	u, _ := url.Parse(p.URL)
	return u
}
