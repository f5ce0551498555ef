package eslogger

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// checkUnescape compares unescape with the frozen reference (refUnescape:
// the same answer, ok or not, and the same bytes when ok) and, where
// encoding/json takes the string, with encoding/json. dst's bytes before the
// decoded ones must stay as they were.
func checkUnescape(t *testing.T, v []byte) {
	t.Helper()
	prefix := []byte("pre")
	got, ok := unescape(append([]byte(nil), prefix...), v)
	want, wok := refUnescape(append([]byte(nil), prefix...), v)
	if ok != wok {
		t.Fatalf("unescape(%q): ok=%v, reference ok=%v", v, ok, wok)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("unescape(%q) changed dst's bytes: %q", v, got)
	}
	if !ok {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("unescape(%q) = %q, reference %q", v, got[len(prefix):], want[len(prefix):])
	}
	if !utf8.Valid(v) {
		return // encoding/json replaces invalid UTF-8; eslogger's parser keeps it
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, v...), '"'), &s); err == nil && s != string(got[len(prefix):]) {
		t.Fatalf("unescape(%q) = %q, encoding/json %q", v, got[len(prefix):], s)
	}
}

// TestUnescapeMatchesReference: unescape on escaped paths as eslogger writes
// them, every escape at every offset around an 8-byte word, surrogate pairs,
// broken escapes at the end, and random strings of escapes and bytes.
func TestUnescapeMatchesReference(t *testing.T) {
	for _, v := range []string{
		``, `a`, `\/`, `\/Users\/alice\/Downloads\/report.final.pdf`, `\/bin\/zsh`,
		`\"\\\/\b\f\n\r\t`, `\u00e9\u20ac\ud83d\ude00`, `\ud83d`, `\ud83dx`, `\ud83d\u0041`, `\ude00`,
		`\`, `ab\`, `\u12`, `\u12G4`, `\x`, `\uD83D\uDE00`, "caf\xc3\xa9\\/", "\xff\\/",
	} {
		checkUnescape(t, []byte(v))
	}
	escapes := []string{`\/`, `\\`, `\"`, `\n`, `\u0041`, `\ud83d\ude00`, `\ud800`, `\`, `\q`}
	for _, e := range escapes {
		for pre := 0; pre < 18; pre++ {
			for post := 0; post < 10; post++ {
				v := bytes.Repeat([]byte("p"), pre)
				v = append(v, e...)
				v = append(v, bytes.Repeat([]byte("q"), post)...)
				checkUnescape(t, v)
			}
		}
	}
	rng := rand.New(rand.NewPCG(15, 1))
	pieces := append(escapes, "a", "bc", "/", "é", "\x00", "\xff", `"`)
	for k := 0; k < 20000; k++ {
		var v []byte
		for n := rng.IntN(12); n > 0; n-- {
			v = append(v, pieces[rng.IntN(len(pieces))]...)
		}
		checkUnescape(t, v)
	}
}

// FuzzUnescape: unescape against the reference and encoding/json on any
// input.
func FuzzUnescape(f *testing.F) {
	for _, v := range []string{`\/Users\/alice\/a.txt`, `\u00e9\ud83d\ude00x`, `ab\`, `\ud800\u`, "caf\xc3\xa9\\t"} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) { checkUnescape(t, v) })
}
