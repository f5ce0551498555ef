package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of the given size ("2g") on dir and returns
// its unmount.
func mountTmpfs(dir, size string) (func(), error) {
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return func() { unix.Unmount(dir, unix.MNT_DETACH) }, nil
}
