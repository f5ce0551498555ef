package main

import (
	"bytes"
	"strings"
	"testing"
)

// A go test -json stream with a pass, a failed subtest, a platform skip and a
// skip for another reason.
const stream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: fanotify needs root (CI runs as root)\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: kcat not installed\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestD/sub","Output":"    d_test.go:7: got 3, want 4\n"}
{"Action":"fail","Package":"p","Test":"TestD/sub"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p"}
{"Action":"output","Package":"q","Output":"ok  \tq\t0.2s\n"}
{"Action":"pass","Package":"q"}
`

func TestReport(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out, buf: map[key][]string{}}
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if code := r.finish(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	got := out.String()
	for _, want := range []string{
		"d_test.go:7: got 3, want 4",
		"FAIL\tp\t0.1s",
		"ok  \tq\t0.2s",
		"SKIP p TestB [platform]: b_test.go:9: fanotify needs root (CI runs as root)",
		"SKIP p TestC [NOT ALLOWED]: c_test.go:3: kcat not installed",
		"tests: 1 passed, 1 failed, 2 skipped",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestA") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
}

func TestPlatformSkipsOnlyPass(t *testing.T) {
	r := &report{out: &bytes.Buffer{}, buf: map[key][]string{}}
	r.handle(event{Action: "output", Package: "p", Test: "T", Output: "    x.go:1: needs root\n"})
	r.handle(event{Action: "skip", Package: "p", Test: "T"})
	r.handle(event{Action: "pass", Package: "p", Test: "U"})
	if code := r.finish(); code != 0 {
		t.Errorf("a platform skip failed the run: exit %d", code)
	}
}

func TestCoverTable(t *testing.T) {
	in := []byte("\tgithub.com/fileward/fileward/agent/spool\t\tcoverage: 91.3% of statements\n" +
		"\tgithub.com/fileward/fileward/agent/collect\t\tcoverage: 80.0% of statements\n" +
		"\tgithub.com/fileward/fileward/sinks/sinktest\t\tcoverage: 10.0% of statements\n" +
		"some other line\n")
	pkgs := parsePercent(in)
	if len(pkgs) != 3 || pkgs[0].pkg != "agent/collect" || pkgs[2].ships {
		t.Fatalf("parsed %+v", pkgs)
	}
	table, low := renderCover(pkgs, "2026-12-02")
	if len(low) != 1 || low[0] != "agent/collect 80.0%" {
		t.Errorf("below the floor: %v", low)
	}
	for _, want := range []string{"| `agent/spool` | 91.3% | yes | met |", "| `agent/collect` | 80.0% | yes | **below** |", "| `sinks/sinktest` | 10.0% | no | n/a |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	doc, err := replaceSection("# T\n"+coverBegin+"\nold\n"+coverEnd+"\nrest\n", table)
	if err != nil || strings.Contains(doc, "old") || !strings.Contains(doc, "rest") || !strings.Contains(doc, "agent/spool") {
		t.Errorf("section not replaced: %v\n%s", err, doc)
	}
	if _, err := replaceSection("no markers", table); err == nil {
		t.Error("a document without markers was accepted")
	}
}
