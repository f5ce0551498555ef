package eslogger

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/schema"
)

// fixtureDir is the repository's eslogger fixtures (testdata/fixtures at the
// module root, see its SOURCES.md): a relative path that stays inside the
// repository, so benchmarks without a *testing.T can use it too.
const fixtureDir = "../../../testdata/fixtures/eslogger"

// fixtureFiles lists every eslogger fixture: the repository's and this
// package's own (testdata/extra.ndjson).
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, g := range []string{fixtureDir + "/real/*.ndjson", fixtureDir + "/synthesized/*.ndjson", "testdata/*.ndjson"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 6 {
		t.Fatalf("fixtures not found (have %v); the fixtures must be at %s", files, fixtureDir)
	}
	return files
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// want is a hand-checked expectation for one fixture line.
type want struct {
	event    string
	action   schema.Action
	path     string
	orig     string
	pid      int32
	ppid     int32
	access   uint8
	exe      string
	signing  string
	team     string
	global   int64 // -1 = absent
	extattr  string
	truncd   bool
	hasStat  bool
	unmapped bool
}

var synthesizedWant = []want{
	{event: "setextattr", action: schema.ActionExtendedAttributesModification, path: "/Users/alice/Downloads/report.final.pdf", pid: 65195, ppid: 1, exe: "/bin/zsh", signing: "com.apple.zsh", global: 0, extattr: "com.apple.quarantine", hasStat: true},
	{event: "setowner", action: schema.ActionAttributesModification, path: "/Users/alice/notes.txt", pid: 9312, ppid: 58916, exe: "/usr/local/bin/python3.12", global: 1, hasStat: true},
	{event: "open", action: schema.ActionOpen, path: "/private/etc/hosts", pid: 37974, ppid: 1, access: schema.AccessRead, exe: "/usr/local/bin/python3.12", global: 2, hasStat: true},
	{event: "setacl", action: schema.ActionAttributesModification, path: "/Users/alice/notes.txt", pid: 20081, ppid: 58916, exe: "/Applications/Slack.app/Contents/MacOS/Slack", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 3, hasStat: true},
	{event: "setflags", action: schema.ActionAttributesModification, path: "/Users/alice/Library/Preferences/com.apple.dock.plist", pid: 60153, ppid: 58916, exe: "/bin/zsh", signing: "com.apple.zsh", global: 4, hasStat: true},
	{event: "setattrlist", action: schema.ActionAttributesModification, path: "/Users/alice/.zshrc", pid: 13599, ppid: 1, exe: "/usr/bin/vim", signing: "com.apple.vim", global: 5, hasStat: true},
	{event: "clone", action: schema.ActionClone, path: "/Users/alice/src/app/main.go", orig: "/Users/alice/.zshrc", pid: 97339, ppid: 1, exe: "/Applications/Slack.app/Contents/MacOS/Slack", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 6},
	{event: "setattrlist", action: schema.ActionAttributesModification, path: "/Users/alice/src/app/main.go", pid: 43509, ppid: 58916, exe: "/bin/zsh", signing: "com.apple.zsh", global: 7, hasStat: true},
	{event: "unlink", action: schema.ActionDeletion, path: "/Users/alice/notes.txt", pid: 58919, ppid: 58916, exe: "/bin/zsh", signing: "com.apple.zsh", global: 8, hasStat: true},
	{event: "setmode", action: schema.ActionAttributesModification, path: "/Users/alice/.zshrc", global: 9, signing: "com.apple.cfprefsd", hasStat: true},
	{event: "deleteextattr", action: schema.ActionExtendedAttributesDelete, path: "/Users/alice/Downloads/report.final.pdf", signing: "com.apple.zsh", global: 10, extattr: "com.apple.quarantine", hasStat: true},
	{event: "rename", action: schema.ActionRename, path: "/Users/alice/src/app/main.go", orig: "/Users/alice/src/app/.tmp.3142", signing: "com.apple.zsh", global: 11, hasStat: true},
	{event: "exchangedata", action: schema.ActionExchange, path: "/Users/alice/src/app/main.go", orig: "/Users/alice/notes.txt", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 12, hasStat: true},
	{event: "write", action: schema.ActionModification, path: "/Users/alice/src/app/main.go", global: 13, hasStat: true},
	{event: "clone", action: schema.ActionClone, path: "/Users/alice/notes.txt", orig: "/Users/alice/Downloads/report.final.pdf", signing: "com.apple.zsh", global: 14},
	{event: "open", action: schema.ActionOpen, path: "/Users/alice/.zshrc", access: schema.AccessWrite, global: 15, hasStat: true},
	{event: "setacl", action: schema.ActionAttributesModification, path: "/Users/alice/Library/Preferences/com.apple.dock.plist", global: 16, hasStat: true},
	{event: "unlink", action: schema.ActionDeletion, path: "/Users/alice/Library/Preferences/com.apple.dock.plist", signing: "com.apple.cfprefsd", global: 17, hasStat: true},
	{event: "rename", action: schema.ActionRename, path: "/Users/alice/notes.txt", orig: "/Users/alice/.tmp.8324", signing: "com.apple.vim", global: 18, hasStat: true},
	{event: "exchangedata", action: schema.ActionExchange, path: "/Users/alice/Downloads/report.final.pdf", orig: "/Users/alice/notes.txt", signing: "com.apple.cfprefsd", global: 19, hasStat: true},
	{event: "write", action: schema.ActionModification, path: "/Users/alice/Downloads/report.final.pdf", signing: "com.apple.vim", global: 20, hasStat: true},
	{event: "truncate", action: schema.ActionTruncate, path: "/Users/alice/.zshrc", signing: "com.apple.zsh", global: 21, hasStat: true},
	{event: "utimes", action: schema.ActionAttributesModification, path: "/private/var/folders/xy/T/tmp.8Zk2", global: 22, hasStat: true},
	{event: "create", action: schema.ActionCreation, path: "/Users/alice/Downloads/report.final.pdf", signing: "com.apple.vim", global: 23, hasStat: true},
	{event: "setowner", action: schema.ActionAttributesModification, path: "/Users/alice/src/app/main.go", signing: "com.apple.vim", global: 24, hasStat: true},
	{event: "utimes", action: schema.ActionAttributesModification, path: "/Users/alice/Downloads/report.final.pdf", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 25, hasStat: true},
	{event: "link", action: schema.ActionLink, path: "/private/etc/hosts", orig: "/private/var/folders/xy/T/tmp.8Zk2", signing: "com.apple.zsh", global: 26, hasStat: true},
	{event: "deleteextattr", action: schema.ActionExtendedAttributesDelete, path: "/Users/alice/src/app/main.go", signing: "com.apple.cfprefsd", global: 27, extattr: "com.apple.quarantine", hasStat: true},
	{event: "close", action: schema.ActionClose, path: "/private/var/folders/xy/T/tmp.8Zk2", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 28, hasStat: true},
	{event: "setflags", action: schema.ActionAttributesModification, path: "/Users/alice/Downloads/report.final.pdf", signing: "com.tinyspeck.slackmacgap", team: "BQR82RBBHL", global: 29, hasStat: true},
	{event: "create", action: schema.ActionCreation, path: "/Users/alice/notes.txt", signing: "com.apple.vim", global: 30, hasStat: true},
	{event: "truncate", action: schema.ActionTruncate, path: "/Users/alice/notes.txt", signing: "com.apple.vim", global: 31, hasStat: true},
	{event: "setmode", action: schema.ActionAttributesModification, path: "/Users/alice/notes.txt", signing: "com.apple.cfprefsd", global: 32, hasStat: true},
	{event: "link", action: schema.ActionLink, path: "/Users/alice/notes.txt", orig: "/private/etc/hosts", signing: "com.apple.vim", global: 33, hasStat: true},
	{event: "close", action: schema.ActionModification, path: "/Users/alice/Library/Preferences/com.apple.dock.plist", signing: "com.apple.zsh", global: 34, hasStat: true},
	{event: "setextattr", action: schema.ActionExtendedAttributesModification, path: "/Users/alice/notes.txt", signing: "com.apple.cfprefsd", global: 35, extattr: "com.apple.metadata:kMDItemWhereFroms", hasStat: true},
}

var realWant = map[string]want{
	"exec.macos15.v9.ndjson": {event: "exec", action: schema.ActionExec, path: "/bin/connection-checker", pid: 97391, ppid: 58916,
		exe: "/bin/connection-checker", signing: "connection_checker-04fde7bdb8bceee3", global: 75, hasStat: true},
	"exec.macos27beta.v11.ndjson": {event: "exec", action: schema.ActionExec, global: 16, hasStat: true, signing: "-"},
	"exit.macos15.v9.ndjson":      {event: "exit", unmapped: true, global: 1103, signing: "com.apple.ipconfig"},
	"fork.macos26.v10.ndjson":     {event: "fork", unmapped: true, global: 1, pid: 19745, ppid: 1, exe: "/Applications/Mullvad VPN.app/Contents/MacOS/Mullvad VPN", signing: "net.mullvad.vpn", team: "CKG9MXH72F"},
}

func check(t *testing.T, w want, ev *schema.Event, mapped bool) {
	t.Helper()
	if mapped == w.unmapped {
		t.Errorf("mapped=%v, want %v", mapped, !w.unmapped)
	}
	if ev.ESFEvent != w.event {
		t.Errorf("ESFEvent %q, want %q", ev.ESFEvent, w.event)
	}
	if ev.Action != w.action {
		t.Errorf("action %v, want %v", ev.Action, w.action)
	}
	if w.path != "" && ev.Path != w.path {
		t.Errorf("path %q, want %q", ev.Path, w.path)
	}
	if ev.OrigPath != w.orig {
		t.Errorf("orig %q, want %q", ev.OrigPath, w.orig)
	}
	if w.pid != 0 && ev.Process.PID != w.pid {
		t.Errorf("pid %d, want %d", ev.Process.PID, w.pid)
	}
	if w.ppid != 0 && ev.Process.PPID != w.ppid {
		t.Errorf("ppid %d, want %d", ev.Process.PPID, w.ppid)
	}
	if ev.Access != w.access {
		t.Errorf("access %b, want %b", ev.Access, w.access)
	}
	if w.exe != "" && ev.Process.Executable != w.exe {
		t.Errorf("exe %q, want %q", ev.Process.Executable, w.exe)
	}
	if w.signing != "-" && ev.Process.SigningID != w.signing {
		t.Errorf("signing %q, want %q", ev.Process.SigningID, w.signing)
	}
	if ev.Process.TeamID != w.team {
		t.Errorf("team %q, want %q", ev.Process.TeamID, w.team)
	}
	if w.global >= 0 && (!ev.HasGlobalSeq || ev.GlobalSeq != uint64(w.global) || ev.Seq != uint64(w.global)) {
		t.Errorf("global %v/%d seq %d, want %d", ev.HasGlobalSeq, ev.GlobalSeq, ev.Seq, w.global)
	}
	if ev.ExtAttr != w.extattr {
		t.Errorf("extattr %q, want %q", ev.ExtAttr, w.extattr)
	}
	if ev.PathTruncated != w.truncd {
		t.Errorf("truncated %v", ev.PathTruncated)
	}
	if !w.unmapped && ev.HasStat != w.hasStat {
		t.Errorf("hasStat %v, want %v", ev.HasStat, w.hasStat)
	}
	if ev.Provider != schema.ProviderEndpointSecurity {
		t.Errorf("provider %v", ev.Provider)
	}
	if ev.TimeNS == 0 || !ev.Process.HasUser || !ev.Process.HasCodeSig {
		t.Errorf("time %d hasUser %v hasCodeSig %v", ev.TimeNS, ev.Process.HasUser, ev.Process.HasCodeSig)
	}
}

func TestParseSynthesizedTable(t *testing.T) {
	lines := readLines(t, fixtureDir+"/synthesized/file-events.ndjson")
	if len(lines) != len(synthesizedWant) {
		t.Fatalf("%d lines, table has %d", len(lines), len(synthesizedWant))
	}
	p := NewParser()
	for i, l := range lines {
		var ev schema.Event
		mapped, err := p.Parse(l, &ev)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		check(t, synthesizedWant[i], &ev, mapped)
		if t.Failed() {
			t.Fatalf("line %d (%s)", i+1, ev.ESFEvent)
		}
	}
	st := p.Stats()
	if st.Mapped != uint64(len(lines)) || st.Unknown != 0 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseRealTable(t *testing.T) {
	p := NewParser()
	for name, w := range realWant {
		var ev schema.Event
		mapped, err := p.Parse(readLines(t, fixtureDir+"/real/"+name)[0], &ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(t, w, &ev, mapped)
		if t.Failed() {
			t.Fatal(name)
		}
	}
	if st := p.Stats(); st.Unmapped != 2 || st.Mapped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseExecCarriesNewImage(t *testing.T) {
	var ev schema.Event
	p := NewParser()
	if _, err := p.Parse(readLines(t, fixtureDir+"/real/exec.macos15.v9.ndjson")[0], &ev); err != nil {
		t.Fatal(err)
	}
	// process.* is exec's target: same pid, pidversion of the new image.
	if ev.Process.PIDVersion != 149092 || ev.Process.CDHash != "33F0A3D85BEA260FED5CAD0529AB0E84EC9A0DF1" {
		t.Fatalf("process %+v", ev.Process)
	}
	if len(ev.Process.Args) == 0 || ev.Process.Args[0] != "/bin/connection-checker" {
		t.Fatalf("args %q", ev.Process.Args)
	}
	if ev.Inode != 14784254 || ev.Mode != 33261 || ev.Size != 5087360 {
		t.Fatalf("stat %+v", ev)
	}
	want := time.Date(2025, 8, 7, 13, 21, 35, 880814738, time.UTC).UnixNano()
	if ev.TimeNS != want {
		t.Fatalf("time %d, want %d", ev.TimeNS, want)
	}
}

func TestParseExtraShapes(t *testing.T) {
	lines := readLines(t, "testdata/extra.ndjson")
	p := NewParser()
	parse := func(i int) (schema.Event, bool) {
		t.Helper()
		var ev schema.Event
		m, err := p.Parse(lines[i], &ev)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		return ev, m
	}
	// 1: rename onto an existing file.
	ev, _ := parse(0)
	if ev.Action != schema.ActionRename || ev.Path != "/Users/alice/existing.txt" || ev.OrigPath != "/Users/alice/.tmp.8324" && ev.OrigPath != "/Users/alice/src/app/.tmp.3142" {
		t.Fatalf("rename existing: %q %q", ev.Path, ev.OrigPath)
	}
	// 2: create at a new path: dir + "/" + filename, no stat.
	ev, _ = parse(1)
	if ev.Action != schema.ActionCreation || ev.Path != "/Users/alice/newdir/fresh.txt" || ev.HasStat {
		t.Fatalf("create new_path: %q %v", ev.Path, ev.HasStat)
	}
	// 3: path_truncated, fflag read|write.
	ev, _ = parse(2)
	if !ev.PathTruncated || ev.Access != schema.AccessRead|schema.AccessWrite {
		t.Fatalf("open truncated: %v %b", ev.PathTruncated, ev.Access)
	}
	// 4: version 3 without global_seq_num, ppid fallback.
	ev, _ = parse(3)
	if ev.HasGlobalSeq || ev.Seq != 0 || ev.ESFSeqNum != 41 || ev.ESFVersion != 3 || ev.Process.PPID != 4242 || ev.Action != schema.ActionClose {
		t.Fatalf("v3: %+v", ev)
	}
	// 5: was_mapped_writable → modification.
	ev, _ = parse(4)
	if ev.Action != schema.ActionModification {
		t.Fatalf("mapped writable: %v", ev.Action)
	}
	// 6: unknown event type: counted, skipped, not an error.
	ev, m := parse(5)
	if m || ev.ESFEvent != "future_thing" {
		t.Fatalf("unknown: %v %q", m, ev.ESFEvent)
	}
	if st := p.Stats(); st.Unknown != 1 || st.UnknownByName["future_thing"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// 7: unicode escapes and null signing/team ids.
	ev, _ = parse(6)
	if ev.Path != "/Users/alice/résumé 😀 \"q\".txt" || ev.Process.SigningID != "" || ev.Process.TeamID != "" || !ev.Process.HasCodeSig {
		t.Fatalf("unicode/null: %q %+v", ev.Path, ev.Process)
	}
}

func TestZeroParserUsable(t *testing.T) {
	var p Parser
	var ev schema.Event
	for _, l := range readLines(t, "testdata/extra.ndjson") {
		if _, err := p.Parse(l, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Unknown != 1 || st.Mapped != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseAuditTokenForms(t *testing.T) {
	obj := `{"event":{"write":{"target":{"path":"\/a"}}},"process":{"audit_token":{"auid":1,"euid":2,"egid":3,"ruid":4,"rgid":5,"pid":6,"asid":7,"pidversion":8},"parent_audit_token":{"pid":9}}}`
	arr := `{"process":{"parent_audit_token":[0,0,0,0,0,9,0,0],"audit_token":[1,2,3,4,5,6,7,8]},"event":{"write":{"target":{"path":"\/a"}}}}`
	for _, l := range []string{obj, arr} {
		var ev schema.Event
		if _, err := NewParser().Parse([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		pr := ev.Process
		if pr.PID != 6 || pr.PIDVersion != 8 || pr.UID != 2 || pr.RUID != 4 || pr.GID != 3 || pr.PPID != 9 || ev.Path != "/a" {
			t.Fatalf("%s → %+v", l, pr)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	good := readLines(t, fixtureDir+"/synthesized/file-events.ndjson")[2]
	cases := map[string]string{
		"empty":          ``,
		"not json":       `hello`,
		"truncated":      string(good[:len(good)/2]),
		"truncated end":  string(good[:len(good)-1]),
		"no event":       `{"version":9}`,
		"empty event":    `{"event":{}}`,
		"two events":     `{"event":{"open":{},"close":{}}}`,
		"event string":   `{"event":"open"}`,
		"version string": `{"version":"9","event":{"open":{}}}`,
		"pid string":     `{"process":{"audit_token":{"pid":"1"}},"event":{"open":{}}}`,
		"token short":    `{"process":{"audit_token":[1,2,3]},"event":{"open":{}}}`,
		"fflag bool":     `{"event":{"open":{"fflag":true}}}`,
		"path number":    `{"event":{"open":{"file":{"path":1}}}}`,
		"bad escape":     `{"event":{"open":{"file":{"path":"\q"}}}}`,
		"bad time":       `{"time":"yesterday","event":{"open":{}}}`,
		"trailing":       `{"event":{"open":{}}} x`,
		"trailing NUL":   "{\"event\":{\"open\":{}}}\x00x",
		"mismatched":     `{"event":{"open":{"x":[1}}}}`,
		"float seq":      `{"seq_num":1.5,"event":{"open":{}}}`,
		"neg seq":        `{"global_seq_num":-1,"event":{"open":{}}}`,
		"deep":           `{"event":{"open":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}}`,
	}
	p := NewParser()
	for name, l := range cases {
		var ev schema.Event
		ev.Path = "stale"
		mapped, err := p.Parse([]byte(l), &ev)
		var se *SyntaxError
		if err == nil || mapped || !errors.As(err, &se) {
			t.Errorf("%s: mapped=%v err=%v", name, mapped, err)
			continue
		}
		if se.Offset < 0 || se.Offset > len(l) || ev.Path != "" {
			t.Errorf("%s: offset %d of %d, path %q", name, se.Offset, len(l), ev.Path)
		}
	}
	if st := p.Stats(); st.Malformed != uint64(len(cases)) {
		t.Fatalf("malformed %d, want %d", st.Malformed, len(cases))
	}
}

// TestParseMatchesEncodingJSON decodes every fixture line with encoding/json
// into map[string]any, maps it with a slow, obvious reference mapper, and
// checks the fast scanner extracted the same values.
func TestParseMatchesEncodingJSON(t *testing.T) {
	p := NewParser()
	n := 0
	procs := map[int32]procInfo{}
	for _, f := range fixtureFiles(t) {
		for i, l := range readLines(t, f) {
			var m map[string]any
			d := json.NewDecoder(bytes.NewReader(l))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				t.Fatalf("%s:%d: encoding/json: %v", f, i+1, err)
			}
			want, wantMapped := refEvent(t, m, procs)
			var got schema.Event
			mapped, err := p.Parse(l, &got)
			if err != nil {
				t.Fatalf("%s:%d: %v", f, i+1, err)
			}
			if mapped != wantMapped {
				t.Fatalf("%s:%d: mapped %v, reference %v", f, i+1, mapped, wantMapped)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:%d:\n got %+v\nwant %+v", f, i+1, got, want)
			}
			n++
		}
	}
	if n < 45 {
		t.Fatalf("only %d lines compared", n)
	}
}

// refEvent is the reference mapping over encoding/json's generic decoding.
// procs carries what earlier lines showed of each pid's image, for the
// parent fields of exec events.
func refEvent(t *testing.T, m map[string]any, procs map[int32]procInfo) (schema.Event, bool) {
	t.Helper()
	num := func(v any) int64 {
		if v == nil {
			return 0
		}
		n, err := v.(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	obj := func(v any) map[string]any { o, _ := v.(map[string]any); return o }
	str := func(v any) string { s, _ := v.(string); return s }
	tm := func(v any) int64 {
		if v == nil {
			return 0
		}
		tt, err := time.Parse(time.RFC3339Nano, v.(string))
		if err != nil {
			t.Fatal(err)
		}
		return tt.UnixNano()
	}
	type tok struct {
		pid, pidv, euid, ruid, egid int64
	}
	token := func(v any) (tok, bool) {
		switch x := v.(type) {
		case map[string]any:
			return tok{num(x["pid"]), num(x["pidversion"]), num(x["euid"]), num(x["ruid"]), num(x["egid"])}, true
		case []any:
			return tok{num(x[5]), num(x[7]), num(x[1]), num(x[3]), num(x[2])}, true
		}
		return tok{}, false
	}
	proc := func(pm map[string]any) schema.Process {
		var pr schema.Process
		if tk, ok := token(pm["audit_token"]); ok {
			pr.PID, pr.PIDVersion, pr.UID, pr.RUID, pr.GID, pr.HasUser = int32(tk.pid), uint32(tk.pidv), uint32(tk.euid), uint32(tk.ruid), uint32(tk.egid), true
		}
		pr.PPID = int32(num(pm["ppid"]))
		if tk, ok := token(pm["parent_audit_token"]); ok {
			pr.PPID = int32(tk.pid)
			pr.Parent.PIDVersion = uint32(tk.pidv)
		}
		if f, ok := pm["codesigning_flags"]; ok && f != nil {
			pr.CSFlags, pr.HasCSFlags = uint32(num(f)), true
		}
		pr.Executable = str(obj(pm["executable"])["path"])
		pr.SigningID, pr.TeamID, pr.CDHash = str(pm["signing_id"]), str(pm["team_id"]), str(pm["cdhash"])
		pr.Platform, _ = pm["is_platform_binary"].(bool)
		pr.HasCodeSig = true
		pr.StartNS = tm(pm["start_time"])
		return pr
	}
	var ev schema.Event
	ev.Provider = schema.ProviderEndpointSecurity
	ev.ESFVersion = uint32(num(m["version"]))
	ev.TimeNS = tm(m["time"])
	ev.ESFSeqNum = uint64(num(m["seq_num"]))
	ev.Stream = uint64(num(m["mach_time"]))
	if g, ok := m["global_seq_num"]; ok {
		ev.GlobalSeq, ev.HasGlobalSeq, ev.Seq = uint64(num(g)), true, uint64(num(g))
	}
	ev.Process = proc(obj(m["process"]))
	remember := func(pr schema.Process, args []string) {
		if pr.PID <= 0 || pr.PIDVersion == 0 || pr.StartNS == 0 {
			return
		}
		if e, ok := procs[pr.PID]; ok && e.pidVersion == pr.PIDVersion && args == nil {
			return
		}
		procs[pr.PID] = procInfo{pidVersion: pr.PIDVersion, startNS: pr.StartNS, executable: pr.Executable, args: args}
	}
	remember(ev.Process, nil)
	var name string
	var pl map[string]any
	for k, v := range obj(m["event"]) {
		name, pl = k, obj(v)
	}
	ev.ESFEvent = name
	setFile := func(f map[string]any) {
		ev.Path = str(f["path"])
		if tr, _ := f["path_truncated"].(bool); tr {
			ev.PathTruncated = true
		}
		if st := obj(f["stat"]); st != nil {
			ev.HasStat = true
			ev.Inode, ev.Device, ev.Mode = uint64(num(st["st_ino"])), uint64(num(st["st_dev"])), uint32(num(st["st_mode"]))
			ev.UID, ev.GID, ev.Size, ev.MtimeNS = uint32(num(st["st_uid"])), uint32(num(st["st_gid"])), num(st["st_size"]), tm(st["st_mtimespec"])
		}
	}
	trunc := func(f map[string]any) bool { b, _ := f["path_truncated"].(bool); return b }
	dest := func(d map[string]any) {
		if ef := obj(d["existing_file"]); ef != nil {
			ev.Path = str(ef["path"])
			ev.PathTruncated = ev.PathTruncated || trunc(ef)
			return
		}
		np := obj(d["new_path"])
		ev.Path = str(obj(np["dir"])["path"]) + "/" + str(np["filename"])
		ev.PathTruncated = ev.PathTruncated || trunc(obj(np["dir"]))
	}
	switch name {
	case "open":
		ev.Action = schema.ActionOpen
		ff := num(pl["fflag"])
		if ff&1 != 0 {
			ev.Access |= schema.AccessRead
		}
		if ff&2 != 0 {
			ev.Access |= schema.AccessWrite
		}
		setFile(obj(pl["file"]))
	case "close":
		ev.Action = schema.ActionClose
		mod, _ := pl["modified"].(bool)
		mw, _ := pl["was_mapped_writable"].(bool)
		if mod || mw {
			ev.Action = schema.ActionModification
		}
		setFile(obj(pl["target"]))
	case "write", "unlink", "truncate", "setmode", "setowner", "setflags", "setattrlist", "setacl", "utimes", "setextattr", "deleteextattr":
		ev.Action = map[string]schema.Action{"write": schema.ActionModification, "unlink": schema.ActionDeletion, "truncate": schema.ActionTruncate,
			"setextattr": schema.ActionExtendedAttributesModification, "deleteextattr": schema.ActionExtendedAttributesDelete}[name]
		if ev.Action == schema.ActionNone {
			ev.Action = schema.ActionAttributesModification
		}
		setFile(obj(pl["target"]))
		ev.ExtAttr = str(pl["extattr"])
	case "create":
		ev.Action = schema.ActionCreation
		d := obj(pl["destination"])
		if ef := obj(d["existing_file"]); ef != nil {
			setFile(ef)
		} else {
			dest(d)
		}
	case "rename", "link":
		ev.Action = schema.ActionRename
		if name == "link" {
			ev.Action = schema.ActionLink
		}
		setFile(obj(pl["source"]))
		ev.OrigPath = ev.Path
		if name == "rename" {
			dest(obj(pl["destination"]))
		} else {
			ev.Path = str(obj(pl["target_dir"])["path"]) + "/" + str(pl["target_filename"])
		}
	case "clone":
		ev.Action = schema.ActionClone
		ev.OrigPath = str(obj(pl["source"])["path"])
		ev.Path = str(obj(pl["target_dir"])["path"]) + "/" + str(pl["target_name"])
	case "exchangedata":
		ev.Action = schema.ActionExchange
		setFile(obj(pl["file1"]))
		ev.OrigPath = str(obj(pl["file2"])["path"])
	case "exec":
		ev.Action = schema.ActionExec
		ev.Process = proc(obj(pl["target"]))
		for _, a := range pl["args"].([]any) {
			ev.Process.Args = append(ev.Process.Args, a.(string))
		}
		ev.Process.WorkingDir = str(obj(pl["cwd"])["path"])
		remember(ev.Process, ev.Process.Args)
		if e, ok := procs[ev.Process.PPID]; ok && ev.Process.Parent.PIDVersion != 0 && e.pidVersion == ev.Process.Parent.PIDVersion {
			ev.Process.Parent.Executable, ev.Process.Parent.Args, ev.Process.Parent.StartNS = e.executable, e.args, e.startNS
		}
		setFile(obj(obj(pl["target"])["executable"]))
	default:
		return ev, false
	}
	return ev, true
}

func TestFastTimeMatchesTimeParse(t *testing.T) {
	for _, s := range []string{"2025-08-07T13:21:35.880814738Z", "2025-08-07T13:21:35.877422Z", "1970-01-01T00:00:00Z",
		"2000-02-29T23:59:59.1Z", "1969-12-31T23:59:59.999999999Z", "2400-03-01T00:00:00.000000001Z"} {
		got, ok := fastTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || got != want.UnixNano() {
			t.Errorf("%s: %d %v, want %d", s, got, ok, want.UnixNano())
		}
	}
	for _, s := range []string{"2025-02-30T00:00:00Z", "2025-13-01T00:00:00Z", "2025-08-07T13:21:35.Z", "2025-08-07T13:21:35+02:00"} {
		if _, ok := fastTime([]byte(s)); ok {
			t.Errorf("%s accepted", s)
		}
	}
}

// FuzzParse checks Parse never panics, that errors are *SyntaxError with an
// offset inside the line, and that a mapped event has a path or an exec image.
func FuzzParse(f *testing.F) {
	for _, file := range fixtureFiles(f) {
		for _, l := range readLines(f, file) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"event":{"open":{"file":{"path":"\ud800"}}}}`))
	f.Add([]byte(`{"process":{"audit_token":[1,2,3,4,5,6,7,8]},"event":{"rename":{"destination":{"new_path":{"dir":null}}}}}`))
	p := NewParser()
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := append([]byte(nil), line...)
		var ev schema.Event
		mapped, err := p.Parse(line, &ev)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(line) || mapped {
				t.Fatalf("bad error %v mapped=%v", err, mapped)
			}
			return
		}
		if mapped && (ev.Action == schema.ActionNone || ev.Provider != schema.ProviderEndpointSecurity) {
			t.Fatalf("mapped without action: %+v", ev)
		}
		// Event strings must not alias the line: scribble over it.
		for i := range line {
			line[i] = 'X'
		}
		if ev.Path != "" && strings.Contains(ev.Path, "XXXX") && !bytes.Contains(orig, []byte("XXXX")) {
			t.Fatalf("path aliases the input: %q", ev.Path)
		}
	})
}

// BenchmarkParse measures the scanner on the fixture lines.
func BenchmarkParse(b *testing.B) {
	benchParse(b, NewParser(), readLines(b, fixtureDir+"/synthesized/file-events.ndjson"))
}

// benchParse times p.Parse over lines, round robin, and reports its CPU
// time per line: wall time on a loaded shared machine overstates it.
func benchParse(b *testing.B, p interface {
	Parse([]byte, *schema.Event) (bool, error)
}, lines [][]byte) {
	total := 0
	for _, l := range lines {
		total += len(l) + 1
	}
	var ev schema.Event
	b.SetBytes(int64(total / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := selfCPU(b)
	for i := 0; i < b.N; i++ {
		if _, err := p.Parse(lines[i%len(lines)], &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((selfCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/line")
}

// BenchmarkParseEncodingJSON is the baseline: encoding/json into map[string]any.
func BenchmarkParseEncodingJSON(b *testing.B) {
	var lines [][]byte
	total := 0
	for _, l := range readLines(b, fixtureDir+"/synthesized/file-events.ndjson") {
		lines = append(lines, l)
		total += len(l) + 1
	}
	b.SetBytes(int64(total / len(lines)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := json.Unmarshal(lines[i%len(lines)], &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDemo measures the scanner on the demo recording, the input
// of fwbench's pipeline and kafka rows.
func BenchmarkParseDemo(b *testing.B) {
	benchParse(b, NewParser(), readLines(b, "../../cmd/fileward/demo/eslogger-demo.ndjson"))
}
