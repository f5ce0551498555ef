//go:build !darwin

package usercache

import (
	"context"
	"os/user"
	"strconv"
	"strings"
)

// Platform resolves through os/user (the passwd and group files without
// cgo, NSS with it).
func Platform(_ context.Context, k Kind, id uint32) (string, error) {
	s := strconv.FormatUint(uint64(id), 10)
	if k == Group {
		g, err := user.LookupGroupId(s)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	}
	u, err := user.LookupId(s)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

// ParseDscacheutil returns the first "name: X" of dscacheutil -q output.
// It is here so the macOS parsing is tested on every platform.
func ParseDscacheutil(out []byte) (string, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "name: "); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errNoName
}
