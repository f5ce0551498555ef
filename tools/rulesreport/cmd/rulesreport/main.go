// Command rulesreport writes docs/detection-rules.md: which of Elastic's
// prebuilt macOS and Linux file and process rules Fileward's documents can
// satisfy. `make rules-report RULES=/path/to/detection-rules` runs it.
//
//	rulesreport report -rules DIR -commit SHA -o FILE -docs LABEL=NDJSON ... [-pipeline JSON]
//	rulesreport linux-sample -fileward bin/fileward -o NDJSON   (Linux, root)
//	rulesreport check FILE
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fileward/fileward/schema/template"
	"github.com/fileward/fileward/tools/rulesreport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rulesreport report -rules DIR -o FILE -docs LABEL=NDJSON ... [-commit SHA] [-pipeline JSON]")
	fmt.Fprintln(w, "       rulesreport linux-sample -fileward BIN -o NDJSON   (Linux, as root)")
	fmt.Fprintln(w, "       rulesreport check FILE")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "linux-sample":
		return cmdLinuxSample(ctx, args[1:], stderr)
	case "check":
		if len(args) != 2 {
			usage(stderr)
			return 2
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "check: %v\n", err)
			return 1
		}
		doc, err := rulesreport.Check(string(b))
		if err != nil {
			fmt.Fprintf(stderr, "check: %s: %v\n", args[1], err)
			return 1
		}
		for _, s := range doc.Sets {
			fmt.Fprintf(stdout, "%s: %d rules, %d covered, %d not covered\n", s.Key, s.Rules, s.Covered, s.NotCovered)
		}
		return 0
	}
	usage(stderr)
	return 2
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func cmdReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesDir := fs.String("rules", "", "path of an elastic/detection-rules checkout")
	commit := fs.String("commit", "", "the checkout's commit (default: git -C RULES rev-parse HEAD)")
	out := fs.String("o", "", "output markdown file (default: stdout)")
	pipeline := fs.String("pipeline", "builtin", `the ingest pipeline whose set processors add fields at ingest: "builtin" (the one Fileward's sinks install), a JSON file, or "" for none`)
	var docs, defStreams, compatStreams, ingest multi
	fs.Var(&docs, "docs", "LABEL=NDJSON: documents Fileward emitted (repeatable)")
	fs.Var(&defStreams, "default-stream", "data stream documents without data_stream.* go to (repeatable)")
	fs.Var(&compatStreams, "compat-stream", "a defend_compatible data stream (repeatable)")
	fs.Var(&ingest, "ingest-field", "a field set at ingest (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *rulesDir == "" || len(docs) == 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "report: -rules and at least one -docs are required")
		usage(stderr)
		return 2
	}
	if *commit == "" {
		b, err := exec.Command("git", "-C", *rulesDir, "rev-parse", "HEAD").Output()
		if err != nil {
			fmt.Fprintf(stderr, "report: %s is not a git checkout: give its commit with -commit (make: RULES_COMMIT=sha)\n", *rulesDir)
			return 2
		}
		*commit = strings.TrimSpace(string(b))
	}
	inv := rulesreport.NewInventory()
	inv.IngestFields = append(inv.IngestFields, ingest...)
	if *pipeline != "" {
		body := template.Pipeline()
		name := "the builtin pipeline " + template.PipelineName
		if *pipeline != "builtin" {
			b, err := os.ReadFile(*pipeline)
			if err != nil {
				fmt.Fprintf(stderr, "report: %v\n", err)
				return 1
			}
			body, name = b, *pipeline
		}
		fields, err := pipelineSetFields(name, body)
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		inv.IngestFields = append(inv.IngestFields, fields...)
	}
	for _, d := range docs {
		label, path, ok := strings.Cut(d, "=")
		if !ok {
			fmt.Fprintf(stderr, "report: -docs %q: want LABEL=NDJSON\n", d)
			return 2
		}
		n, err := inv.AddFile(label, path)
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		if n == 0 {
			fmt.Fprintf(stderr, "report: %s: no event documents\n", path)
			return 1
		}
	}
	rules, err := rulesreport.LoadRules(*rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	rep := rulesreport.Build(rules, inv, rulesreport.Options{
		Commit:         *commit,
		DefaultStreams: defStreams,
		CompatStreams:  compatStreams,
	})
	var buf strings.Builder
	if err := rep.Write(&buf); err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	if *out == "" {
		io.WriteString(stdout, buf.String())
	} else {
		// Text outside the generated block of an existing file is kept, so
		// the page can carry hand-written sections.
		old, _ := os.ReadFile(*out)
		if err := os.WriteFile(*out, []byte(rulesreport.Splice(string(old), buf.String())), 0o644); err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
	}
	for _, s := range rulesreport.Sets {
		c := rep.Count(s.Key)
		fmt.Fprintf(stderr, "%-15s %4d rules %4d covered %4d not covered\n", s.Key, c.Rules, c.Covered, c.NotCovered)
	}
	return 0
}

// pipelineSetFields returns the fields an ingest pipeline's set processors
// write (the only processors whose effect is certain without running them).
func pipelineSetFields(path string, b []byte) ([]string, error) {
	var p struct {
		Processors []map[string]json.RawMessage `json:"processors"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []string
	for _, proc := range p.Processors {
		raw, ok := proc["set"]
		if !ok {
			continue
		}
		var s struct {
			Field string `json:"field"`
			If    string `json:"if"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%s: set processor: %w", path, err)
		}
		if s.Field != "" {
			out = append(out, s.Field)
		}
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no set processor")
	}
	return out, nil
}

// absPath is filepath.Abs that keeps the input on error.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
