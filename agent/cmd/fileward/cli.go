package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// helpText is what `fileward help CMD` and `fileward CMD -h` print besides
// the flags: the synopsis, a description and an example.
type helpText struct {
	synopsis string // after "fileward "
	about    string
	example  string
}

var helps = map[string]helpText{
	"run": {"run [-c FILE] [--log-level L] [--log-format F]",
		"Run the agent: capture file events, spool them, ship them to the sinks.\n" +
			"SIGINT/SIGTERM stop it (the spool is drained for agent.shutdown_timeout);\n" +
			"SIGHUP (or `fileward reload`) reloads the config.",
		"fileward run -c /etc/fileward/config.yaml --log-format json"},
	"check-config": {"check-config [-c FILE]",
		"Validate a config file and the paths it names on this host. Prints ok, or\n" +
			"one FILE:LINE: key: reason line per problem (exit 2).",
		"fileward check-config -c /etc/fileward/config.yaml"},
	"convert": {"convert [--from eslogger|ecs] [--host-name N] [--host-id I] [--host-os-type T] [FILE|- ...]",
		"Convert eslogger or ECS NDJSON to ECS NDJSON on standard output. - (or no\n" +
			"FILE) is standard input.",
		"eslogger open close | fileward convert --from eslogger - > events.ndjson"},
	"collect": {"collect [-c FILE]",
		"Move events from Kafka into Elasticsearch (the central tier).",
		"fileward collect -c /etc/fileward/collector.yaml"},
	"spool": {"spool stat|verify|prune [-c FILE]",
		"Inspect the agent's spool. stat and verify read it without changing it and\n" +
			"are safe next to a running agent; verify exits 1 on damage. prune removes\n" +
			"the cursors of sinks no longer in the config (the agent must be stopped).",
		"fileward spool stat -c /etc/fileward/config.yaml"},
	"reload": {"reload [-c FILE]",
		"Ask the agent running on the config's data_dir to reload its config\n" +
			"(sends it SIGHUP; the agent logs the outcome).",
		"fileward reload -c /etc/fileward/config.yaml"},
	"version": {"version", "Print version information (also: fileward --version).", "fileward version"},
	"help":    {"help [COMMAND]", "Show the commands, or one command's help.", "fileward help run"},
}

// newFlags returns a flag set for command name whose -h/--help prints the
// command's help on stdout.
func newFlags(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(stderr, name, fs) }
	return fs
}

// parseFlags parses args. done is true when the command must return code at
// once: 0 after -h/--help (help printed on stdout), 2 after a bad flag.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, done bool) {
	fs.Usage = func() {} // printed below, on the right stream
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout, fs.Name(), fs)
		return 0, true
	case err != nil:
		fmt.Fprintf(fs.Output(), "run `fileward help %s` for its flags\n", strings.Fields(fs.Name())[0])
		return 2, true
	}
	return 0, false
}

// printHelp prints a command's help: synopsis, description, one line per
// flag, an example.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	h, ok := helps[strings.Fields(name)[0]]
	if !ok {
		h = helpText{synopsis: name}
	}
	fmt.Fprintf(w, "usage: fileward %s\n\n%s\n", h.synopsis, h.about)
	if fs != nil {
		var lines []string
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			left := "-" + f.Name
			if len(f.Name) > 1 {
				left = "-" + left
			}
			if arg != "" {
				left += " " + arg
			}
			line := fmt.Sprintf("  %-22s %s", left, usage)
			if f.DefValue != "" && f.DefValue != "false" {
				line += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			lines = append(lines, line)
		})
		if len(lines) > 0 {
			fmt.Fprintf(w, "\nflags:\n%s\n", strings.Join(lines, "\n"))
		}
	}
	if h.example != "" {
		fmt.Fprintf(w, "\nexample:\n  %s\n", h.example)
	}
}

// cmdHelp is `fileward help [COMMAND]`.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		printHelp(stdout, "help", nil)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			// The command prints its own help, flags included.
			return c.run(context.Background(), []string{"-h"}, nil, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "fileward: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// buildVersion is the version and commit: from the linker (make build, git
// describe), else from the module's build info (go install), else "dev".
func buildVersion() (v, c string) {
	v, c = version, commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v, c
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if c == "unknown" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			c = rev + dirty
		}
	}
	return v, c
}

// defaultConfigPath is where run, check-config, collect, spool and reload
// look for their config without -c.
func defaultConfigPath() string {
	if runtime.GOOS == "darwin" {
		return "/usr/local/etc/fileward/config.yaml"
	}
	return "/etc/fileward/config.yaml"
}

// findConfig resolves the config file: -c, else $FILEWARD_CONFIG, else the
// platform's default path if it exists. ok is false, with the reason
// printed, when none is found.
func findConfig(flagValue string, stderr io.Writer) (path string, ok bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if p := os.Getenv("FILEWARD_CONFIG"); p != "" {
		return p, true
	}
	def := defaultConfigPath()
	if _, err := os.Stat(def); err == nil {
		return def, true
	}
	fmt.Fprintf(stderr, "fileward: no config file: give -c FILE, set FILEWARD_CONFIG, or create %s (config.example.yaml is a start)\n", def)
	return "", false
}

// buildInfo is fileward_build_info{version,commit,goversion} 1.
func buildInfo() prometheus.Collector {
	v, c := buildVersion()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "fileward_build_info",
		Help:        "Always 1; its labels say which build of fileward runs.",
		ConstLabels: prometheus.Labels{"version": v, "commit": c, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
