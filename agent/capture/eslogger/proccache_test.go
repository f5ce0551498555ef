package eslogger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"testing"

	"github.com/fileward/fileward/schema"
)

// processSpan returns the offsets of the top-level process object in line.
func processSpan(t testing.TB, line []byte) (start, end int) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		t.Fatal(err)
	}
	raw := top["process"]
	start = bytes.Index(line, raw)
	if len(raw) < 256 || start < 0 || bytes.Count(line, raw) != 1 {
		t.Fatalf("process object not found once (%d bytes)", len(raw))
	}
	return start, start + len(raw)
}

// withLastDigit returns line with the last digit of its process object
// changed: a different process whose first procCacheKeyLen bytes (the
// slot's key) equal the original's.
func withLastDigit(t testing.TB, line []byte) []byte {
	t.Helper()
	start, end := processSpan(t, line)
	b := slices.Clone(line)
	for i := end - 1; i > start+procCacheKeyLen; i-- {
		if '0' <= b[i] && b[i] <= '9' {
			b[i] = '0' + (b[i]-'0'+1)%10
			return b
		}
	}
	t.Fatal("no digit in the process object after the slot's prefix")
	return nil
}

// withSeq returns line with its global_seq_num replaced: another message
// with byte-identical process bytes.
func withSeq(t testing.TB, line []byte, seq int) []byte {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		t.Fatal(err)
	}
	old := top["global_seq_num"]
	i := bytes.Index(line, []byte(`"global_seq_num"`))
	if old == nil || i < 0 {
		t.Fatal("no global_seq_num")
	}
	j := i + bytes.Index(line[i:], old)
	return slices.Concat(line[:j], []byte(fmt.Sprint(seq)), line[j+len(old):])
}

// TestProcessCache parses messages whose process objects repeat, differ,
// and differ only after the bytes that choose the cache slot, with one
// Parser, and checks every event against a Parser without the cache (and
// that the cache was hit, so the check is not vacuous). It also changes
// the returned events (strings, Args appended) between messages: nothing
// the cache holds may change with them.
func TestProcessCache(t *testing.T) {
	demo := readLines(t, "../../cmd/fileward/demo/eslogger-demo.ndjson")
	real := readLines(t, fixtureDir+"/real/exec.macos15.v9.ndjson")
	a, b, c := demo[0], demo[1], real[0]
	if sa, ea := processSpan(t, a); func() bool { sb, eb := processSpan(t, b); return bytes.Equal(a[sa:ea], b[sb:eb]) }() {
		t.Fatal("demo lines 1 and 2 share a process object")
	}
	// av and a, and c and its variants cv[k], differ in their last digit
	// only: they share a set, whose four ways (procCacheWays) hold four of
	// them.
	av := withLastDigit(t, a)
	cv := [][]byte{c}
	for k := 1; k <= 4; k++ {
		cv = append(cv, withLastDigit(t, cv[k-1]))
	}
	// An object is kept on its second miss not long after its first; a
	// variant that differs only after the set's prefix shares the set, and
	// is kept beside it in another way of the set.
	seq := []struct {
		name string
		line []byte
		hit  bool
	}{
		{"a", a, false},
		{"a again, new seq (kept now)", withSeq(t, a, 7), false},
		{"a again", a, true},
		{"b", b, false},
		{"b again (kept now)", withSeq(t, b, 8), false},
		{"a after b", a, true},
		{"a with a changed last digit (its first miss: not kept)", av, false},
		{"a after its variant (still kept)", a, true},
		{"a's variant again (kept now, beside a)", av, false},
		{"a's variant once more", av, true},
		{"a after its variant", a, true},
		{"c (compact real exec)", c, false},
		{"c again (kept now)", withSeq(t, c, 9), false},
		{"c truncated in its process object (not kept)", c[:func() int { s, e := processSpan(t, c); return (s + e) / 2 }()], false},
		{"c after the truncated one", c, true},
		{"c's first variant", cv[1], false},
		{"c's first variant again (kept now: the set's second way)", cv[1], false},
		{"c's second variant", cv[2], false},
		{"c's second variant again (the third way)", cv[2], false},
		{"c's third variant", cv[3], false},
		{"c's third variant again (the fourth way)", cv[3], false},
		{"c after its variants (still kept)", c, true},
		{"c's third variant (still kept)", cv[3], true},
		{"c's fourth variant", cv[4], false},
		{"c's fourth variant again (kept instead of the first: the way used least recently)", cv[4], false},
		{"c's fourth variant once more", cv[4], true},
		{"c's first variant (no longer kept)", cv[1], false},
		{"c (still kept)", c, true},
		{"a once more", a, true},
	}
	// A seed that gives a, b and c sets of their own (it is random).
	p := NewParser()
	for {
		p.pcache = &procCache{seed: maphash.MakeSeed()}
		var sets []*procSet
		for _, l := range [][]byte{a, b, c} {
			s, _ := processSpan(t, l)
			e, _ := p.pcache.set(l[s:])
			sets = append(sets, e)
		}
		if sets[0] != sets[1] && sets[1] != sets[2] && sets[0] != sets[2] {
			break
		}
	}
	for i, st := range seq {
		ref := NewParser()
		ref.noProcCache = true
		var want, got schema.Event
		wm, werr := ref.Parse(st.line, &want)
		var hits0 uint64
		if p.pcache != nil {
			hits0 = p.pcache.hits
		}
		gm, gerr := p.Parse(st.line, &got)
		if gm != wm || fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("%s: mapped %v err %v, want %v %v", st.name, gm, gerr, wm, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: parsed\n %+v\nwant\n %+v", st.name, got, want)
		}
		if hit := p.pcache.hits > hits0; hit != st.hit {
			t.Fatalf("%s (step %d): cache hit %v, want %v", st.name, i, hit, st.hit)
		}
		if werr == nil && want.Process.PID == 0 {
			t.Fatalf("%s: no process decoded", st.name)
		}
		// Whatever the consumer does to its event must not reach the cache.
		got.Process.Executable = "changed"
		got.Process.SigningID = "changed"
		got.Process.PID = -1
		got.Process.Args = append(got.Process.Args, "changed")
		got.Process.Parent.Args = append(got.Process.Parent.Args, "changed")
	}
	if p.pcache.hits != 11 {
		t.Fatalf("hits = %d, want 11", p.pcache.hits)
	}
}

// distinctProcesses returns n messages made from lines whose process
// objects are all different: four non-leading digits of each object are
// rewritten, the last four (atEnd: the variants of one line share all but
// their last bytes, the slowest miss, a compare of the whole object) or the
// first four. Cycled through, they miss the process cache (n ≫ its ways).
func distinctProcesses(b *testing.B, lines [][]byte, n int, atEnd bool) [][]byte {
	b.Helper()
	out := make([][]byte, 0, n)
	seen := map[string]bool{}
	for k := 0; k < n; k++ {
		l := slices.Clone(lines[k%len(lines)])
		start, end := processSpan(b, l)
		v, i, step := k, end-1, -1
		if !atEnd {
			i, step = start+1, 1
		}
		for d := 0; start < i && i < end && d < 4; i += step {
			if '0' <= l[i] && l[i] <= '9' && '0' <= l[i-1] && l[i-1] <= '9' {
				l[i] = '0' + byte(v%10)
				v /= 10
				d++
			}
		}
		if seen[string(l[start:end])] {
			b.Fatalf("variant %d repeats a process object", k)
		}
		seen[string(l[start:end])] = true
		out = append(out, l)
	}
	return out
}

// BenchmarkParseProcessCache runs the parser with and without the process
// cache on the demo recording as it is (38 lines cycled, every process
// object kept unless more than its set holds share it: a higher hit rate than a
// real stream's, where only a process's consecutive events repeat) and on
// 4096 variants of the fixtures and the demo whose process objects all
// differ (every lookup misses: the cost of the cache on a stream that never
// repeats a process).
func BenchmarkParseProcessCache(b *testing.B) {
	demo := readLines(b, "../../cmd/fileward/demo/eslogger-demo.ndjson")
	fixtures := readLines(b, fixtureDir+"/synthesized/file-events.ndjson")
	inputs := []struct {
		name  string
		lines [][]byte
	}{
		{"demo", demo},
		{"distinct-early", distinctProcesses(b, slices.Concat(fixtures, demo), 4096, false)},
		{"distinct-late", distinctProcesses(b, slices.Concat(fixtures, demo), 4096, true)},
	}
	for _, in := range inputs {
		for _, cache := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/cache=%v", in.name, cache), func(b *testing.B) {
				p := NewParser()
				p.noProcCache = !cache
				benchParse(b, p, in.lines)
				if p.pcache != nil {
					b.ReportMetric(float64(p.pcache.hits)/float64(p.pcache.hits+p.pcache.misses), "hit-rate")
				}
			})
		}
	}
}
