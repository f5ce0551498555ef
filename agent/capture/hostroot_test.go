package capture

import "testing"

// TestStripHostRoot: a path under the host root loses the prefix, the root
// itself becomes "/", and a path that merely starts with the same bytes
// (/hostile under /host) or is shorter stays as it is.
func TestStripHostRoot(t *testing.T) {
	for _, c := range []struct{ root, p, want string }{
		{"", "/etc/passwd", "/etc/passwd"},
		{"/", "/etc/passwd", "/etc/passwd"},
		{"/host", "/host/etc/passwd", "/etc/passwd"},
		{"/host", "/host", "/"},
		{"/host", "/hostile/x", "/hostile/x"},
		{"/host", "/hos", "/hos"},
		{"/host", "/other/host/x", "/other/host/x"},
		{"/host", "", ""},
	} {
		if got := StripHostRoot(c.root, c.p); got != c.want {
			t.Errorf("StripHostRoot(%q, %q) = %q, want %q", c.root, c.p, got, c.want)
		}
	}
}
