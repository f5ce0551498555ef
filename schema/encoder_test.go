package schema

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testfixtures"
)

// TestAppendEachAction encodes one event per action and checks every field
// docs/ecs.md requires, by decoding the output with encoding/json.
func TestAppendEachAction(t *testing.T) {
	// Expected event.type and event.category per action, from docs/ecs.md's
	// table, written out independently of the encoder's switch.
	// action is the event.action Elastic Defend spells (docs/ecs.md).
	want := map[Action]struct {
		typ      string
		category []any
		action   string
	}{
		ActionOpen:                           {"access", []any{"file"}, "open"},
		ActionClose:                          {"access", []any{"file"}, "close"},
		ActionModification:                   {"change", []any{"file"}, "modification"},
		ActionCreation:                       {"creation", []any{"file"}, "creation"},
		ActionDeletion:                       {"deletion", []any{"file"}, "deletion"},
		ActionRename:                         {"change", []any{"file"}, "rename"},
		ActionAttributesModification:         {"change", []any{"file"}, "attributes_modification"},
		ActionExtendedAttributesModification: {"change", []any{"file"}, "extended_attributes_modification"},
		ActionExtendedAttributesDelete:       {"change", []any{"file"}, "extended_attributes_delete"},
		ActionTruncate:                       {"change", []any{"file"}, "modification"},
		ActionLink:                           {"creation", []any{"file"}, "creation"},
		ActionClone:                          {"creation", []any{"file"}, "creation"},
		ActionExchange:                       {"change", []any{"file"}, "modification"},
		ActionAccess:                         {"access", []any{"file"}, "access"},
		ActionExec:                           {"start", []any{"process"}, "exec"},
	}
	if len(want) != len(Actions()) {
		t.Fatalf("table covers %d actions, Actions() has %d", len(want), len(Actions()))
	}
	enc := NewEncoder(testMeta)
	for _, a := range Actions() {
		t.Run(fmt.Sprint(int(a), a.String()), func(t *testing.T) {
			w, ok := want[a]
			if !ok {
				t.Fatalf("no expectation for action %v", a)
			}
			ev := fullEvent()
			ev.Action = a
			ev.Access = 0
			if a == ActionOpen {
				ev.Access = AccessRead
			}
			if a == ActionRename || a == ActionLink || a == ActionClone || a == ActionExchange {
				ev.OrigPath = "/Users/alice/Library/Preferences/.com.apple.finder.plist.tmp"
			}
			if a == ActionExtendedAttributesModification {
				ev.ExtAttr = "com.apple.quarantine"
			}
			m := decodeMap(t, enc.Append(nil, &ev))
			id := string(enc.AppendID(nil, &ev))
			dataset := "fileward.file"
			if a == ActionExec {
				dataset = "fileward.process"
			}
			check := map[string]any{
				"@timestamp":                        "2026-11-26T02:05:39.123456789Z",
				"data_stream.type":                  "logs",
				"data_stream.dataset":               dataset,
				"data_stream.namespace":             "default",
				"event.kind":                        "event",
				"event.category":                    w.category,
				"event.type":                        []any{w.typ},
				"event.action":                      w.action,
				"event.outcome":                     "success",
				"event.id":                          id,
				"event.sequence":                    float64(1234567),
				"event.module":                      "fileward",
				"event.dataset":                     dataset,
				"event.provider":                    "endpoint_security",
				"event.created":                     "2026-11-26T02:05:39.123501000Z",
				"file.path":                         ev.Path,
				"file.name":                         "com.apple.finder.plist",
				"file.directory":                    "/Users/alice/Library/Preferences",
				"file.extension":                    "plist",
				"file.type":                         "file",
				"file.inode":                        "12884902011",
				"file.device":                       "16777232",
				"file.mode":                         "0644",
				"file.uid":                          "501",
				"file.gid":                          "20",
				"file.size":                         float64(40213),
				"file.mtime":                        "2026-11-25T18:00:01.500000000Z",
				"process.pid":                       float64(4242),
				"process.executable":                ev.Process.Executable,
				"process.name":                      "Finder",
				"process.parent.pid":                float64(1),
				"process.parent.executable":         "/sbin/launchd",
				"process.parent.name":               "launchd",
				"process.parent.args":               []any{"/sbin/launchd"},
				"process.parent.args_count":         float64(1),
				"process.parent.command_line":       "/sbin/launchd",
				"process.parent.entity_id":          string(enc.AppendEntityID(nil, &Process{PID: 1, PIDVersion: 2, StartNS: ev.Process.Parent.StartNS})),
				"process.parent.start":              "2026-11-25T08:00:00.000000000Z",
				"process.args":                      []any{ev.Process.Args[0], ev.Process.Args[1]},
				"process.args_count":                float64(2),
				"process.command_line":              ev.Process.Args[0] + " -psn_0_4242",
				"process.working_directory":         "/",
				"process.start":                     "2026-11-26T01:00:00.250000000Z",
				"process.entity_id":                 string(enc.AppendEntityID(nil, &ev.Process)),
				"process.code_signature.exists":     true,
				"process.code_signature.signing_id": "com.apple.finder",
				"process.code_signature.trusted":    true,
				"process.code_signature.valid":      true,
				"process.code_signature.flags":      "604045313",
				"fileward.process.platform_binary":  true,
				"process.hash.cdhash":               ev.Process.CDHash,
				"user.id":                           "501",
				"user.name":                         "alice",
				"user.Ext.real.id":                  "501",
				"group.id":                          "20",
				"group.name":                        "staff",
				"host.id":                           testMeta.HostID,
				"host.name":                         testMeta.HostName,
				"host.hostname":                     testMeta.Hostname,
				"host.architecture":                 "arm64",
				"host.os.type":                      "macos",
				"host.os.version":                   "15.3.1",
				"host.os.family":                    "macos",
				"host.os.name":                      "macOS",
				"host.os.platform":                  "macos",
				"host.os.kernel":                    "24.3.0",
				"host.os.full":                      "macOS 15.3.1",
				"agent.type":                        "fileward",
				"agent.version":                     testMeta.AgentVersion,
				"agent.id":                          testMeta.AgentID,
				"ecs.version":                       ECSVersion,
				"fileward.esf.event":                "open",
				"fileward.esf.global_seq_num":       float64(1234567),
				"fileward.esf.seq_num":              float64(880),
				"fileward.esf.version":              float64(9),
			}
			switch a {
			case ActionOpen:
				check["fileward.access"] = []any{"read"}
			case ActionRename, ActionLink, ActionClone, ActionExchange:
				check["file.Ext.original.path"] = ev.OrigPath
				check["file.Ext.original.name"] = ".com.apple.finder.plist.tmp"
				check["file.Ext.original.extension"] = "tmp"
			case ActionExtendedAttributesModification:
				check["fileward.extattr"] = "com.apple.quarantine"
			}
			for k, v := range check {
				got, ok := get(m, k)
				if !ok {
					t.Errorf("%s missing", k)
					continue
				}
				if !reflect.DeepEqual(got, v) {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
			}
			// Nothing more than we checked, apart from the team id that is
			// empty here and the fields that belong to other actions.
			flat := map[string]any{}
			flatten(m, "", flat)
			for k := range flat {
				if _, ok := check[k]; !ok {
					t.Errorf("unexpected field %s = %#v", k, flat[k])
				}
			}
		})
	}
}

// TestOmitUnknown checks that fields the event does not know are left out
// rather than written as zeros.
func TestOmitUnknown(t *testing.T) {
	enc := NewEncoder(Meta{HostID: "h"})
	ev := Event{
		TimeNS:   1,
		Action:   ActionClose,
		Provider: ProviderFanotify,
		Seq:      7,
		Path:     "/etc/hosts",
		Process:  Process{PID: 17, Executable: "/usr/bin/cat"},
	}
	m := decodeMap(t, enc.Append(nil, &ev))
	for _, k := range []string{
		"file.inode", "file.device", "file.mode", "file.uid", "file.gid", "file.size", "file.mtime", "file.type",
		"file.Ext", "user", "group", "process.parent", "process.code_signature", "process.hash", "process.args",
		"process.start", "event.created", "fileward", "host.name", "host.os", "agent.id", "agent.version",
	} {
		if v, ok := get(m, k); ok {
			t.Errorf("%s = %#v, want it absent", k, v)
		}
	}
	for k, want := range map[string]any{
		"process.name": "cat", "process.pid": float64(17), "host.id": "h", "agent.type": "fileward",
		"event.provider": "fanotify", "file.name": "hosts", "file.directory": "/etc",
	} {
		if got, _ := get(m, k); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	if _, ok := get(m, "file.extension"); ok {
		t.Errorf("file.extension present for /etc/hosts")
	}

	// No process at all: no process object.
	ev.Process = Process{}
	m = decodeMap(t, enc.Append(nil, &ev))
	if _, ok := get(m, "process"); ok {
		t.Errorf("process present for an event without process data")
	}

	// An explicit process.name wins over the executable's base name, and a
	// given entity_id is written as is.
	ev.Process = Process{PID: 3, Executable: "/usr/libexec/x", Name: "renamed", EntityID: "abc"}
	m = decodeMap(t, enc.Append(nil, &ev))
	if got, _ := get(m, "process.name"); got != "renamed" {
		t.Errorf("process.name = %v, want renamed", got)
	}
	if got, _ := get(m, "process.entity_id"); got != "abc" {
		t.Errorf("process.entity_id = %v, want abc", got)
	}
}

func TestSplitPath(t *testing.T) {
	cases := []struct{ path, dir, name, ext string }{
		{"/private/etc/pam.d/login", "/private/etc/pam.d", "login", ""},
		{"/etc/pam.d/login", "/etc/pam.d", "login", ""},
		{"/home/u/.bashrc", "/home/u", ".bashrc", ""},
		{"/tmp/a.tar.gz", "/tmp", "a.tar.gz", "gz"},
		{"/x", "/", "x", ""},
		{"/x.txt", "/", "x.txt", "txt"},
		{"/", "/", "", ""},
		{"relative.go", "", "relative.go", "go"},
		{"", "", "", ""},
		{"/tmp/file.", "/tmp", "file.", ""},
		{"/tmp/..hidden", "/tmp", "..hidden", "hidden"},
		{"/Users/a/Library/Preferences/com.apple.finder.plist", "/Users/a/Library/Preferences", "com.apple.finder.plist", "plist"},
		{"/private/tmp/.001.png", "/private/tmp", ".001.png", "png"},
		{"/a/b.dir/", "/a/b.dir", "", ""},
		{"/usr/lib/libc.so.6", "/usr/lib", "libc.so.6", "6"},
	}
	for _, c := range cases {
		dir, name, ext := SplitPath(c.path)
		if dir != c.dir || name != c.name || ext != c.ext {
			t.Errorf("SplitPath(%q) = %q, %q, %q; want %q, %q, %q", c.path, dir, name, ext, c.dir, c.name, c.ext)
		}
	}
}

// TestElasticRenameShape compares our rename document with the real Elastic
// Endpoint rename documents in the fixture: the file.* and
// file.Ext.original.* names must match and hold strings, and we must not
// repeat Elastic's extension mistake on /private/etc/pam.d/login.
func TestElasticRenameShape(t *testing.T) {
	f, err := os.Open(filepath.Join(testfixtures.Dir(t), "elastic-endpoint", "macos-file-events.ndjson"))
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	enc := NewEncoder(testMeta)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	renames, pam := 0, 0
	for sc.Scan() {
		var hit struct {
			Source map[string]any `json:"_source"`
		}
		if err := json.Unmarshal(sc.Bytes(), &hit); err != nil {
			t.Fatalf("fixture line: %v", err)
		}
		src := hit.Source
		action, _ := get(src, "event.action")
		path, _ := get(src, "file.path")
		if path == "/private/etc/pam.d/login" {
			pam++
			if ext, _ := get(src, "file.extension"); ext != "d/login" {
				t.Errorf("fixture changed: Elastic's extension for pam.d/login is %v", ext)
			}
			ev := Event{TimeNS: 1, Action: ActionModification, Path: "/private/etc/pam.d/login"}
			if ext, ok := get(decodeMap(t, enc.Append(nil, &ev)), "file.extension"); ok {
				t.Errorf("our file.extension for /private/etc/pam.d/login = %v, want none", ext)
			}
		}
		if action != "rename" {
			continue
		}
		renames++
		newPath := path.(string)
		oldPath, ok := get(src, "file.Ext.original.path")
		if !ok {
			t.Fatalf("Elastic rename without file.Ext.original.path: %v", src)
		}
		ev := fullEvent()
		ev.Action = ActionRename
		ev.Access = 0
		ev.Path = newPath
		ev.OrigPath = oldPath.(string)
		ours := decodeMap(t, enc.Append(nil, &ev))
		if got, _ := get(ours, "event.type"); !reflect.DeepEqual(got, []any{"change"}) {
			t.Errorf("event.type = %v, Elastic has [change]", got)
		}
		elasticType, _ := get(src, "event.type")
		if !reflect.DeepEqual(elasticType, []any{"change"}) {
			t.Errorf("fixture event.type = %v", elasticType)
		}
		// Every file field Elastic writes on a rename, we write with the same
		// value and JSON type.
		theirs := map[string]any{}
		flatten(src["file"].(map[string]any), "file", theirs)
		for k, v := range theirs {
			got, ok := get(ours, k)
			if k == "file.extension" && strings.Contains(v.(string), "/") {
				// Elastic's bug: an extension taken across a directory.
				if ok {
					t.Errorf("%s: we write %#v for %s, want none", k, got, newPath)
				}
				continue
			}
			if !ok {
				t.Errorf("%s: Elastic writes %#v, we write nothing", k, v)
				continue
			}
			if !reflect.DeepEqual(got, v) {
				t.Errorf("%s: ours %#v, Elastic %#v", k, got, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if renames != 5 || pam == 0 {
		t.Fatalf("fixture has %d renames and %d pam.d/login docs, want 5 and at least 1", renames, pam)
	}
}

func TestDeterministicIDs(t *testing.T) {
	a, b := NewEncoder(testMeta), NewEncoder(testMeta)
	ev := fullEvent()
	d1, d2 := a.Append(nil, &ev), b.Append(nil, &ev)
	if !bytes.Equal(d1, d2) {
		t.Fatalf("two encoders with the same meta differ:\n%s\n%s", d1, d2)
	}
	id := string(a.AppendID(nil, &ev))
	if len(id) != IDLen || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q is not %d lowercase hex digits", id, IDLen)
	}
	// Only host id, provider, stream and seq feed the id.
	other := ev
	other.TimeNS++
	other.Path = "/elsewhere"
	other.Action = ActionDeletion
	other.Process.PID++
	if got := string(a.AppendID(nil, &other)); got != id {
		t.Errorf("id changed with time/path/action/pid: %s vs %s", got, id)
	}
	seen := map[string]string{id: "base"}
	variants := map[string]func(*Event, *Encoder) *Encoder{
		"seq":      func(e *Event, enc *Encoder) *Encoder { e.Seq++; return enc },
		"stream":   func(e *Event, enc *Encoder) *Encoder { e.Stream++; return enc },
		"provider": func(e *Event, enc *Encoder) *Encoder { e.Provider = ProviderFanotify; return enc },
		"host": func(e *Event, enc *Encoder) *Encoder {
			m := testMeta
			m.HostID += "x"
			return NewEncoder(m)
		},
		"host name only": func(e *Event, enc *Encoder) *Encoder {
			m := testMeta
			m.HostName = "other"
			return NewEncoder(m)
		},
	}
	for name, f := range variants {
		e := fullEvent()
		enc := f(&e, a)
		got := string(enc.AppendID(nil, &e))
		if name == "host name only" {
			if got != id {
				t.Errorf("changing host.name changed the id")
			}
			continue
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("variant %s has the same id as %s", name, prev)
		}
		seen[got] = name
	}
	// Ids over a long run of sequences are distinct.
	ids := map[string]bool{}
	e := fullEvent()
	buf := make([]byte, 0, IDLen)
	for i := range uint64(30000) {
		e.Seq = i
		buf = a.AppendID(buf[:0], &e)
		if ids[string(buf)] {
			t.Fatalf("duplicate id at seq %d", i)
		}
		ids[string(buf)] = true
	}
	// The document carries the same id as AppendID.
	if got, _ := get(decodeMap(t, d1), "event.id"); got != id {
		t.Errorf("event.id %v != AppendID %s", got, id)
	}
	// Derived entity ids: stable, and different for a reused pid.
	p := ev.Process
	e1 := string(a.AppendEntityID(nil, &p))
	p.PIDVersion++
	e2 := string(a.AppendEntityID(nil, &p))
	if e1 == e2 || len(e1) != IDLen {
		t.Errorf("entity ids %q, %q", e1, e2)
	}
	if got, _ := get(decodeMap(t, d1), "process.entity_id"); got != e1 {
		t.Errorf("process.entity_id %v != AppendEntityID %s", got, e1)
	}
}

// AppendWithID writes the same document as Append, and points at the same
// id AppendID computes, also when dst already holds something.
func TestAppendWithID(t *testing.T) {
	enc := NewEncoder(testMeta)
	for _, a := range []Action{ActionOpen, ActionRename, ActionExec, ActionDeletion, Action(250)} {
		ev := fullEvent()
		ev.Action = a
		ev.Seq = uint64(a) * 7
		prefix := []byte("prefix bytes already in dst")
		out, at := enc.AppendWithID(append([]byte(nil), prefix...), &ev)
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("%v: prefix overwritten", a)
		}
		if want := enc.Append(nil, &ev); !bytes.Equal(out[len(prefix):], want) {
			t.Fatalf("%v: AppendWithID document differs from Append:\n%s\n%s", a, out[len(prefix):], want)
		}
		if got, want := string(out[at:at+IDLen]), string(enc.AppendID(nil, &ev)); got != want {
			t.Fatalf("%v: id at %d is %q, AppendID says %q", a, at, got, want)
		}
		if got := decodeMap(t, out[len(prefix):]); got["event"].(map[string]any)["id"] != string(out[at:at+IDLen]) {
			t.Fatalf("%v: event.id in the document is %v", a, got["event"].(map[string]any)["id"])
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	enc := NewEncoder(testMeta)
	ev := fullEvent()
	ren := fullEvent()
	ren.Action = ActionRename
	ren.OrigPath = "/tmp/old name\twith \"quotes\""
	ren.Path = "/tmp/caf\xc3\xa9\x01\xff"
	ren.Process.EntityID = "given"
	upper := fullEvent()
	upper.Path = "/Users/alice/Report.PDF" // ASCII upper case is folded without allocating
	loss := Loss{TimeNS: 5, Reason: LossRingFull, Count: 12, Seq: 3}
	hb := Heartbeat{TimeNS: 5e9, Seq: 2, StartedNS: 1e9, Captured: 10, Dropped: 1, Spooled: 9, SpoolBytes: 4096, RingDepth: 3}
	buf := make([]byte, 0, 4096)
	cases := map[string]func(){
		"Append":            func() { buf = enc.Append(buf[:0], &ev) },
		"Append rename":     func() { buf = enc.Append(buf[:0], &ren) },
		"Append upper ext":  func() { buf = enc.Append(buf[:0], &upper) },
		"AppendID":          func() { buf = enc.AppendID(buf[:0], &ev) },
		"AppendWithID":      func() { buf, _ = enc.AppendWithID(buf[:0], &ev) },
		"AppendLoss":        func() { buf = enc.AppendLoss(buf[:0], &loss) },
		"AppendLossID":      func() { buf = enc.AppendLossID(buf[:0], &loss) },
		"AppendHeartbeat":   func() { buf = enc.AppendHeartbeat(buf[:0], &hb) },
		"AppendHeartbeatID": func() { buf = enc.AppendHeartbeatID(buf[:0], &hb) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

func TestStringEscaping(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"\n\r\t\x00\x1f\x7f", `"\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"/tmp/<script>&", `"/tmp/<script>&"`},
		{"😀", "\"😀\""},
		{"a b", `"a b"`},       // space is the first byte written as is
		{"x\x80", `"x\ufffd"`}, // 0x80, the first byte that is not ASCII
		{"12345678\x80", `"12345678\ufffd"`},
	}
	for _, c := range cases {
		got := string(appendString(nil, c.in))
		if got != c.want {
			t.Errorf("appendString(%q) = %s, want %s", c.in, got, c.want)
		}
		// encoding/json must read back what it would have written itself.
		ref, _ := json.Marshal(c.in)
		var a, b string
		if err := json.Unmarshal([]byte(got), &a); err != nil {
			t.Errorf("%q: %v", got, err)
		}
		_ = json.Unmarshal(ref, &b)
		if a != b {
			t.Errorf("appendString(%q) decodes to %q, encoding/json's to %q", c.in, a, b)
		}
	}
}

func TestAppendTime(t *testing.T) {
	check := func(ns int64) {
		t.Helper()
		want := `"` + time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z") + `"`
		if got := string(appendTime(nil, ns)); got != want {
			t.Fatalf("appendTime(%d) = %s, want %s", ns, got, want)
		}
	}
	for _, ns := range []int64{0, 1, -1, 999_999_999, -1_000_000_000, 951782400e9, 951868800e9 - 1,
		4107542400e9, math.MaxInt64, math.MinInt64, -62135596800e9 / 1000} {
		check(ns)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		check(int64(r.Uint64()))
	}
	// Every day an int64 of nanoseconds can reach, against package time.
	for days := int64(math.MinInt64)/86400e9 - 1; days <= int64(math.MaxInt64)/86400e9+1; days++ {
		y, m, d := civilFromDays(days)
		ty, tm, td := time.Unix(days*86400, 0).UTC().Date()
		if int(y) != ty || time.Month(m) != tm || int(d) != td {
			t.Fatalf("civilFromDays(%d) = %d-%d-%d, want %d-%d-%d", days, y, m, d, ty, tm, td)
		}
	}
}

func TestAppendMode(t *testing.T) {
	for mode, want := range map[uint32]string{
		0o100644: `"0644"`, 0o40755: `"0755"`, 0o104755: `"4755"`, 0: `"0000"`, 0o7777: `"7777"`, 0o120777: `"0777"`,
	} {
		if got := string(appendMode(nil, mode)); got != want {
			t.Errorf("appendMode(%o) = %s, want %s", mode, got, want)
		}
	}
}

func TestFileType(t *testing.T) {
	for _, tn := range []string{"file", "dir", "symlink", "char_device", "block_device", "fifo", "socket"} {
		m, ok := fileTypeMode(tn)
		if !ok || fileType(m|0o644) != tn {
			t.Errorf("file type %s does not round-trip", tn)
		}
	}
	if fileType(0o644) != "" {
		t.Errorf("mode without type bits has a file.type")
	}
}

func TestLossDocument(t *testing.T) {
	enc := NewEncoder(testMeta)
	for r := LossReason(0); r < LossReasonCount; r++ {
		l := Loss{TimeNS: testTime("2026-11-26T02:00:00Z"), Reason: r, Count: 42, Seq: 9}
		doc := enc.AppendLoss(nil, &l)
		m := decodeMap(t, doc)
		for k, want := range map[string]any{
			"@timestamp":           "2026-11-26T02:00:00.000000000Z",
			"event.kind":           "pipeline_error",
			"event.action":         "events_lost",
			"event.dataset":        "fileward.agent",
			"event.module":         "fileward",
			"event.sequence":       float64(9),
			"event.id":             string(enc.AppendLossID(nil, &l)),
			"fileward.lost.reason": r.String(),
			"fileward.lost.count":  float64(42),
			"host.id":              testMeta.HostID,
			"agent.type":           "fileward",
			"ecs.version":          ECSVersion,
		} {
			if got, _ := get(m, k); !reflect.DeepEqual(got, want) {
				t.Errorf("%v: %s = %#v, want %#v", r, k, got, want)
			}
		}
		msg, _ := get(m, "message")
		if s, _ := msg.(string); !strings.Contains(s, "lost 42 events ("+r.String()+")") || strings.Contains(s, "unknown") {
			t.Errorf("%v: message %q", r, msg)
		}
		var ev Event
		if err := DecodeECS(doc, &ev); err == nil || !errorsIs(err, ErrNotFileEvent) {
			t.Errorf("DecodeECS(loss) = %v, want ErrNotFileEvent", err)
		}
	}
	// Totals: one field per reason, every reason present.
	tot := [LossReasonCount]uint64{}
	for r := range tot {
		tot[r] = uint64(100 + r)
	}
	m := decodeMap(t, enc.AppendLoss(nil, &Loss{TimeNS: 1, Reason: LossCorrupt, Count: 7, Seq: 1, Totals: &tot}))
	for r := LossReason(0); r < LossReasonCount; r++ {
		if got, _ := get(m, "fileward.lost.total."+r.String()); got != float64(100+int(r)) {
			t.Errorf("fileward.lost.total.%s = %v, want %d", r, got, 100+int(r))
		}
	}
	if rr, ok := ParseLossReason("corrupt"); !ok || rr != LossCorrupt {
		t.Errorf("ParseLossReason(corrupt) = %v, %v", rr, ok)
	}
	if _, ok := ParseLossReason("nope"); ok {
		t.Errorf("ParseLossReason(nope) is ok")
	}
	// Ids are deterministic and depend on reason, seq and time.
	l := Loss{TimeNS: 1, Reason: LossSeqGap, Count: 1, Seq: 1}
	ids := map[string]bool{string(enc.AppendLossID(nil, &l)): true}
	for _, f := range []func(*Loss){
		func(l *Loss) { l.Reason = LossRingFull },
		func(l *Loss) { l.Seq = 2 },
		func(l *Loss) { l.TimeNS = 2 },
	} {
		c := l
		f(&c)
		ids[string(enc.AppendLossID(nil, &c))] = true
	}
	if len(ids) != 4 {
		t.Errorf("loss ids collide: %v", ids)
	}
	c := l
	c.Count = 99
	if !ids[string(enc.AppendLossID(nil, &c))] {
		t.Errorf("loss id depends on Count")
	}
	one := decodeMap(t, enc.AppendLoss(nil, &l))
	if msg, _ := get(one, "message"); !strings.Contains(msg.(string), "lost 1 event (seq_gap)") {
		t.Errorf("singular message: %v", msg)
	}
}

func TestHeartbeatDocument(t *testing.T) {
	enc := NewEncoder(testMeta)
	h := Heartbeat{TimeNS: 100e9, Seq: 5, StartedNS: 40e9, Captured: 1000, Dropped: 3, Spooled: 997, SpoolBytes: 1 << 20, RingDepth: 12}
	doc := enc.AppendHeartbeat(nil, &h)
	m := decodeMap(t, doc)
	for k, want := range map[string]any{
		"event.kind":                 "metric",
		"event.action":               "heartbeat",
		"event.dataset":              "fileward.agent",
		"event.sequence":             float64(5),
		"event.id":                   string(enc.AppendHeartbeatID(nil, &h)),
		"fileward.stats.uptime_s":    float64(60),
		"fileward.stats.started":     "1970-01-01T00:00:40.000000000Z",
		"fileward.stats.captured":    float64(1000),
		"fileward.stats.dropped":     float64(3),
		"fileward.stats.spooled":     float64(997),
		"fileward.stats.spool_bytes": float64(1 << 20),
		"fileward.stats.ring_depth":  float64(12),
		"message":                    "fileward heartbeat",
		"host.name":                  testMeta.HostName,
	} {
		if got, _ := get(m, k); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	h2 := h
	h2.Seq++
	if bytes.Equal(enc.AppendHeartbeatID(nil, &h), enc.AppendHeartbeatID(nil, &h2)) {
		t.Errorf("heartbeat ids do not depend on Seq")
	}
	h.StartedNS = 0
	if _, ok := get(decodeMap(t, enc.AppendHeartbeat(nil, &h)), "fileward.stats.uptime_s"); ok {
		t.Errorf("uptime_s written without a start time")
	}
}

// TestFieldsCoverOutput checks that Fields() lists every field the encoders
// write, with a type that matches the JSON value, and that every listed
// field is written by some document.
func TestFieldsCoverOutput(t *testing.T) {
	fields := map[string]string{}
	for _, f := range Fields() {
		if _, dup := fields[f.Name]; dup {
			t.Errorf("Fields() lists %s twice", f.Name)
		}
		fields[f.Name] = f.Type
	}
	enc := NewEncoder(testMeta)
	var docs [][]byte
	for _, a := range Actions() {
		ev := fullEvent()
		ev.Action = a
		ev.OrigPath = "/tmp/old.txt"
		ev.ExtAttr = "user.x"
		ev.Count = 3
		ev.Stream = 2
		ev.PathTruncated = true
		ev.Process.TeamID = "ABCDE12345"
		ev.Process.HasCaps, ev.Process.CapEff, ev.Process.CapPrm = true, 1<<21, 1<<21|1
		docs = append(docs, enc.Append(nil, &ev))
	}
	docs = append(docs, enc.AppendLoss(nil, &Loss{TimeNS: 1, Count: 1, Totals: &[LossReasonCount]uint64{}}))
	docs = append(docs, enc.AppendHeartbeat(nil, &Heartbeat{TimeNS: 2, StartedNS: 1}))
	written := map[string]bool{}
	for _, d := range docs {
		flat := map[string]any{}
		flatten(decodeMap(t, d), "", flat)
		for _, k := range sortedKeys(flat) {
			written[k] = true
			typ, ok := fields[k]
			if !ok {
				t.Errorf("encoder writes %s, which Fields() does not list", k)
				continue
			}
			v := flat[k]
			if arr, ok := v.([]any); ok {
				v = arr[0]
			}
			var ok2 bool
			switch typ {
			case "keyword", "date", "match_only_text", "wildcard", "constant_keyword":
				_, ok2 = v.(string)
			case "long":
				_, ok2 = v.(float64)
			case "boolean":
				_, ok2 = v.(bool)
			}
			if !ok2 {
				t.Errorf("%s is listed as %s but written as %T", k, typ, v)
			}
		}
	}
	for _, f := range Fields() {
		if f.Name == "event.ingested" {
			continue // set by the ingest pipeline, not by the agent
		}
		if !written[f.Name] {
			t.Errorf("Fields() lists %s, which no document writes", f.Name)
		}
	}
}

func TestEncoderMeta(t *testing.T) {
	m := Meta{HostID: "id\"with\\quotes", HostName: "h\x00st"}
	enc := NewEncoder(m)
	if enc.Meta() != m {
		t.Errorf("Meta() = %+v", enc.Meta())
	}
	ev := Event{Action: ActionOpen, Path: "/a"}
	doc := decodeMap(t, enc.Append(nil, &ev))
	if got, _ := get(doc, "host.id"); got != m.HostID {
		t.Errorf("host.id = %v", got)
	}
	if got, _ := get(doc, "host.name"); got != m.HostName {
		t.Errorf("host.name = %v", got)
	}
	// An invalid action still yields valid JSON, which DecodeECS rejects.
	ev.Action = Action(200)
	raw := enc.Append(nil, &ev)
	if got, _ := get(decodeMap(t, raw), "event.action"); got != "unknown" {
		t.Errorf("event.action for invalid action = %v", got)
	}
	if err := DecodeECS(raw, &ev); !errorsIs(err, ErrInvalidDocument) {
		t.Errorf("DecodeECS(unknown action) = %v", err)
	}
}

// TestIDConstruction recomputes ids with crypto/aes exactly as docs/ecs.md
// describes them, so the documentation and the code cannot drift apart.
func TestIDConstruction(t *testing.T) {
	key := sha256.Sum256([]byte("fileward host\x00" + testMeta.HostID))
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		t.Fatal(err)
	}
	ref := func(w0, w1, w2, w3 uint64) string {
		var b1, b2 [16]byte
		binary.BigEndian.PutUint64(b1[0:], w0)
		binary.BigEndian.PutUint64(b1[8:], w1)
		binary.BigEndian.PutUint64(b2[0:], w2)
		binary.BigEndian.PutUint64(b2[8:], w3)
		var x [16]byte
		block.Encrypt(x[:], b1[:])
		for i := range x {
			x[i] ^= b2[i]
		}
		block.Encrypt(x[:], x[:])
		return hex.EncodeToString(x[:])
	}
	enc := NewEncoder(testMeta)
	ev := fullEvent()
	ev.Stream = 77
	if got, want := string(enc.AppendID([]byte("prefix"), &ev)), "prefix"+ref('E'<<56|uint64(ProviderEndpointSecurity), 77, ev.Seq, 0); got != want {
		t.Errorf("event id %s, want %s", got, want)
	}
	p := Process{PID: -5, PIDVersion: 3, StartNS: -9}
	if got, want := string(enc.AppendEntityID(nil, &p)), ref('P'<<56, uint64(uint32(p.PID))<<32|3, uint64(p.StartNS), 0); got != want {
		t.Errorf("entity id %s, want %s", got, want)
	}
	l := Loss{TimeNS: 123, Reason: LossSpoolFull, Seq: 9}
	if got, want := string(enc.AppendLossID(nil, &l)), ref('L'<<56|uint64(LossSpoolFull), 9, 123, 0); got != want {
		t.Errorf("loss id %s, want %s", got, want)
	}
	h := Heartbeat{TimeNS: 456, Seq: 8}
	if got, want := string(enc.AppendHeartbeatID(nil, &h)), ref('H'<<56, 8, 456, 0); got != want {
		t.Errorf("heartbeat id %s, want %s", got, want)
	}
}

func TestAppendNumbers(t *testing.T) {
	us := []uint64{0, 1, 9, 10, 42, 99, 100, 101, 12345, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	// Every digit count's bounds, and random values of every bit length.
	for _, p := range pow10 {
		us = append(us, p-1, p, p+1)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		us = append(us, r.Uint64()>>r.IntN(64))
	}
	for _, v := range us {
		if got, want := string(appendUint([]byte("x"), v)), "x"+strconv.FormatUint(v, 10); got != want {
			t.Fatalf("appendUint(%d) = %s", v, got)
		}
	}
	for _, v := range []int64{0, 7, 99, 100, -1, -99, math.MinInt64, math.MaxInt64} {
		if got, want := string(appendInt(nil, v)), strconv.FormatInt(v, 10); got != want {
			t.Errorf("appendInt(%d) = %s", v, got)
		}
	}
}

func TestWordIsPlain(t *testing.T) {
	ref := func(w uint64) bool {
		for i := 0; i < 8; i++ {
			c := byte(w >> (8 * i))
			if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				return false
			}
		}
		return true
	}
	r := rand.New(rand.NewPCG(3, 4))
	special := []byte{0, 0x1f, 0x20, 0x21, '"', 0x23, '\\', 0x5b, 0x5d, 0x7e, 0x7f, 0x80, 0xff, 'a'}
	for range 100000 {
		var w uint64
		for i := 0; i < 8; i++ {
			var c byte
			if r.IntN(3) == 0 {
				c = special[r.IntN(len(special))]
			} else {
				c = byte(0x20 + r.IntN(0x60))
			}
			w |= uint64(c) << (8 * i)
		}
		if got := wordIsPlain(w); got != ref(w) {
			t.Fatalf("wordIsPlain(%#x) = %v", w, got)
		}
	}
}

// TestEncoderConcurrent shares one Encoder between goroutines (run with
// -race): it holds no mutable state, so every goroutine gets the same bytes.
func TestEncoderConcurrent(t *testing.T) {
	enc := NewEncoder(testMeta)
	evs := roundTripEvents()
	want := make([][]byte, len(evs))
	for i := range evs {
		want[i] = enc.Append(nil, &evs[i])
	}
	errs := make(chan string, 4)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, 0, 2048)
			for n := 0; n < 500; n++ {
				i := n % len(evs)
				buf = enc.Append(buf[:0], &evs[i])
				if !bytes.Equal(buf, want[i]) {
					errs <- string(buf)
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Errorf("concurrent encoding differs: %s", e)
	}
}

// TestGoldenFullDocument pins the bytes of a document with every optional
// field, so a change of field order or formatting is a deliberate one (and
// docs/ecs.md must follow it).
func TestGoldenFullDocument(t *testing.T) {
	const golden = `{"@timestamp":"2026-11-26T02:05:39.123456789Z","data_stream":{"type":"logs","dataset":"fileward.file","namespace":"default"},"event":{"kind":"event","category":["file"],"type":["access"],"action":"open","outcome":"success","id":"6e6385c61b8a7e16c3b29ba71902e206","sequence":1234567,"module":"fileward","dataset":"fileward.file","provider":"endpoint_security","created":"2026-11-26T02:05:39.123501000Z"},"file":{"path":"/Users/alice/Library/Preferences/com.apple.finder.plist","name":"com.apple.finder.plist","directory":"/Users/alice/Library/Preferences","extension":"plist","type":"file","inode":"12884902011","device":"16777232","mode":"0644","uid":"501","gid":"20","size":40213,"mtime":"2026-11-25T18:00:01.500000000Z"},"process":{"pid":4242,"executable":"/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder","name":"Finder","args":["/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder","-psn_0_4242"],"args_count":2,"command_line":"/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder -psn_0_4242","working_directory":"/","entity_id":"7078038bd5daafddcea84f5f3b1b82ce","start":"2026-11-26T01:00:00.250000000Z","parent":{"pid":1,"executable":"/sbin/launchd","name":"launchd","args":["/sbin/launchd"],"args_count":1,"command_line":"/sbin/launchd","entity_id":"f6995c2631d0ddc5e36342ad9e7498d2","start":"2026-11-25T08:00:00.000000000Z"},"code_signature":{"exists":true,"signing_id":"com.apple.finder","flags":"604045313","valid":true,"trusted":true},"hash":{"cdhash":"5a1f0c9d2e3b4a5968778695a4b3c2d1e0f1a2b3"}},"user":{"id":"501","name":"alice","Ext":{"real":{"id":"501"}}},"group":{"id":"20","name":"staff"},"fileward":{"access":["read","write"],"count":3,"stream":2,"path_truncated":true,"extattr":"x","process":{"platform_binary":true},"esf":{"seq_num":880,"event":"open","version":9,"global_seq_num":1234567}},"host":{"id":"5d41402a-bc4b-2a76-b971-9d911017c592","name":"build-mac.local","hostname":"build-mac.local","architecture":"arm64","os":{"type":"macos","family":"macos","name":"macOS","platform":"macos","version":"15.3.1","kernel":"24.3.0","full":"macOS 15.3.1"}},"agent":{"type":"fileward","version":"0.1.0","id":"0b7c1f0e-3a52-4d6b-9f1e-2c3d4e5f6a7b"},"ecs":{"version":"8.17.0"}}`
	ev := fullEvent()
	ev.Count, ev.Stream, ev.PathTruncated, ev.ExtAttr = 3, 2, true, "x"
	got := string(NewEncoder(testMeta).Append(nil, &ev))
	if got != golden {
		t.Errorf("document changed:\n got %s\nwant %s", got, golden)
	}
}

// TestAppendAnyCapacity: Append writes the same bytes whatever room dst has,
// including exactly none to spare at any point of the document (the
// in-place work on process.command_line must stay inside the document).
func TestAppendAnyCapacity(t *testing.T) {
	enc := NewEncoder(testMeta)
	for i, ev := range roundTripEvents() {
		want := enc.Append(nil, &ev)
		for k := 0; k <= len(want); k++ {
			got := enc.Append(make([]byte, 0, k), &ev)
			if !bytes.Equal(got, want) {
				t.Fatalf("event %d, cap %d: got\n%s\nwant\n%s", i, k, got, want)
			}
		}
	}
}

// TestEntityIDCache derives entity ids through one Encoder from several
// goroutines at once, for tuples that repeat (cache hits), that differ
// only in pidversion or start time (in the same slot too), and that are many
// more than the cache has slots (evictions and slot collisions), and checks
// each against the uncached derivation.
func TestEntityIDCache(t *testing.T) {
	enc := NewEncoder(testMeta)
	type tuple struct {
		pid        int32
		pidVersion uint32
		start      int64
	}
	r := rand.New(rand.NewPCG(7, 8))
	var tuples []tuple
	for i := range 4 * entityCacheSlots {
		tp := tuple{int32(r.IntN(70000)) - 10, uint32(r.IntN(200000)), r.Int64() >> r.IntN(64)}
		tuples = append(tuples, tp)
		if i%3 == 0 {
			// Other pidversions and start times of the pid; the last one
			// shares the slot of tp (the slot ignores bit 40 of start).
			tuples = append(tuples, tuple{tp.pid, tp.pidVersion + 1, tp.start}, tuple{tp.pid, tp.pidVersion, tp.start + 1},
				tuple{tp.pid, tp.pidVersion, tp.start ^ 1<<40})
		}
	}
	want := make([]string, len(tuples))
	for i, tp := range tuples {
		w1 := uint64(uint32(tp.pid))<<32 | uint64(tp.pidVersion)
		want[i] = string(enc.appendID(nil, tagEntity<<56, w1, uint64(tp.start), 0))
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			rg := rand.New(rand.NewPCG(uint64(g), 9))
			buf := make([]byte, 0, 64)
			for range 20000 {
				// Mostly a small working set, sometimes anything.
				i := rg.IntN(16)
				if rg.IntN(4) == 0 {
					i = rg.IntN(len(tuples))
				}
				tp := tuples[i]
				buf = enc.appendEntityID(append(buf[:0], 'x'), tp.pid, tp.pidVersion, tp.start)
				if string(buf[1:]) != want[i] || buf[0] != 'x' {
					errs <- fmt.Errorf("tuple %+v: id %s, want %s", tp, buf[1:], want[i])
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestProcessCacheKey changes each field of a process in turn (the
// argument slices too) and encodes the event through an Encoder whose cache
// holds the unchanged process, as an exec and not: every document must
// equal the one the encoder writes without its cache. A Process field that
// procKey leaves out makes this fail.
func TestProcessCacheKey(t *testing.T) {
	enc := NewEncoder(testMeta)
	base := fullEvent()
	base.Process.Args, base.Process.Parent.Args = nil, nil
	uncached := func(ev *Event) string {
		return string(enc.appendProcessFields(nil, &ev.Process, ev.Action == ActionExec))
	}
	var variants []Event
	var vary func(v reflect.Value, path string)
	vary = func(v reflect.Value, path string) {
		for i := 0; i < v.NumField(); i++ {
			f, name := v.Field(i), path+v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				vary(f, name+".")
				continue
			}
			old := reflect.ValueOf(f.Interface())
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "/x")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int32, reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Uint32, reflect.Uint64:
				f.SetUint(f.Uint() ^ 0x20000001)
			case reflect.Slice:
				f.Set(reflect.ValueOf([]string{"a", "b"}))
			default:
				t.Fatalf("%s: kind %v not varied", name, f.Kind())
			}
			ev := base
			variants = append(variants, ev)
			f.Set(old)
		}
	}
	vary(reflect.ValueOf(&base.Process).Elem(), "")
	if len(variants) < 30 {
		t.Fatalf("only %d variants", len(variants))
	}
	for _, exec := range []bool{false, true} {
		for i := range variants {
			b, v := base, variants[i]
			if exec {
				b.Action, v.Action = ActionExec, ActionExec
			}
			for range 2 { // the second keeps it in the cache
				enc.Append(nil, &b)
			}
			if k, ok := procKeyOf(&b.Process, exec); !ok || enc.procs[k.slot()].entry.Load() == nil || enc.procs[k.slot()].entry.Load().key != k {
				t.Fatalf("variant %d (exec %v): the unchanged process is not in the cache", i, exec)
			}
			for _, ev := range []*Event{&v, &v, &b} {
				doc := string(enc.Append(nil, ev))
				if want := uncached(ev); !strings.Contains(doc, want) {
					t.Fatalf("variant %d (exec %v): document\n%s\ndoes not hold\n%s", i, exec, doc, want)
				}
			}
		}
	}
}
