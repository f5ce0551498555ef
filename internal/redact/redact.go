// Package redact hides credentials in the addresses and messages Fileward
// prints: start-up banner, logs, errors, check-config and /healthz.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password (or a lone user name, which may be a token).
const Mask = "***"

// URL returns addr with the userinfo's password replaced by ***
// (http://elastic:***@host:9200). A userinfo without a password may be a
// token and is masked whole (http://***@host). Anything that does not parse
// as a URL has everything between "://" and the last "@" of its authority
// masked.
func URL(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.Opaque != "" {
		return maskAuthority(addr)
	}
	if u.User == nil {
		return addr
	}
	// Rebuild by hand: url.URL.String would percent-encode the mask.
	auth := Mask
	if _, ok := u.User.Password(); ok {
		auth = u.User.Username() + ":" + Mask
	}
	rest := *u
	rest.User = nil
	s := rest.String()
	pfx := u.Scheme + "://"
	if !strings.HasPrefix(s, pfx) {
		return maskAuthority(addr)
	}
	return pfx + auth + "@" + strings.TrimPrefix(s, pfx)
}

// maskAuthority masks everything before the last '@' of the authority of
// an address url.Parse refused.
func maskAuthority(addr string) string {
	i := strings.Index(addr, "://")
	if i < 0 {
		return Text(addr)
	}
	auth := addr[i+3:]
	end := len(auth)
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		end = j
	}
	k := strings.LastIndexByte(auth[:end], '@')
	if k < 0 {
		return addr
	}
	info := auth[:k]
	if c := strings.IndexByte(info, ':'); c >= 0 {
		return addr[:i+3] + info[:c] + ":" + Mask + auth[k:]
	}
	return addr[:i+3] + Mask + auth[k:]
}

// URLs applies URL to each address.
func URLs(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = URL(a)
	}
	return out
}

// userinfoRe matches scheme://userinfo@ inside free text. The userinfo
// stops at whitespace, quotes, '/', '?', '#' and '@' is its last character
// before the host.
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#"'<>@]+)@`)

// Text masks the userinfo of every URL in s (error messages, health lines).
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfoRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRe.FindStringSubmatch(m)
		info := sub[2]
		if i := strings.IndexByte(info, ':'); i >= 0 {
			return sub[1] + info[:i] + ":" + Mask + "@"
		}
		return sub[1] + Mask + "@"
	})
}
