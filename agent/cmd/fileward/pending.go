package main

import (
	"context"
	"fmt"
	"io"
)

// pending is the body of a command whose implementation has not landed: it
// says so and fails, rather than pretending to work.
func pending(name string) func(context.Context, []string, io.Reader, io.Writer, io.Writer) int {
	return func(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
		fmt.Fprintf(stderr, "fileward %s: not built yet\n", name)
		return 1
	}
}
