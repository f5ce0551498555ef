package schema

import (
	"encoding/json"
	"sort"
	"testing"
	"time"
)

var testMeta = Meta{
	HostID:       "5d41402a-bc4b-2a76-b971-9d911017c592",
	HostName:     "build-mac.local",
	Hostname:     "build-mac.local",
	Architecture: "arm64",
	OSType:       "macos",
	OSVersion:    "15.3.1",
	OSFamily:     "macos",
	OSName:       "macOS",
	OSPlatform:   "macos",
	OSKernel:     "24.3.0",
	OSFull:       "macOS 15.3.1",
	AgentID:      "0b7c1f0e-3a52-4d6b-9f1e-2c3d4e5f6a7b",
	AgentVersion: "0.1.0",
}

func testTime(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

// fullEvent is a realistic ESF open of a file by a signed process, with
// every optional part known.
func fullEvent() Event {
	return Event{
		TimeNS:    testTime("2026-11-26T02:05:39.123456789Z"),
		CreatedNS: testTime("2026-11-26T02:05:39.123501000Z"),
		Action:    ActionOpen,
		Provider:  ProviderEndpointSecurity,
		Access:    AccessRead | AccessWrite,
		Seq:       1234567,
		Stream:    0,
		Path:      "/Users/alice/Library/Preferences/com.apple.finder.plist",
		HasStat:   true,
		Inode:     12884902011,
		Device:    16777232,
		Mode:      0o100644,
		UID:       501,
		GID:       20,
		Size:      40213,
		MtimeNS:   testTime("2026-11-25T18:00:01.5Z"),
		Process: Process{
			PID:        4242,
			PPID:       1,
			PIDVersion: 99821,
			StartNS:    testTime("2026-11-26T01:00:00.25Z"),
			Executable: "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
			Args:       []string{"/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder", "-psn_0_4242"},
			WorkingDir: "/",
			Parent: Parent{
				Executable: "/sbin/launchd",
				Args:       []string{"/sbin/launchd"},
				PIDVersion: 2,
				StartNS:    testTime("2026-11-25T08:00:00Z"),
			},
			HasUser:    true,
			GroupName:  "staff",
			UID:        501,
			RUID:       501,
			GID:        20,
			UserName:   "alice",
			HasCodeSig: true,
			SigningID:  "com.apple.finder",
			TeamID:     "",
			CDHash:     "5a1f0c9d2e3b4a5968778695a4b3c2d1e0f1a2b3",
			Platform:   true,
			// CS_VALID | CS_SIGNED | CS_PLATFORM_BINARY | CS_RUNTIME
			CSFlags:    CSValid | CSSigned | CSPlatform | 0x10000,
			HasCSFlags: true,
		},
		ESFEvent:     "open",
		ESFVersion:   9,
		ESFSeqNum:    880,
		GlobalSeq:    1234567,
		HasGlobalSeq: true,
	}
}

// decodeMap parses doc into a generic map, failing the test on error.
func decodeMap(t testing.TB, doc []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("output is not valid JSON: %v\n%s", err, doc)
	}
	return m
}

// get walks a dotted path through nested maps. ok is false when any part is
// missing.
func get(m map[string]any, path string) (any, bool) {
	var cur any = m
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '.' {
			continue
		}
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[path[start:i]]
		if !ok {
			return nil, false
		}
		start = i + 1
	}
	return cur, true
}

// flatten returns every leaf of m by dotted name with its JSON value. An
// array is a leaf.
func flatten(m map[string]any, prefix string, out map[string]any) {
	for k, v := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(sub, name, out)
			continue
		}
		out[name] = v
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
