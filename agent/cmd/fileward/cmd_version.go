package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/fileward/fileward/schema"
)

func cmdVersion(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "fileward %s\ncommit %s\ngo %s %s/%s\necs %s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, schema.ECSVersion)
	return 0
}
