// Command testreport reads `go test -json` on standard input and prints what a
// plain `go test` prints (each package's ok or FAIL line, and the output of
// every failed test), then every skipped test with its reason, then one
// closing line: "tests: N passed, N failed, N skipped".
//
// It exits 1 when a test or a build failed, or when a test skipped for a
// reason that is not a platform reason (not root, not this OS, -short): in
// CI every test that can run must run. The allowed reasons are in
// allowedSkip; docs/testing.md lists them.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// The second mode, -cover FILE -doc FILE, turns `go tool covdata percent`
// output into the coverage table of docs/testing.md (between the markers
// coverBegin and coverEnd) and exits 1 when a package that ships to users is
// below coverFloor percent of statements.

// allowedSkip matches the reasons for which a test may skip: the platform it
// runs on cannot run it. Anything else is a test that did not run.
var allowedSkip = regexp.MustCompile(`(?i)needs root|requires root|not root|only on (linux|darwin|macos)|not on (linux|darwin|macos)|testing\.Short|-short`)

type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

type key struct{ pkg, test string }

type skip struct {
	name, reason string
	allowed      bool
}

type report struct {
	out                    io.Writer
	buf                    map[key][]string
	passed, failed, broken int
	skips                  []skip
}

func main() {
	cover := flag.String("cover", "", "`go tool covdata percent` output to turn into a table")
	doc := flag.String("doc", "", "with -cover: the Markdown file whose coverage section is rewritten")
	flag.Parse()
	if *cover != "" {
		os.Exit(coverTable(*cover, *doc))
	}
	r := &report{out: os.Stdout, buf: map[key][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
		os.Exit(2)
	}
	os.Exit(r.finish())
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not test2json: a build error from the go command itself.
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.handle(e)
	}
	return sc.Err()
}

func (r *report) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output":
		r.buf[k] = append(r.buf[k], e.Output)
	case "build-output":
		fmt.Fprint(r.out, e.Output)
	case "build-fail":
		r.broken++
	case "pass", "fail", "skip":
		lines := r.buf[k]
		delete(r.buf, k)
		if e.Test == "" {
			r.packageDone(e.Action, lines)
			return
		}
		switch e.Action {
		case "pass":
			r.passed++
		case "fail":
			r.failed++
			for _, l := range lines {
				fmt.Fprint(r.out, l)
			}
		case "skip":
			reason := skipReason(lines)
			r.skips = append(r.skips, skip{e.Package + " " + e.Test, reason, allowedSkip.MatchString(reason)})
		}
	}
}

// packageDone prints a package's closing lines as plain go test does: only
// the ok line when it passed, everything it printed outside a test when it
// failed (a panic, a timeout, TestMain's output).
func (r *report) packageDone(action string, lines []string) {
	for _, l := range lines {
		if action == "fail" || strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?") {
			fmt.Fprint(r.out, l)
		}
	}
	if action == "fail" {
		r.broken++
	}
}

// skipReason is what the test logged before it skipped, without the run and
// skip markers.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " | ")
}

func (r *report) finish() int {
	code := 0
	if len(r.skips) > 0 {
		sort.Slice(r.skips, func(i, j int) bool { return r.skips[i].name < r.skips[j].name })
		fmt.Fprintf(r.out, "\nskipped tests:\n")
		for _, s := range r.skips {
			mark := "platform"
			if !s.allowed {
				mark = "NOT ALLOWED"
				code = 1
			}
			fmt.Fprintf(r.out, "  SKIP %s [%s]: %s\n", s.name, mark, s.reason)
		}
		if code != 0 {
			fmt.Fprintln(r.out, "a test skipped for a reason other than its platform (see docs/testing.md): every test that can run here must run")
		}
	}
	if r.failed > 0 || r.broken > 0 {
		code = 1
	}
	fmt.Fprintf(r.out, "\ntests: %d passed, %d failed, %d skipped\n", r.passed, r.failed, len(r.skips))
	if r.broken > 0 && r.failed == 0 {
		fmt.Fprintf(r.out, "%d package(s) failed outside any test (build error, panic or timeout)\n", r.broken)
	}
	return code
}
