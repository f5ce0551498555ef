package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/fileward/fileward/schema"
)

func cmdVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("version", stdout, stderr)
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	v, c := buildVersion()
	fmt.Fprintf(stdout, "fileward %s\ncommit %s\ngo %s %s/%s\necs %s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH, schema.ECSVersion)
	return 0
}
