package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/fileward/fileward/agent/config"
)

func cmdCheckConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "config.example.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, code := loadConfig(*path, stderr); code != 0 {
		return code
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// loadConfig loads path and prints every error; the code is 0 or 2.
func loadConfig(path string, stderr io.Writer) (*config.Config, int) {
	cfg, err := config.Load(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return nil, 2
	}
	printWarnings(stderr, cfg.Warnings)
	return cfg, 0
}

// printWarnings prints config warnings (FILE:LINE: key: warning: ...).
func printWarnings(stderr io.Writer, warns config.Errors) {
	for _, w := range warns {
		fmt.Fprintln(stderr, w.Error())
	}
}
