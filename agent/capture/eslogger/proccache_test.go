package eslogger

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	if len(raw) < procCacheKeyLen+16 || start < 0 || bytes.Count(line, raw) != 1 {
		t.Fatalf("process object not found once (%d bytes)", len(raw))
	}
	return start, start + len(raw)
}

// withLastDigit returns line with the last digit of its process object
// changed: a different process whose first bytes equal the original's.
func withLastDigit(t testing.TB, line []byte) []byte {
	t.Helper()
	start, end := processSpan(t, line)
	b := slices.Clone(line)
	for i := end - 1; i > start; i-- {
		if '0' <= b[i] && b[i] <= '9' {
			b[i] = '0' + (b[i]-'0'+1)%10
			return b
		}
	}
	t.Fatal("no digit in the process object")
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
	seq := []struct {
		name string
		line []byte
		hit  bool
	}{
		{"a", a, false},
		{"a again, new seq", withSeq(t, a, 7), true},
		{"a again", a, true},
		{"b", b, false},
		{"b again", withSeq(t, b, 8), true},
		{"a after b", a, true},
		{"a with a changed last digit", withLastDigit(t, a), false},
		{"a after its variant", a, false},
		{"c (compact real exec)", c, false},
		{"c again", withSeq(t, c, 9), true},
		{"c truncated in its process object", c[:func() int { s, e := processSpan(t, c); return (s + e) / 2 }()], false},
		{"c after the truncated one", c, true},
		{"c with a changed last digit", withLastDigit(t, c), false},
		{"c after its variant", c, false},
	}
	p := NewParser()
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
	if p.pcache.hits != 6 {
		t.Fatalf("hits = %d, want 6", p.pcache.hits)
	}
}
