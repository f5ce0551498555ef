//go:build !linux

package main

import (
	"context"
	"fmt"
	"io"
)

func cmdLinuxSample(_ context.Context, _ []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "linux-sample: needs Linux (fanotify)")
	return 1
}
