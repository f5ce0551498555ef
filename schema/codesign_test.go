package schema

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestCodeSignatureTrusted pins process.code_signature.trusted to Elastic
// Defend's meaning: a valid signature that chains to a trusted root, not
// "Apple platform binary".
func TestCodeSignatureTrusted(t *testing.T) {
	const runtime = 0x10000 // CS_RUNTIME, irrelevant to trust
	cases := []struct {
		name       string
		p          Process
		trusted    bool
		present    bool
		valid      bool
		platformFW bool
	}{
		{"developer ID, valid (Chrome)", Process{TeamID: "EQHXZ8M8AV", SigningID: "com.google.Chrome", CSFlags: CSValid | CSSigned | runtime}, true, true, true, false},
		{"ad-hoc, valid", Process{SigningID: "a.out-5e8c1a", CSFlags: CSValid | CSAdhoc | CSSigned}, false, true, true, false},
		{"ad-hoc with a team id is still ad-hoc", Process{TeamID: "X", SigningID: "x", CSFlags: CSValid | CSAdhoc}, false, true, true, false},
		{"platform binary", Process{SigningID: "com.apple.ls", Platform: true, CSFlags: CSValid | CSSigned | CSPlatform}, true, true, true, true},
		{"platform flag without is_platform_binary", Process{SigningID: "com.apple.ls", CSFlags: CSValid | CSSigned | CSPlatform}, true, true, true, false},
		{"developer ID, invalidated", Process{TeamID: "EQHXZ8M8AV", SigningID: "com.google.Chrome", CSFlags: CSSigned | runtime}, false, true, false, false},
		{"platform, invalidated", Process{SigningID: "com.apple.ls", Platform: true, CSFlags: CSSigned | CSPlatform}, false, true, false, true},
		{"valid, no team id, not platform", Process{SigningID: "x", CSFlags: CSValid | CSSigned}, false, true, true, false},
		{"unsigned", Process{CSFlags: 0}, false, true, false, false},
	}
	enc := NewEncoder(testMeta)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := Event{Action: ActionOpen, Path: "/x", Provider: ProviderEndpointSecurity}
			ev.Process = c.p
			ev.Process.PID = 10
			ev.Process.HasCodeSig = true
			ev.Process.HasCSFlags = true
			tr, ok := ev.Process.Trusted()
			if tr != c.trusted || ok != c.present {
				t.Fatalf("Trusted() = %v, %v; want %v, %v", tr, ok, c.trusted, c.present)
			}
			m := decodeMap(t, enc.Append(nil, &ev))
			if got, _ := get(m, "process.code_signature.trusted"); got != c.trusted {
				t.Errorf("process.code_signature.trusted = %v, want %v", got, c.trusted)
			}
			if got, _ := get(m, "process.code_signature.valid"); got != c.valid {
				t.Errorf("process.code_signature.valid = %v, want %v", got, c.valid)
			}
			got, ok := get(m, "fileward.process.platform_binary")
			if ok != c.platformFW || (ok && got != true) {
				t.Errorf("fileward.process.platform_binary = %v (present %v), want present %v", got, ok, c.platformFW)
			}
		})
	}
	// code_signature.exists: a signing id or the signed flag, either one.
	for _, c := range []struct {
		p      Process
		exists bool
	}{
		{Process{SigningID: "x", CSFlags: CSValid | CSAdhoc}, true},
		{Process{CSFlags: CSSigned}, true},
		{Process{CSFlags: CSValid}, false},
	} {
		ev := Event{Action: ActionOpen, Path: "/x", Provider: ProviderEndpointSecurity, Process: c.p}
		ev.Process.PID, ev.Process.HasCodeSig, ev.Process.HasCSFlags = 10, true, true
		if got, _ := get(decodeMap(t, enc.Append(nil, &ev)), "process.code_signature.exists"); got != c.exists {
			t.Errorf("%+v: process.code_signature.exists = %v, want %v", c.p, got, c.exists)
		}
	}
	// Without codesigning_flags trust was not evaluated: no trusted field.
	ev := Event{Action: ActionOpen, Path: "/x", Process: Process{PID: 1, HasCodeSig: true, SigningID: "s", TeamID: "T", Platform: true}}
	if _, ok := get(decodeMap(t, enc.Append(nil, &ev)), "process.code_signature.trusted"); ok {
		t.Error("trusted written without codesigning flags")
	}
	// Linux: no code signature at all.
	ev = Event{Action: ActionOpen, Path: "/x", Provider: ProviderFanotify, Process: Process{PID: 1, Executable: "/bin/cat"}}
	if _, ok := get(decodeMap(t, enc.Append(nil, &ev)), "process.code_signature"); ok {
		t.Error("code_signature written for a process without one")
	}
}

func TestExtensionLowercase(t *testing.T) {
	enc := NewEncoder(testMeta)
	for _, c := range []struct{ path, name, ext string }{
		{"/Users/a/Report.PDF", "Report.PDF", "pdf"},
		{"/tmp/x.Tar.Gz", "x.Tar.Gz", "gz"},
		{"/tmp/IMG.JPÉG", "IMG.JPÉG", "jpég"},
		{"/tmp/plain.txt", "plain.txt", "txt"},
	} {
		ev := Event{Action: ActionRename, Path: c.path, OrigPath: c.path + ".PART"}
		m := decodeMap(t, enc.Append(nil, &ev))
		if got, _ := get(m, "file.extension"); got != c.ext {
			t.Errorf("%s: file.extension = %v, want %s", c.path, got, c.ext)
		}
		if got, _ := get(m, "file.name"); got != c.name {
			t.Errorf("%s: file.name = %v, want %s", c.path, got, c.name)
		}
		if got, _ := get(m, "file.Ext.original.extension"); got != "part" {
			t.Errorf("%s: file.Ext.original.extension = %v, want part", c.path, got)
		}
		if Extension(c.path) != c.ext {
			t.Errorf("Extension(%s) = %s", c.path, Extension(c.path))
		}
	}
}

func TestDataStreamPerDocument(t *testing.T) {
	for _, c := range []struct {
		meta                Meta
		file, process, agnt string
	}{
		{Meta{HostID: "h"}, "logs-fileward.file-default", "logs-fileward.process-default", "logs-fileward.agent-default"},
		{Meta{HostID: "h", Namespace: "prod"}, "logs-fileward.file-prod", "logs-fileward.process-prod", "logs-fileward.agent-prod"},
		{Meta{HostID: "h", DefendCompatible: true}, "logs-endpoint.events.file-fileward", "logs-endpoint.events.process-fileward", "logs-fileward.agent-fileward"},
	} {
		enc := NewEncoder(c.meta)
		stream := func(doc []byte) string {
			m := decodeMap(t, doc)
			ty, _ := get(m, "data_stream.type")
			ds, _ := get(m, "data_stream.dataset")
			ns, _ := get(m, "data_stream.namespace")
			evds, _ := get(m, "event.dataset")
			if evds != ds {
				t.Errorf("event.dataset %v != data_stream.dataset %v", evds, ds)
			}
			s := ty.(string) + "-" + ds.(string) + "-" + ns.(string)
			if got, ok := DataStreamOf(doc); !ok || got != s {
				t.Errorf("DataStreamOf = %q, %v; want %q", got, ok, s)
			}
			return s
		}
		file := enc.Append(nil, &Event{Action: ActionCreation, Path: "/a"})
		exec := enc.Append(nil, &Event{Action: ActionExec, Path: "/bin/sh", Process: Process{PID: 2}})
		loss := enc.AppendLoss(nil, &Loss{TimeNS: 1, Count: 1})
		hb := enc.AppendHeartbeat(nil, &Heartbeat{TimeNS: 1})
		if got := stream(file); got != c.file {
			t.Errorf("file event to %s, want %s", got, c.file)
		}
		if got := stream(exec); got != c.process {
			t.Errorf("exec event to %s, want %s", got, c.process)
		}
		if got := stream(loss); got != c.agnt {
			t.Errorf("loss to %s, want %s", got, c.agnt)
		}
		if got := stream(hb); got != c.agnt {
			t.Errorf("heartbeat to %s, want %s", got, c.agnt)
		}
		if ds := c.meta.DataStreams(); ds[0] != c.file || ds[1] != c.process || ds[2] != c.agnt {
			t.Errorf("DataStreams() = %v", ds)
		}
	}
	if _, ok := DataStreamOf([]byte(`{"@timestamp":"x","event":{}}`)); ok {
		t.Error("DataStreamOf found a stream in a document without data_stream")
	}
}

// TestCapabilitiesOnStartEvents: Linux capability sets are written as
// process.thread.capabilities on process start events only (where Elastic's
// rules look), by name.
func TestCapabilitiesOnStartEvents(t *testing.T) {
	enc := NewEncoder(testMeta)
	p := Process{PID: 5, HasCaps: true, CapEff: 1<<21 | 1<<7, CapPrm: 1<<21 | 1<<7 | 1<<40 | 1<<63}
	ev := Event{Action: ActionExec, Path: "/bin/x", Process: p}
	m := decodeMap(t, enc.Append(nil, &ev))
	eff, _ := get(m, "process.thread.capabilities.effective")
	if fmt.Sprint(eff) != "[CAP_SETUID CAP_SYS_ADMIN]" {
		t.Errorf("effective %v", eff)
	}
	prm, _ := get(m, "process.thread.capabilities.permitted")
	if fmt.Sprint(prm) != "[CAP_SETUID CAP_SYS_ADMIN CAP_CHECKPOINT_RESTORE]" {
		t.Errorf("permitted %v (unknown bit 63 must be left out)", prm)
	}
	ev.Action = ActionOpen
	if _, ok := get(decodeMap(t, enc.Append(nil, &ev)), "process.thread"); ok {
		t.Error("capabilities on a file event")
	}
}

// TestExtensionFolding: only A..Z are folded (the letters at both ends
// included, the characters next to them not), non-ASCII goes through
// strings.ToLower, and Extension always agrees with the document's
// file.extension.
func TestExtensionFolding(t *testing.T) {
	enc := NewEncoder(testMeta)
	for _, c := range []struct{ path, ext string }{
		{"/tmp/x.dAt", "dat"},
		{"/tmp/x.Zip", "zip"},
		{"/tmp/x.AZ", "az"},
		{"/tmp/x.a@[`{", "a@[`{"},
		{"/tmp/x.ÀB", "àb"},
		{"/tmp/x.b\x80", "b\ufffd"},
	} {
		if got := Extension(c.path); got != c.ext {
			t.Errorf("Extension(%q) = %q, want %q", c.path, got, c.ext)
		}
		ev := Event{Action: ActionOpen, Path: c.path}
		m := decodeMap(t, enc.Append(nil, &ev))
		if got, _ := get(m, "file.extension"); got != c.ext {
			t.Errorf("%q: file.extension = %q, want %q", c.path, got, c.ext)
		}
	}
}

// TestNoEmptyFilewardBlock: a Linux event of count 1 with nothing else of
// Fileward's own has no fileward object (not an empty one); count 2 has one.
func TestNoEmptyFilewardBlock(t *testing.T) {
	enc := NewEncoder(testMeta)
	ev := Event{Action: ActionOpen, Path: "/x", Provider: ProviderFanotify, Count: 1}
	if doc := enc.Append(nil, &ev); bytes.Contains(doc, []byte(`"fileward":`)) {
		t.Errorf("count 1: %s", doc)
	}
	ev.Stream = 3 // a fileward object for the stream: still no count of 1 in it
	m := decodeMap(t, enc.Append(nil, &ev))
	if got, ok := get(m, "fileward.count"); ok || get2(m, "fileward.stream") != float64(3) {
		t.Errorf("count 1, stream 3: fileward.count = %v (present %v), stream %v", got, ok, get2(m, "fileward.stream"))
	}
	ev.Count = 2
	if got, _ := get(decodeMap(t, enc.Append(nil, &ev)), "fileward.count"); got != float64(2) {
		t.Errorf("count 2: fileward.count = %v", got)
	}
}

func get2(m map[string]any, path string) any { v, _ := get(m, path); return v }

// TestDataStreamOfLimits: DataStreamOf reads a namespace of 100 characters,
// the longest that agent.data_stream.namespace (and Elastic) accept, and
// refuses 101; a document cut short, or not one of ours, gives false
// without reading past its end.
func TestDataStreamOfLimits(t *testing.T) {
	for _, n := range []int{1, 99, 100} {
		ns := strings.Repeat("n", n)
		doc := NewEncoder(Meta{HostID: "h", Namespace: ns}).Append(nil, &Event{Action: ActionCreation, Path: "/a"})
		if got, ok := DataStreamOf(doc); !ok || got != "logs-fileward.file-"+ns {
			t.Errorf("namespace of %d: DataStreamOf = %q, %v", n, got, ok)
		}
	}
	long := []byte(`{"@timestamp":"x","data_stream":{"type":"logs","dataset":"d","namespace":"` + strings.Repeat("n", 101) + `"}}`)
	if got, ok := DataStreamOf(long); ok {
		t.Errorf("namespace of 101: DataStreamOf = %q, true", got)
	}
	doc := NewEncoder(Meta{HostID: "h"}).Append(nil, &Event{Action: ActionCreation, Path: "/a"})
	end := bytes.Index(doc, []byte(`"namespace":"default"`)) + len(`"namespace":"default`) // the closing quote
	if end < len(`"namespace":"default`) {
		t.Fatalf("no namespace in %s", doc)
	}
	for i := 0; i <= end; i++ {
		if got, ok := DataStreamOf(doc[:i]); ok {
			t.Errorf("document cut at %d: DataStreamOf = %q, true", i, got)
		}
	}
	// The prefix at the very start is found too.
	if got, ok := DataStreamOf([]byte(`,"data_stream":{"type":"logs","dataset":"a","namespace":"b"}`)); !ok || got != "logs-a-b" {
		t.Errorf("prefix at 0: %q, %v", got, ok)
	}
}

// TestEnumBounds: the first and last known values have names; one past the
// last has none (and does not index out of range).
func TestEnumBounds(t *testing.T) {
	if Action(actionCount).String() != "" || ActionOpen.String() != "open" {
		t.Errorf("Action names: %q %q", Action(actionCount).String(), ActionOpen.String())
	}
	if got := Actions(); len(got) != int(actionCount)-int(ActionOpen) || got[len(got)-1] != actionCount-1 {
		t.Errorf("Actions() = %v", got)
	}
	if LossReasonCount.String() != "unknown" || LossReason(0).String() == "unknown" {
		t.Errorf("loss reasons: %q %q", LossReasonCount.String(), LossReason(0).String())
	}
	for b, want := range map[int]string{-1: "", 0: "CAP_CHOWN", 40: "CAP_CHECKPOINT_RESTORE", 41: "", 63: ""} {
		if got := CapabilityName(b); got != want {
			t.Errorf("CapabilityName(%d) = %q, want %q", b, got, want)
		}
	}
}
