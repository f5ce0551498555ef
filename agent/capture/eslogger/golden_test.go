package eslogger

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fileward/fileward/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/parse.golden from the current parser")

const (
	goldenFile = "testdata/golden/parse.golden"
	trickyFile = "testdata/golden/tricky.ndjson"
)

// goldenInputs are every fixture line plus the hand-written tricky lines, each
// with a stable name.
func goldenInputs(t testing.TB) (names []string, lines [][]byte) {
	t.Helper()
	files := append(fixtureFiles(t), trickyFile)
	for _, f := range files {
		for i, l := range readLines(t, f) {
			names = append(names, fmt.Sprintf("%s:%d", goldenName(f), i+1))
			lines = append(lines, l)
		}
	}
	return names, lines
}

// goldenName names an input file in the golden output: "eslogger/real/…" for
// the repository's fixtures, "extra.ndjson" and "golden/tricky.ndjson" for
// this package's own.
func goldenName(f string) string {
	if rest, ok := strings.CutPrefix(f, fixtureDir+"/"); ok {
		return "eslogger/" + rest
	}
	return strings.TrimPrefix(f, "testdata/")
}

// parseResult is one line's complete parser output.
type parseResult struct {
	Src    string        `json:"src"`
	Mapped bool          `json:"mapped"`
	Err    string        `json:"err,omitempty"`
	Event  *schema.Event `json:"event,omitempty"`
}

func resultOf(src string, mapped bool, err error, ev *schema.Event) parseResult {
	r := parseResult{Src: src, Mapped: mapped}
	if err != nil {
		r.Err = err.Error()
	}
	if !reflect.DeepEqual(*ev, schema.Event{}) {
		e := *ev
		r.Event = &e
	}
	return r
}

// TestParseGolden pins the parser's output on every fixture line and on the
// tricky lines (escapes before closing quotes, backslash runs at every 8-byte
// alignment, nested arrays of objects, unicode escapes, unknown keys at every
// level, unusual key orders, duplicate keys, malformed input in parsed and in
// skipped places). The golden file was generated from the parser before the
// throughput work (go test -run TestParseGolden -update) and must not change
// unless the output is meant to change.
func TestParseGolden(t *testing.T) {
	names, lines := goldenInputs(t)
	p := NewParser()
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	for i, l := range lines {
		var ev schema.Event
		mapped, err := p.Parse(l, &ev)
		if err := enc.Encode(resultOf(names[i], mapped, err, &ev)); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats()
	fmt.Fprintf(&got, "stats lines=%d mapped=%d unmapped=%d unknown=%d malformed=%d unknown_names=%v\n",
		st.Lines, st.Mapped, st.Unmapped, st.Unknown, st.Malformed, sortedCounts(st.UnknownByName))
	if *update {
		if err := os.WriteFile(goldenFile, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got.Bytes(), want) {
		if n := len(lines); n < 200 {
			t.Fatalf("only %d golden lines", n)
		}
		return
	}
	gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("golden line %d differs:\n got %s\nwant %s", i+1, g, w)
		}
	}
}

func sortedCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q:%d,", k, m[k])
	}
	return b.String()
}

// compareWithReference parses line with both parsers and fails on any
// difference: mapped, error text (with its offset) or any event field.
func compareWithReference(t testing.TB, name string, p *Parser, ref *refParser, line []byte) {
	t.Helper()
	in := slices.Clone(line)
	var ev, rev schema.Event
	ev.Path, rev.Path = "stale", "stale"
	mapped, err := p.Parse(line, &ev)
	rmapped, rerr := ref.Parse(in, &rev)
	es, res := "", ""
	if err != nil {
		es = err.Error()
	}
	if rerr != nil {
		res = rerr.Error()
	}
	if mapped != rmapped || es != res || !reflect.DeepEqual(ev, rev) {
		t.Fatalf("%s: parser differs from the reference on %q\n got mapped=%v err=%q %+v\nwant mapped=%v err=%q %+v",
			name, line, mapped, es, ev, rmapped, res, rev)
	}
}

func compareStats(t testing.TB, p *Parser, ref *refParser) {
	t.Helper()
	if g, w := p.Stats(), ref.Stats(); !reflect.DeepEqual(g, w) {
		t.Fatalf("stats differ:\n got %+v\nwant %+v", g, w)
	}
}

// TestParseMatchesReference runs the parser and the frozen pre-speed-up
// reference (refparser_test.go) over the golden inputs, over valid rewrites
// of them (keys shuffled, unknown members and nested arrays of objects added,
// strings re-escaped with \/, \uXXXX and surrogate pairs, random whitespace)
// and over byte-level mutations (quotes, backslashes and brackets inserted,
// ranges cut and repeated), and requires identical results.
func TestParseMatchesReference(t *testing.T) {
	names, lines := goldenInputs(t)
	p, ref := NewParser(), newRefParser()
	for i, l := range lines {
		compareWithReference(t, names[i], p, ref, l)
	}
	rng := rand.New(rand.NewPCG(6, 300000))
	n := 4000
	if testing.Short() {
		n = 1000
	}
	valid := 0
	for k := 0; k < n; k++ {
		i := rng.IntN(len(lines))
		var m []byte
		if k%2 == 0 {
			m = rewriteJSON(rng, lines[i])
			if m == nil {
				continue
			}
			valid++
		} else {
			m = mutateBytes(rng, lines[i])
		}
		compareWithReference(t, fmt.Sprintf("variant %d of %s", k, names[i]), p, ref, m)
	}
	if valid < n/4 {
		t.Fatalf("only %d valid rewrites", valid)
	}
	compareStats(t, p, ref)
}

// FuzzParseMatchesReference is the differential fuzz target: any input must
// give the same result from the parser and from the frozen reference.
func FuzzParseMatchesReference(f *testing.F) {
	_, lines := goldenInputs(f)
	for _, l := range lines {
		f.Add(l)
	}
	p, ref := NewParser(), newRefParser()
	f.Fuzz(func(t *testing.T, line []byte) {
		compareWithReference(t, "fuzz", p, ref, line)
	})
}

// mutateBytes applies one to three byte-level edits.
func mutateBytes(rng *rand.Rand, line []byte) []byte {
	b := slices.Clone(line)
	tokens := []string{`"`, `\`, `\"`, `\\`, `{`, `}`, `[`, `]`, `,`, `:`, `null`, `\u00e9`, `\ud800`, ` `, `7`, `-`, `"x":`, `[{"a":"]"}]`, "\x00", "\xff"}
	for e := 1 + rng.IntN(3); e > 0 && len(b) > 0; e-- {
		at := rng.IntN(len(b) + 1)
		switch rng.IntN(5) {
		case 0, 1:
			tok := tokens[rng.IntN(len(tokens))]
			b = slices.Insert(b, at, []byte(tok)...)
		case 2:
			end := min(len(b), at+1+rng.IntN(16))
			b = slices.Delete(b, at, end)
		case 3:
			end := min(len(b), at+1+rng.IntN(64))
			b = slices.Insert(b, at, slices.Clone(b[at:end])...)
		case 4:
			b = b[:at]
		}
	}
	return b
}

// jnode is an order-preserving JSON tree.
type jnode struct {
	kind byte // '{', '[', 's' string, 'l' literal (number, bool, null)
	keys []string
	vals []*jnode
	str  string
}

func decodeTree(d *json.Decoder) (*jnode, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &jnode{kind: byte(v)}
		for d.More() {
			if n.kind == '{' {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
			}
			c, err := decodeTree(d)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, c)
		}
		if _, err := d.Token(); err != nil {
			return nil, err
		}
		return n, nil
	case string:
		return &jnode{kind: 's', str: v}, nil
	case json.Number:
		return &jnode{kind: 'l', str: v.String()}, nil
	case bool:
		return &jnode{kind: 'l', str: strconv.FormatBool(v)}, nil
	case nil:
		return &jnode{kind: 'l', str: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// rewriteJSON re-encodes a valid line with the same meaning to a JSON reader
// but different bytes: shuffled keys, extra unknown members, other escapes
// and whitespace. It returns nil for a line encoding/json rejects.
func rewriteJSON(rng *rand.Rand, line []byte) []byte {
	if !utf8.Valid(line) {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	root, err := decodeTree(d)
	if err != nil || d.More() {
		return nil
	}
	var b []byte
	ws := func() {
		switch rng.IntN(8) {
		case 0:
			b = append(b, ' ')
		case 1:
			b = append(b, "\t "...)
		}
	}
	var emit func(n *jnode, depth int)
	emitStr := func(s string, key bool) {
		b = append(b, '"')
		for _, r := range s {
			switch {
			case r == '"' || r == '\\':
				b = append(b, '\\', byte(r))
			case r < 0x20:
				b = fmt.Appendf(b, `\u%04x`, r)
			case r == '/':
				if rng.IntN(2) == 0 {
					b = append(b, '\\', '/')
				} else {
					b = append(b, '/')
				}
			case r >= 0x80 && rng.IntN(2) == 0:
				if r > 0xffff {
					r1, r2 := utf16.EncodeRune(r)
					b = fmt.Appendf(b, `\u%04x\u%04X`, r1, r2)
				} else {
					b = fmt.Appendf(b, `\u%04X`, r)
				}
			case !key && r < 0x80 && rng.IntN(40) == 0:
				b = fmt.Appendf(b, `\u%04x`, r)
			case key && rng.IntN(400) == 0:
				b = fmt.Appendf(b, `\u%04x`, r) // an escaped key no longer matches
			default:
				b = utf8.AppendRune(b, r)
			}
		}
		b = append(b, '"')
	}
	unknown := func(depth int) {
		switch rng.IntN(4) {
		case 0:
			b = append(b, `[{"a":[{"b":"}\"]"}]},[[]],{},"\\"]`...)
		case 1:
			b = append(b, `{"path":"\/decoy","stat":{"st_ino":1},"audit_token":[1,2,3,4,5,6,7,8]}`...)
		case 2:
			b = append(b, `-1.5e3`...)
		case 3:
			b = append(b, `"\\\"\u00e9\/"`...)
		}
	}
	emit = func(n *jnode, depth int) {
		switch n.kind {
		case 's':
			emitStr(n.str, false)
		case 'l':
			b = append(b, n.str...)
		case '[':
			b = append(b, '[')
			for i, v := range n.vals {
				if i > 0 {
					b = append(b, ',')
				}
				ws()
				emit(v, depth+1)
			}
			ws()
			b = append(b, ']')
		case '{':
			order := make([]int, len(n.keys))
			for i := range order {
				order[i] = i
			}
			if rng.IntN(3) > 0 {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			}
			b = append(b, '{')
			first := true
			sep := func() {
				if !first {
					b = append(b, ',')
				}
				first = false
				ws()
			}
			for _, i := range order {
				if rng.IntN(10) == 0 {
					sep()
					b = append(b, `"zz_unknown":`...)
					unknown(depth)
				}
				sep()
				emitStr(n.keys[i], true)
				ws()
				b = append(b, ':')
				ws()
				emit(n.vals[i], depth+1)
			}
			ws()
			b = append(b, '}')
		}
	}
	ws()
	emit(root, 0)
	ws()
	return b
}

// BenchmarkParseReference runs the frozen pre-speed-up parser on the same
// lines as BenchmarkParse: the same-run baseline on a noisy machine.
func BenchmarkParseReference(b *testing.B) {
	benchParse(b, newRefParser(), readLines(b, fixtureDir+"/synthesized/file-events.ndjson"))
}

// TestKindOfMatchesTable: the switch in kindOf agrees with eventKinds for
// every known name and for unknown ones.
func TestKindOfMatchesTable(t *testing.T) {
	for name, k := range eventKinds {
		if got := kindOf([]byte(name)); got != k {
			t.Errorf("kindOf(%q) = %d, want %d", name, got, k)
		}
	}
	for _, name := range []string{"", "opem", "future_thing", "OPEN", "open "} {
		if got := kindOf([]byte(name)); got != kindUnknown {
			t.Errorf("kindOf(%q) = %d, want unknown", name, got)
		}
	}
}
