package eslogger

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/fileward/fileward/schema"
)

// fixtureLine returns line n (1-based) of a testdata file.
func fixtureLine(t *testing.T, path string, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(b), []byte("\n"))[n-1]
}

func encodeMap(t *testing.T, enc *schema.Encoder, ev *schema.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(enc.Append(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func field(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = o[k]
	}
	return cur
}

// TestCodeSigningFromRealMessages checks process.code_signature.trusted on
// real eslogger output: an ad-hoc (linker-signed) tool is untrusted even
// though its signature is valid, an Apple platform binary is trusted, and a
// Developer ID app (team id, valid) is trusted.
func TestCodeSigningFromRealMessages(t *testing.T) {
	enc := schema.NewEncoder(schema.Meta{HostID: "h"})
	cases := []struct {
		file    string
		line    int
		trusted bool
		team    string
	}{
		// /bin/connection-checker: codesigning_flags 0x22020203 (VALID|ADHOC|LINKER_SIGNED…), no team id.
		{fixtureDir + "/real/exec.macos15.v9.ndjson", 1, false, ""},
		// localizationswitcherd: platform binary, CS_VALID.
		{fixtureDir + "/real/exec.macos27beta.v11.ndjson", 1, true, ""},
	}
	for _, c := range cases {
		p := NewParser()
		var ev schema.Event
		if mapped, err := p.Parse(fixtureLine(t, c.file, c.line), &ev); !mapped || err != nil {
			t.Fatalf("%s: mapped %v err %v", c.file, mapped, err)
		}
		m := encodeMap(t, enc, &ev)
		if got := field(m, "process.code_signature.trusted"); got != c.trusted {
			t.Errorf("%s: trusted = %v, want %v (flags %#x)", c.file, got, c.trusted, ev.Process.CSFlags)
		}
		if got := field(m, "process.code_signature.valid"); got != true {
			t.Errorf("%s: valid = %v", c.file, got)
		}
	}
	// A Developer ID app (Mullvad VPN, team CKG9MXH72F): the fork line's
	// process, flags 0x22010001 = VALID|RUNTIME|…|SIGNED, not ad-hoc.
	var msg map[string]any
	d := json.NewDecoder(bytes.NewReader(fixtureLine(t, fixtureDir+"/real/fork.macos26.v10.ndjson", 1)))
	d.UseNumber()
	if err := d.Decode(&msg); err != nil {
		t.Fatal(err)
	}
	msg["event"] = map[string]any{"open": map[string]any{"fflag": 1, "file": map[string]any{"path": "/tmp/x"}}}
	line, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var ev schema.Event
	if mapped, err := NewParser().Parse(line, &ev); err != nil || !mapped {
		t.Fatalf("open by the fork line's process: mapped %v err %v", mapped, err)
	}
	if ev.Process.TeamID != "CKG9MXH72F" {
		t.Fatalf("team id %q", ev.Process.TeamID)
	}
	if got := field(encodeMap(t, enc, &ev), "process.code_signature.trusted"); got != true {
		t.Errorf("Developer ID app: trusted = %v (flags %#x)", got, ev.Process.CSFlags)
	}
	// The same Developer ID process after its signature was invalidated
	// (CS_VALID cleared) is untrusted.
	inv := bytes.Replace(line, []byte(`"codesigning_flags":570491649`), []byte(`"codesigning_flags":570491648`), 1)
	if bytes.Equal(inv, line) {
		t.Fatal("fixture flags not found")
	}
	if mapped, err := NewParser().Parse(inv, &ev); err != nil || !mapped {
		t.Fatal(err)
	}
	if got := field(encodeMap(t, enc, &ev), "process.code_signature.trusted"); got != false {
		t.Errorf("invalidated Developer ID: trusted = %v", got)
	}
}

// TestExecStartJoinsFileEvents: the exec start event and a later file event
// of the new image share process.entity_id, and the exec's
// process.parent.entity_id equals the parent's own process.entity_id, so EQL
// sequences by process.entity_id join.
func TestExecStartJoinsFileEvents(t *testing.T) {
	enc := schema.NewEncoder(schema.Meta{HostID: "h"})
	p := NewParser()
	const parent = `{"version":9,"time":"2025-08-07T13:21:30.000000000Z","mach_time":1,"seq_num":1,"global_seq_num":70,` +
		`"process":{"audit_token":{"pid":58916,"pidversion":87724,"euid":501,"ruid":501,"egid":20},"ppid":1,` +
		`"executable":{"path":"\/bin\/zsh"},"signing_id":"com.apple.zsh","team_id":null,"is_platform_binary":true,"codesigning_flags":637623057,` +
		`"start_time":"2025-08-07T12:00:00.000000Z"},"event":{"open":{"fflag":1,"file":{"path":"\/etc\/zshrc"}}}}`
	var pev, xev, fev schema.Event
	if mapped, err := p.Parse([]byte(parent), &pev); !mapped || err != nil {
		t.Fatal(mapped, err)
	}
	if mapped, err := p.Parse(fixtureLine(t, fixtureDir+"/real/exec.macos15.v9.ndjson", 1), &xev); !mapped || err != nil {
		t.Fatal(mapped, err)
	}
	// A write by the new image: pid 97391, pidversion 149092, same start time.
	const child = `{"version":9,"time":"2025-08-07T13:21:36.000000000Z","mach_time":2,"seq_num":2,"global_seq_num":80,` +
		`"process":{"audit_token":{"pid":97391,"pidversion":149092,"euid":501,"ruid":501,"egid":20},"ppid":58916,` +
		`"parent_audit_token":{"pid":58916,"pidversion":87724},"executable":{"path":"\/bin\/connection-checker"},` +
		`"start_time":"2025-08-07T13:21:35.877422Z"},"event":{"create":{"destination_type":1,"destination":{"new_path":{"dir":{"path":"\/tmp"},"filename":"out.txt"}}}}}`
	if mapped, err := p.Parse([]byte(child), &fev); !mapped || err != nil {
		t.Fatal(mapped, err)
	}
	pm, xm, fm := encodeMap(t, enc, &pev), encodeMap(t, enc, &xev), encodeMap(t, enc, &fev)
	if c := field(xm, "event.category").([]any); len(c) != 1 || c[0] != "process" {
		t.Errorf("exec category %v", c)
	}
	if ty := field(xm, "event.type").([]any); len(ty) != 1 || ty[0] != "start" {
		t.Errorf("exec type %v", ty)
	}
	if field(xm, "data_stream.dataset") != "fileward.process" {
		t.Errorf("exec dataset %v", field(xm, "data_stream.dataset"))
	}
	if a, b := field(xm, "process.entity_id"), field(fm, "process.entity_id"); a == nil || a != b {
		t.Errorf("exec entity_id %v, file event entity_id %v", a, b)
	}
	if a, b := field(xm, "process.parent.entity_id"), field(pm, "process.entity_id"); a == nil || a != b {
		t.Errorf("exec parent.entity_id %v, parent's entity_id %v", a, b)
	}
	for k, want := range map[string]any{
		"process.parent.pid": float64(58916), "process.parent.executable": "/bin/zsh", "process.parent.name": "zsh",
		"process.working_directory": "/bin/mullvadvpn-app", "process.args_count": float64(1),
		"process.command_line": "/bin/connection-checker", "process.code_signature.trusted": false,
	} {
		if got := field(xm, k); got != want {
			t.Errorf("exec %s = %#v, want %#v", k, got, want)
		}
	}
	// An unseen parent: only the pid, nothing guessed.
	q := NewParser()
	if _, err := q.Parse(fixtureLine(t, fixtureDir+"/real/exec.macos15.v9.ndjson", 1), &xev); err != nil {
		t.Fatal(err)
	}
	par := field(encodeMap(t, enc, &xev), "process.parent").(map[string]any)
	if len(par) != 1 || par["pid"] != float64(58916) {
		t.Errorf("unseen parent written as %v", par)
	}
}
