// Command fileward is the one Fileward binary: the agent (run), the central
// collector (collect) and the tools around them (convert, check-config,
// spool, version). Each command lives in its own cmd_*.go file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set by the linker (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
)

// command is one subcommand. run gets the arguments after the command name
// and returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the agent until SIGINT/SIGTERM (SIGHUP reloads the config)", cmdRun},
		{"check-config", "validate a config file", cmdCheckConfig},
		{"convert", "convert eslogger or ECS NDJSON to ECS NDJSON", cmdConvert},
		{"collect", "move events from Kafka into Elasticsearch", cmdCollect},
		{"spool", "inspect the spool: stat, verify; prune old cursors", cmdSpool},
		{"reload", "make the running agent reload its config (SIGHUP)", cmdReload},
		{"version", "print version information", cmdVersion},
		{"help", "show the commands, or one command's help", func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
			return cmdHelp(args, stdout, stderr)
		}},
	}
}

func main() {
	version, commit = buildVersion()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-version", "--version", "-V":
		return cmdVersion(ctx, nil, stdin, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "fileward: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fileward <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nWithout -c, commands read $FILEWARD_CONFIG, else %s.\n", defaultConfigPath())
	fmt.Fprintln(w, "`fileward help COMMAND` (or `fileward COMMAND -h`) shows a command's flags and an example.")
	fmt.Fprintln(w, "`fileward --version` prints the version.")
}
