package schema

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// roundTripEvents are realistic events of several shapes.
func roundTripEvents() []Event {
	full := fullEvent()
	ren := fullEvent()
	ren.Action = ActionRename
	ren.Access = 0
	ren.OrigPath = "/tmp/x.tmp"
	ren.Path = "/tmp/x"
	ren.PathTruncated = true
	ren.Count = 4
	ren.Stream = 3
	ren.Process.TeamID = "EQHXZ8M8AV"
	ren.Process.Platform = false
	ren.Process.RUID = 0
	ren.HasGlobalSeq = false
	ren.ESFVersion = 0
	fan := Event{
		TimeNS: 1, CreatedNS: 2, Action: ActionModification, Provider: ProviderFanotify, Seq: 99,
		Path: "/var/log/syslog", HasStat: true, Inode: 5, Device: 2049, Mode: 0o100640, UID: 0, GID: 4, Size: 0,
		Process: Process{PID: 900, PPID: 1, StartNS: 77, Executable: "/usr/sbin/rsyslogd", HasUser: true, UserName: "syslog", UID: 104, RUID: 104, GID: 4},
	}
	exec := fullEvent()
	exec.Action = ActionExec
	exec.Access = 0
	exec.Process.HasCodeSig = true
	exec.Process.SigningID = ""
	exec.Process.CDHash = ""
	exec.Process.HasCaps, exec.Process.CapEff, exec.Process.CapPrm = true, 1<<21|1<<12, 1<<21|1<<12|1
	bare := Event{Action: ActionDeletion, Path: "relative"}
	return []Event{full, ren, fan, exec, bare}
}

func TestDecodeECSRoundTrip(t *testing.T) {
	enc := NewEncoder(testMeta)
	// A different host on decode: the host fields are not carried, so the
	// second encoder re-derives them; the event fields must survive.
	for i, ev := range roundTripEvents() {
		doc := enc.Append(nil, &ev)
		var got Event
		if err := DecodeECS(doc, &got); err != nil {
			t.Fatalf("event %d: DecodeECS: %v\n%s", i, err, doc)
		}
		again := enc.Append(nil, &got)
		if !bytes.Equal(doc, again) {
			t.Errorf("event %d: round trip differs:\n first %s\nsecond %s", i, doc, again)
		}
		// The carried Event fields are equal too, apart from the ones the
		// document derives (name, entity id) and PIDVersion, which only
		// feeds the derived entity id.
		want := ev
		if ev.Process.PID != 0 || ev.Process.Executable != "" {
			want.Process.Name = baseName(ev.Process.Executable)
			want.Process.EntityID = string(enc.AppendEntityID(nil, &ev.Process))
			want.Process.PIDVersion = 0
			if ev.Process.PPID > 0 {
				pp := &want.Process.Parent
				if pp.Name == "" {
					pp.Name = baseName(pp.Executable)
				}
				if pp.EntityID == "" && pp.StartNS != 0 {
					pp.EntityID = string(enc.AppendEntityID(nil, &Process{PID: ev.Process.PPID, PIDVersion: pp.PIDVersion, StartNS: pp.StartNS}))
				}
				pp.PIDVersion = 0
			}
		}
		if !ev.Process.HasCodeSig {
			want.Process.CDHash = ""
		}
		if !ev.HasGlobalSeq {
			want.GlobalSeq = 0
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: decoded\n%+v\nwant\n%+v", i, got, want)
		}
	}
}

func TestDecodeECSErrors(t *testing.T) {
	enc := NewEncoder(testMeta)
	ev := fullEvent()
	good := string(enc.Append(nil, &ev))
	cases := map[string]struct {
		doc  string
		want string
	}{
		"not json":         {`{"@timestamp":`, "unexpected end"},
		"empty":            {``, "unexpected end"},
		"array":            {`[]`, "cannot unmarshal"},
		"no timestamp":     {strings.Replace(good, `"@timestamp"`, `"ts"`, 1), "missing @timestamp"},
		"bad timestamp":    {strings.Replace(good, `"2026-11-26T02:05:39.123456789Z"`, `"yesterday"`, 1), "@timestamp"},
		"no action":        {strings.Replace(good, `"action":"open"`, `"actio":"open"`, 1), "missing event.action"},
		"unknown action":   {strings.Replace(good, `"action":"open"`, `"action":"teleport"`, 1), `unknown event.action "teleport"`},
		"no path":          {strings.Replace(good, `"path":"/Users`, `"pth":"/Users`, 1), "missing file.path"},
		"empty path":       {`{"@timestamp":"2026-01-01T00:00:00Z","event":{"action":"open"},"file":{"path":""}}`, "missing file.path"},
		"bad provider":     {strings.Replace(good, `"endpoint_security"`, `"dtrace"`, 1), "unknown event.provider"},
		"bad inode":        {strings.Replace(good, `"inode":"12884902011"`, `"inode":"-1"`, 1), "file.inode"},
		"numeric inode":    {strings.Replace(good, `"inode":"12884902011"`, `"inode":12884902011`, 1), "cannot unmarshal number"},
		"bad mode":         {strings.Replace(good, `"mode":"0644"`, `"mode":"0999"`, 1), "file.mode"},
		"big mode":         {strings.Replace(good, `"mode":"0644"`, `"mode":"17777"`, 1), "file.mode"},
		"bad type":         {strings.Replace(good, `"type":"file"`, `"type":"door"`, 1), "file.type"},
		"bad user":         {strings.Replace(good, `"user":{"id":"501"`, `"user":{"id":"root"`, 1), "user.id"},
		"bad access":       {strings.Replace(good, `"access":["read","write"]`, `"access":["exec"]`, 1), "fileward.access"},
		"pid overflow":     {strings.Replace(good, `"pid":4242`, `"pid":99999999999`, 1), "cannot unmarshal"},
		"bad created":      {strings.Replace(good, `"created":"2026-11-26T02:05:39.123501000Z"`, `"created":"2026"`, 1), "event.created"},
		"timestamp range":  {strings.Replace(good, `"2026-11-26T02:05:39.123456789Z"`, `"3000-01-01T00:00:00Z"`, 1), "outside the range"},
		"timestamp number": {strings.Replace(good, `"2026-11-26T02:05:39.123456789Z"`, `1`, 1), "cannot unmarshal"},
	}
	for name, c := range cases {
		var got Event
		err := DecodeECS([]byte(c.doc), &got)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !errors.Is(err, ErrInvalidDocument) {
			t.Errorf("%s: %v does not wrap ErrInvalidDocument", name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", name, err, c.want)
		}
	}
	var got Event
	if err := DecodeECS([]byte(good), &got); err != nil {
		t.Fatalf("good document: %v", err)
	}
	// Extra fields (as Elasticsearch or a collector might add) are ignored.
	extra := strings.Replace(good, `{"@timestamp"`, `{"data_stream":{"type":"logs"},"@timestamp"`, 1)
	if err := DecodeECS([]byte(extra), &got); err != nil {
		t.Errorf("extra fields: %v", err)
	}
}

// FuzzEncode feeds arbitrary strings and numbers into an Event. The output
// must always be valid JSON, identical on a second encoding, carry the
// strings as encoding/json would, and for a valid event survive
// DecodeECS → Append byte for byte. The inputs are few and wide (four
// strings, "|"-separated parts of the fourth, and a byte string that holds
// every number) so the fuzzer mutates them quickly.
func FuzzEncode(f *testing.F) {
	f.Add("/tmp/a.txt", "/tmp/b", "/bin/ls", "ls|arg|user|sig|team|cd|open|xattr|host", []byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09"))
	f.Add("\x00\"\\\n\xff\xfe", "\u2028", "", "", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80})
	f.Add("/private/etc/pam.d/login", "", "/usr/bin/sudo", "sudo|-s|root|com.apple.sudo||ab|write||h", []byte{})
	f.Fuzz(func(t *testing.T, path, orig, exe, other string, nums []byte) {
		parts := strings.Split(other, "|")
		part := func(i int) string { return parts[i%len(parts)] }
		name, user, sig, team, cd, esfEv, xattr, host := part(0), part(2), part(3), part(4), part(5), part(6), part(7), part(8)
		var n [72]byte
		copy(n[:], nums)
		u64 := func(i int) uint64 { return binary.LittleEndian.Uint64(n[8*i:]) }
		tns, cns, seq, stream := int64(u64(0)), int64(u64(1)), u64(2), u64(3)
		pid, ppid := int32(u64(4)), int32(u64(4)>>32)
		mode := uint32(u64(5))
		action, provider, access := n[48], n[49], n[50]
		flags := binary.LittleEndian.Uint16(n[51:])
		enc := NewEncoder(Meta{HostID: host, HostName: host, OSType: "linux", OSVersion: orig, AgentID: name, AgentVersion: exe})
		ev := Event{
			TimeNS: tns, CreatedNS: cns, Action: Action(action % uint8(actionCount+1)), Provider: Provider(provider % 4),
			Access: access, Seq: seq, Stream: stream, Path: path, OrigPath: orig, PathTruncated: flags&1 != 0,
			HasStat: flags&2 != 0, Inode: seq ^ stream, Device: stream, Mode: mode, UID: uint32(pid), GID: uint32(ppid),
			Size: tns, MtimeNS: cns,
			Process: Process{
				PID: pid, PPID: ppid, PIDVersion: mode, StartNS: tns / 3, Executable: exe, Name: name,
				HasUser: flags&4 != 0, UID: mode, RUID: uint32(ppid), GID: uint32(pid), UserName: user,
				HasCodeSig: flags&8 != 0, SigningID: sig, TeamID: team, CDHash: cd, Platform: flags&16 != 0,
			},
			ESFEvent: esfEv, ESFVersion: uint32(access), ESFSeqNum: seq / 2, GlobalSeq: seq, HasGlobalSeq: flags&32 != 0,
			ExtAttr: xattr, Count: uint32(flags >> 8),
		}
		if flags&64 != 0 {
			ev.Process.Args = parts
		}
		if flags&128 != 0 {
			ev.Process.EntityID = sig
		}
		doc := enc.Append(nil, &ev)
		if !json.Valid(doc) {
			t.Fatalf("invalid JSON: %q", doc)
		}
		if again := enc.Append(make([]byte, 0, 7), &ev); !bytes.Equal(doc, again) {
			t.Fatalf("not deterministic:\n%s\n%s", doc, again)
		}
		// The second Append kept the process objects in the encoder's
		// cache (unless the process has arguments): the third takes them.
		if cached := enc.Append(nil, &ev); !bytes.Equal(doc, cached) {
			t.Fatalf("from the process cache:\n%s\nwant\n%s", cached, doc)
		}
		m := decodeMap(t, doc)
		var want string
		ref, _ := json.Marshal(path)
		_ = json.Unmarshal(ref, &want)
		if got, _ := get(m, "file.path"); got != want {
			t.Fatalf("file.path = %q, want %q", got, want)
		}
		if ev.Action == ActionNone || ev.Action >= actionCount || path == "" || ev.Provider > ProviderFanotify {
			return
		}
		var back Event
		if err := DecodeECS(doc, &back); err != nil {
			t.Fatalf("DecodeECS of our own document: %v\n%s", err, doc)
		}
		if !utf8.ValidString(path) || !utf8.ValidString(orig) || !utf8.ValidString(exe) || !utf8.ValidString(other) {
			return // invalid UTF-8 was replaced, so the bytes legitimately differ
		}
		if again := enc.Append(nil, &back); !bytes.Equal(doc, again) {
			t.Fatalf("round trip differs:\n first %s\nsecond %s", doc, again)
		}
	})
}

// FuzzDecodeECS feeds arbitrary bytes to DecodeECS. It must never panic,
// and whatever it accepts must re-encode to a document that decodes to the
// same Event and re-encodes to the same bytes.
func FuzzDecodeECS(f *testing.F) {
	enc := NewEncoder(testMeta)
	for _, ev := range roundTripEvents() {
		f.Add(enc.Append(nil, &ev))
	}
	f.Add([]byte(`{"@timestamp":"2026-01-01T00:00:00+02:00","event":{"action":"open"},"file":{"path":"/a","mode":"7"}}`))
	f.Add([]byte(`{"@timestamp":"2026-01-01T00:00:00Z","event":{"action":"rename","sequence":18446744073709551615},"file":{"path":"/a","Ext":{"original":{"path":"/b"}}},"user":{"id":"0"}}`))
	f.Add(enc.AppendLoss(nil, &Loss{TimeNS: 1, Count: 2}))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var ev Event
		if err := DecodeECS(line, &ev); err != nil {
			if !errors.Is(err, ErrInvalidDocument) && !errors.Is(err, ErrNotFileEvent) {
				t.Fatalf("error %v wraps neither ErrInvalidDocument nor ErrNotFileEvent", err)
			}
			return
		}
		doc := enc.Append(nil, &ev)
		if !json.Valid(doc) {
			t.Fatalf("invalid JSON from decoded event: %s", doc)
		}
		var ev2 Event
		if err := DecodeECS(doc, &ev2); err != nil {
			t.Fatalf("our re-encoding of an accepted document fails to decode: %v\n%s", err, doc)
		}
		if doc2 := enc.Append(nil, &ev2); !bytes.Equal(doc, doc2) {
			t.Fatalf("not stable after one round trip:\n%s\n%s", doc, doc2)
		}
	})
}

// TestDecodeModeLimit: 7777 is the largest file.mode DecodeECS takes; the
// next octal number is refused.
func TestDecodeModeLimit(t *testing.T) {
	enc := NewEncoder(testMeta)
	ev := fullEvent()
	good := string(enc.Append(nil, &ev))
	if !strings.Contains(good, `"mode":"0644"`) || !strings.Contains(good, `"type":"file"`) {
		t.Fatalf("the full event has no mode 0644 of a regular file: %s", good)
	}
	var got Event
	if err := DecodeECS([]byte(strings.Replace(good, `"mode":"0644"`, `"mode":"7777"`, 1)), &got); err != nil {
		t.Fatalf("mode 7777: %v", err)
	}
	if got.Mode != 0o100000|0o7777 {
		t.Errorf("mode 7777 decoded as %o, want 107777", got.Mode)
	}
	err := DecodeECS([]byte(strings.Replace(good, `"mode":"0644"`, `"mode":"10000"`, 1)), &got)
	if err == nil || err.Error() != `invalid ECS document: file.mode: "10000" is not an octal permission string` {
		t.Errorf("mode 10000: %v", err)
	}
}
