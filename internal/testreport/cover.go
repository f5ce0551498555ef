package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	coverBegin = "<!-- cover:begin -->"
	coverEnd   = "<!-- cover:end -->"
	coverFloor = 85.0
	modulePath = "github.com/fileward/fileward/"
)

// notShipped are the packages that only tests, benchmarks and tools use: the
// coverage floor is for the code users run.
var notShipped = regexp.MustCompile(`^(internal/test|internal/repocheck|bench/|tools/|sinks/sinktest|sinks/elasticsearch/bulktest|deploy)`)

var percentLine = regexp.MustCompile(`^\s*(\S+)\s+coverage:\s+([0-9.]+)% of statements`)

type pkgCover struct {
	pkg     string
	percent float64
	ships   bool
}

// parsePercent reads `go tool covdata percent` output.
func parsePercent(b []byte) []pkgCover {
	var out []pkgCover
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		m := percentLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		p, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(m[1], modulePath)
		out = append(out, pkgCover{name, p, !notShipped.MatchString(name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pkg < out[j].pkg })
	return out
}

// renderCover is the Markdown table, with the packages under the floor named.
func renderCover(pkgs []pkgCover, when string) (string, []string) {
	var b strings.Builder
	var low []string
	fmt.Fprintf(&b, "Measured by `make cover` on %s. Floor for shipped packages: %.0f%% of statements.\n\n", when, coverFloor)
	b.WriteString("| package | statements covered | ships | floor |\n|---|---:|---|---|\n")
	for _, p := range pkgs {
		ships, floor := "no", "n/a"
		if p.ships {
			ships, floor = "yes", "met"
			if p.percent < coverFloor {
				floor = "**below**"
				low = append(low, fmt.Sprintf("%s %.1f%%", p.pkg, p.percent))
			}
		}
		fmt.Fprintf(&b, "| `%s` | %.1f%% | %s | %s |\n", p.pkg, p.percent, ships, floor)
	}
	return b.String(), low
}

// replaceSection puts table between the markers of doc.
func replaceSection(doc, table string) (string, error) {
	i := strings.Index(doc, coverBegin)
	j := strings.Index(doc, coverEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s … %s section", coverBegin, coverEnd)
	}
	return doc[:i+len(coverBegin)] + "\n" + table + doc[j:], nil
}

func coverTable(percentFile, docFile string) int {
	b, err := os.ReadFile(percentFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		return 2
	}
	pkgs := parsePercent(b)
	if len(pkgs) == 0 {
		fmt.Fprintf(os.Stderr, "testreport: no coverage lines in %s\n", percentFile)
		return 2
	}
	table, low := renderCover(pkgs, time.Now().UTC().Format("2006-01-02"))
	fmt.Print(table)
	if docFile != "" {
		d, err := os.ReadFile(docFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			return 2
		}
		out, err := replaceSection(string(d), table)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testreport: %s: %v\n", docFile, err)
			return 2
		}
		if err := os.WriteFile(docFile, []byte(out), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			return 2
		}
	}
	if len(low) > 0 {
		fmt.Printf("below the %.0f%% floor: %s\n", coverFloor, strings.Join(low, ", "))
		return 1
	}
	return 0
}
