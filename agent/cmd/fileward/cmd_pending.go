package main

// Commands whose implementations land with their issues. Each prints what is
// missing and fails, rather than pretending to work.

import (
	"context"
	"fmt"
	"io"
)

func pending(name string) func(context.Context, []string, io.Reader, io.Writer, io.Writer) int {
	return func(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
		fmt.Fprintf(stderr, "fileward %s: not built yet\n", name)
		return 1
	}
}

var (
	cmdRun     = pending("run")
	cmdConvert = pending("convert")
	cmdCollect = pending("collect")
	cmdSpool   = pending("spool")
)
