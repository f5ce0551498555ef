package capture

// StripHostRoot returns p as the host sees it: p without the root prefix
// when p is root itself or lies under it, else p unchanged. root "" or "/"
// leaves every path alone. A containerized agent that sees the host's
// filesystem under root (source.host_root) names paths as the host does.
func StripHostRoot(root, p string) string {
	if root == "" || root == "/" || len(p) < len(root) || p[:len(root)] != root {
		return p
	}
	if len(p) == len(root) {
		return "/"
	}
	if p[len(root)] != '/' {
		return p // /hostile is not under /host
	}
	return p[len(root):]
}
