package redact

import (
	"strings"
	"testing"
	"unicode"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://elastic:s3cr3t@es.example:9200":         "http://elastic:***@es.example:9200",
		"https://elastic:p%40ss:w@10.0.0.1:9200/prefix": "https://elastic:***@10.0.0.1:9200/prefix",
		"https://token@es.example":                      "https://***@es.example",
		"https://es.example:9200":                       "https://es.example:9200",
		"ftp://user:pw@host":                            "ftp://user:***@host",
		"http://user:pw@host:notaport":                  "http://user:***@host:notaport",
		"es.example:9200":                               "es.example:9200",
		"http://user:pa ss@host:9200/%zz":               "http://user:***@host:9200/%zz",
		"http://elastic:s3cr3t@[::1]:9200?x=1#y":        "http://elastic:***@[::1]:9200?x=1#y",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	in := `Post "http://elastic:s3cr3t@127.0.0.1:9200/_bulk": dial tcp; also https://tok@h and user@example.com`
	got := Text(in)
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, "tok@") {
		t.Fatalf("Text leaked: %s", got)
	}
	if !strings.Contains(got, "http://elastic:***@127.0.0.1:9200/_bulk") || !strings.Contains(got, "user@example.com") {
		t.Fatalf("Text = %s", got)
	}
}

func FuzzURL(f *testing.F) {
	f.Add("elastic", "SECRETPW1", "host:9200/x")
	f.Add("a:b", "SECRETPW2", "c@d/e")
	f.Fuzz(func(t *testing.T, user, secret, rest string) {
		if len(secret) < 8 || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" ||
			strings.Contains(user, secret) || strings.Contains(rest, secret) ||
			strings.ContainsAny(user, "/?#@") ||
			strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz0123456789.:/-@[]") != "" {
			return
		}
		addr := "http://" + user + ":" + secret + "@" + rest
		if out := URL(addr); strings.Contains(out, secret) {
			t.Fatalf("URL(%q) = %q keeps the password", addr, out)
		}
		if out := Text("error: " + addr); strings.Contains(out, secret) && !strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || unicode.IsSpace(r) || strings.ContainsRune(`"'<>`, r) }) {
			t.Fatalf("Text(%q) = %q keeps the password", addr, out)
		}
	})
}
