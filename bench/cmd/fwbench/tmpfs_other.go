//go:build !linux

package main

import "errors"

// mountTmpfs: tmpfs mounts are Linux's; the rows that need one run there.
func mountTmpfs(dir, size string) (func(), error) {
	return nil, errors.New("a tmpfs mount needs Linux")
}
