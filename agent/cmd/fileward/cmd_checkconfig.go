package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/fileward/fileward/agent/config"
)

func cmdCheckConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("check-config", stdout, stderr)
	path := fs.String("c", "", "config `FILE` (default: $FILEWARD_CONFIG, else "+defaultConfigPath()+")")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	var ok bool
	if *path, ok = findConfig(*path, stderr); !ok {
		return 2
	}
	cfg, code := loadConfig(*path, stderr)
	if code != 0 {
		return code
	}
	// Paths that are missing on this host: the config is well-formed, but
	// the agent would not start here.
	if err := cfg.CheckPaths(); err != nil {
		printConfigErrors(err, *path, stderr)
		return 2
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// loadConfig loads path and prints every error; the code is 0 or 2.
func loadConfig(path string, stderr io.Writer) (*config.Config, int) {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigErrors(err, path, stderr)
		return nil, 2
	}
	printWarnings(stderr, cfg.Warnings)
	return cfg, 0
}

// printConfigErrors prints each config error on its own line.
func printConfigErrors(err error, path string, stderr io.Writer) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		return
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is said once, first
	}
	fmt.Fprintf(stderr, "%s: cannot read the config: %v\n", path, err)
}

// printWarnings prints config warnings (FILE:LINE: key: warning: ...).
func printWarnings(stderr io.Writer, warns config.Errors) {
	for _, w := range warns {
		fmt.Fprintln(stderr, w.Error())
	}
}
