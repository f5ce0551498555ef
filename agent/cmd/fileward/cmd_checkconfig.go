package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/fileward/fileward/agent/config"
)

func cmdCheckConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("check-config", stdout, stderr)
	cfg, path, code, done := commandConfig(fs, args, stdout, stderr)
	if done {
		return code
	}
	// Paths that are missing on this host: the config is well-formed, but
	// the agent would not start here.
	if err := cfg.CheckPaths(); err != nil {
		printConfigErrors(err, path, stderr)
		return 2
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// commandConfig gives a command its -c FILE flag (added to flags), parses args
// and loads the config it names: -c, else $FILEWARD_CONFIG, else the
// platform's default path (findConfig). It returns the config and the path
// it was read from. done is true when the command must return code at once:
// 0 after -h/--help, 2 after a bad flag, when no config file is found or
// when the config is invalid; what happened is printed (parseFlags,
// findConfig, loadConfig).
func commandConfig(flags *flag.FlagSet, args []string, stdout, stderr io.Writer) (cfg *config.Config, path string, code int, done bool) {
	flagValue := flags.String("c", "", "config `FILE` (default: $FILEWARD_CONFIG, else "+defaultConfigPath()+")")
	if code, done := parseFlags(flags, args, stdout); done {
		return nil, "", code, true
	}
	path, ok := findConfig(*flagValue, stderr)
	if !ok {
		return nil, "", 2, true
	}
	cfg, code = loadConfig(path, stderr)
	if code != 0 {
		return nil, "", code, true
	}
	return cfg, path, 0, false
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
