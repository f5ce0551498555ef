package rulesreport

import (
	"reflect"
	"strings"
	"testing"
)

func TestLexEQL(t *testing.T) {
	toks, err := LexEQL(`file where ?process.name like~ ("a\"b", """raw\n""") /* c */ and length(x) >= 2 // end`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.Kind.String()+":"+tk.Text)
	}
	want := []string{"Ident:file", "Ident:where", "Ident:process.name", "Ident:like~", "Op:(", `String:a"b`, "Op:,", `String:raw\n`, "Op:)",
		"Ident:and", "Ident:length", "Op:(", "Ident:x", "Op:)", "Op:>=", "Number:2", "EOF:"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{`"open`, `/* open`, `"""open`, "a # b", "`open"} {
		if _, err := LexEQL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLexKQL(t *testing.T) {
	toks, err := LexKQL(`file.path:/home/*/.ssh/* and not process.name:("a b" or c\:d) and x >= 5`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		s := tk.Kind.String() + ":" + tk.Text
		if tk.Wild {
			s += "*"
		}
		got = append(got, s)
	}
	want := []string{"Ident:file.path", "Op::", "Ident:/home/*/.ssh/**", "Ident:and", "Ident:not", "Ident:process.name", "Op::", "Op:(",
		"String:a b", "Ident:or", "Ident:c:d", "Op:)", "Ident:and", "Ident:x", "Op:>=", "Ident:5", "EOF:"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens\n got %q\nwant %q", got, want)
	}
	if _, err := LexKQL(`a:"open`); err == nil {
		t.Error("unterminated string accepted")
	}
}

func atoms(q *Query) []string {
	var out []string
	for _, a := range q.Atoms {
		out = append(out, a.String())
	}
	return out
}

func TestParse(t *testing.T) {
	cases := []struct {
		lang, q string
		steps   int
		atoms   []string
		cats    []string
	}{
		{"kuery", `event.category:file and host.os.type:(linux or macos) and not process.name:(* and not (sudo or vim))`, 1,
			[]string{`event.category == "file"`, `host.os.type == "linux"`, `host.os.type == "macos"`, "process.name exists", `process.name == "sudo"`, `process.name == "vim"`},
			[]string{"file"}},
		{"kuery", `user_agent.original:(*S3 Browser* or "x")`, 1, []string{`user_agent.original wild "*S3 Browser*"`, `user_agent.original == "x"`}, []string{"any"}},
		{"kuery", `a:{ b:1 and c:* }`, 1, []string{`a.b == "1"`, "a.c exists"}, []string{"any"}},
		{"eql", `sequence by process.entity_id with maxspan=1m [process where event.type == "start"] by process.pid [file where file.name : "x*"] until [process where event.action == "end"] | head 1`, 3,
			[]string{`event.type == "start"`, `file.name wild~ "x*"`, `event.action == "end"`}, []string{"file", "process"}},
		{"eql", `any where event.category == "file" and process.name not in ("a", "b") and process.pid != null`, 1,
			[]string{`event.category == "file"`, `process.name == ("a", "b")`, "process.pid exists"}, []string{"file"}},
		{"eql", `process where process.parent.name == process.name and startsWith~(file.path, "/tmp") and descendant of [process where process.name == "sshd"]`, 1,
			[]string{"process.parent.name, process.name (compared)", "file.path (compared)", `event.category == "process"`, `process.name == "sshd"`, "process.parent.entity_id exists"}, []string{"process"}},
		{"esql", "from logs-endpoint.events.file-* metadata _id\n| where host.os.type == \"linux\" and file.path LIKE \"/etc/*\" and not process.name IN (\"a\") and user.id IS NOT NULL\n| eval n = to_lower(file.name)\n| stats c = count(*) by n, process.executable\n| where c > 3 and process.executable RLIKE \".*x\"", 1,
			[]string{`host.os.type == "linux"`, `file.path wild "/etc/*"`, `process.name == "a"`, "user.id exists", `process.executable regex ".*x"`}, []string{"any"}},
	}
	for _, c := range cases {
		q, err := Parse(c.lang, c.q)
		if err != nil {
			t.Errorf("%s: %v", c.q, err)
			continue
		}
		if len(q.Steps) != c.steps {
			t.Errorf("%s: %d steps, want %d", c.q, len(q.Steps), c.steps)
		}
		if got := atoms(q); !reflect.DeepEqual(got, c.atoms) {
			t.Errorf("%s: atoms\n got %q\nwant %q", c.q, got, c.atoms)
		}
		if got := q.Categories(); !reflect.DeepEqual(got, c.cats) {
			t.Errorf("%s: categories %v, want %v", c.q, got, c.cats)
		}
	}
	seq, _ := Parse("eql", `sequence by host.id [file where true] by process.entity_id [file where true] until [file where false]`)
	if !reflect.DeepEqual(seq.Steps[0].JoinKeys, []string{"host.id", "process.entity_id"}) || !seq.Steps[2].Until {
		t.Errorf("join keys %v, until %v", seq.Steps[0].JoinKeys, seq.Steps[2].Until)
	}
	for _, bad := range []struct{ lang, q string }{
		{"eql", `file where`}, {"eql", `file where a ==`}, {"eql", `sequence`}, {"eql", `file where a == (1`},
		{"eql", `file where a in ("x" "y")`}, {"eql", `file a == 1`},
		{"kuery", `a:(b or`}, {"kuery", `a: and`}, {"kuery", `(a:b`},
		{"esql", `from x | where a ==`}, {"esql", `from x | where a IS b`},
		{"lucene", `a:b`},
	} {
		if _, err := Parse(bad.lang, bad.q); err == nil {
			t.Errorf("%s %q: no error", bad.lang, bad.q)
		}
	}
	deep := strings.Repeat("(", 5000) + "a == 1" + strings.Repeat(")", 5000)
	if _, err := Parse("eql", "file where "+deep); err == nil {
		t.Error("5000 nested parentheses accepted (the depth bound failed)")
	}
}

// FuzzQuery fuzzes the tokenizers and the three parsers: no input may
// panic, token offsets increase within the input, and every atom of a
// parsed query points into the input.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		`file where host.os.type == "linux" and event.type : ("creation", "change") and not ?process.name like~ "x*"`,
		`sequence by process.entity_id with maxspan=5s [process where event.type == "start"] [file where length(file.name) > 3] | head 5`,
		`event.category:file and host.os.type:(linux or macos) and not file.path:(/tmp/* or "/var/x") and x >= 3`,
		`a:{ b:"c" } and not d:* and free text`,
		"from logs-* metadata _id | where a::STRING like \"x\" and b >= NOW() - 1 hour | stats c = count(*) by d | where c > 1",
		`process where descendant of [process where process.name == "sshd"] and cidrmatch(source.ip, "10.0.0.0/8")`,
		`file where """raw""" == ?"raw" and 'x' != 1.5e3`,
	} {
		for lang := byte(0); lang < 3; lang++ {
			f.Add(lang, s)
		}
	}
	f.Fuzz(func(t *testing.T, lang byte, q string) {
		for _, lex := range []func(string) ([]Token, error){LexEQL, LexKQL} {
			toks, err := lex(q)
			last := -1
			for _, tk := range toks {
				if tk.Pos < last || tk.Pos > len(q) {
					t.Fatalf("token %q at %d after %d (input %d bytes)", tk.Text, tk.Pos, last, len(q))
				}
				last = tk.Pos
			}
			if err == nil && (len(toks) == 0 || toks[len(toks)-1].Kind != EOF) {
				t.Fatal("no EOF token")
			}
		}
		langs := []string{"eql", "kuery", "esql"}
		qu, err := Parse(langs[int(lang)%3], q)
		if err != nil {
			return
		}
		for _, a := range qu.Atoms {
			if a.Pos < 0 || a.Pos > len(q) {
				t.Fatalf("atom %s at %d outside the input", a, a.Pos)
			}
		}
		r := &Rule{ID: "x", Language: langs[int(lang)%3], Query: q, Tags: []string{"OS: Linux"}}
		Analyze(r, NewInventory())
	})
}
