package usercache

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
)

// Platform resolves through Directory Services with dscacheutil(1), since
// a cgo-free os/user reads only /etc/passwd and /etc/group on macOS.
func Platform(ctx context.Context, k Kind, id uint32) (string, error) {
	args := []string{"-q", "user", "-a", "uid", strconv.FormatUint(uint64(id), 10)}
	if k == Group {
		args = []string{"-q", "group", "-a", "gid", strconv.FormatUint(uint64(id), 10)}
	}
	out, err := exec.CommandContext(ctx, "/usr/bin/dscacheutil", args...).Output()
	if err != nil {
		return "", err
	}
	return ParseDscacheutil(out)
}

// ParseDscacheutil returns the first "name: X" of dscacheutil -q output.
func ParseDscacheutil(out []byte) (string, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "name: "); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errNoName
}
