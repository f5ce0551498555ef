//go:build linux

package fanotify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInitAndMarkErrorMessages: each errno fanotify_init and fanotify_mark
// return is turned into a message that says what to do, and still wraps the
// errno for callers.
func TestInitAndMarkErrorMessages(t *testing.T) {
	k := kernel{release: "6.1.0-test", major: 6, minor: 1}
	for _, c := range []struct {
		err  error
		errn unix.Errno
		want []string
	}{
		{initError(unix.EPERM, k, "FID"), unix.EPERM, []string{"fanotify_init", "run fileward as root or with CAP_SYS_ADMIN"}},
		{initError(unix.EINVAL, k, "FAN_REPORT_DFID_NAME"), unix.EINVAL, []string{"Linux 6.1.0-test does not support FAN_REPORT_DFID_NAME", "upgrade to Linux 5.17"}},
		{initError(unix.EMFILE, k, "x"), unix.EMFILE, []string{"too many fanotify groups", "fs.fanotify.max_user_groups"}},
		{initError(fmt.Errorf("wrapped: %w", unix.ENOMEM), k, "x"), unix.ENOMEM, []string{"fanotify_init: wrapped:"}},
		{markError(unix.ENOENT, "/gone", "filesystem", k), 0, []string{`source.fanotify.marks: "/gone" does not exist`, "create it or remove it"}},
		{markError(unix.EINVAL, "/m", "mount", k), unix.EINVAL, []string{`fanotify_mark mount "/m"`, "Linux 6.1.0-test rejects", "mount marks cannot carry"}},
		{markError(unix.ENOSPC, "/m", "inode", k), unix.ENOSPC, []string{"too many marks", "fs.fanotify.max_user_marks"}},
		{markError(unix.EXDEV, "/m", "inode", k), unix.EXDEV, []string{`fanotify_mark inode "/m"`}},
	} {
		msg := c.err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not say %q", msg, w)
			}
		}
		if c.errn != 0 && !errors.Is(c.err, c.errn) {
			t.Errorf("%q does not wrap %v", msg, c.errn)
		}
	}
	// The generic forms do not borrow a specific errno's advice.
	if msg := initError(unix.ENOMEM, k, "x").Error(); strings.Contains(msg, "CAP_SYS_ADMIN") || strings.Contains(msg, "upgrade") {
		t.Errorf("ENOMEM: %q", msg)
	}
}

// TestHasCapSysAdmin: the capability read from /proc/self/status agrees
// with capget(2) for this process.
func TestHasCapSysAdmin(t *testing.T) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	want := data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
	if got := hasCapSysAdmin(); got != want {
		t.Fatalf("hasCapSysAdmin() = %v, capget says %v", got, want)
	}
	if unix.Geteuid() == 0 && checkPrivilege() != nil {
		t.Fatalf("checkPrivilege refuses root: %v", checkPrivilege())
	}
}

// TestMaskStringUnknownBits: bits without a name are printed in hex after
// the named ones, alone when nothing else is set.
func TestMaskStringUnknownBits(t *testing.T) {
	const unknown = 1 << 62
	for _, c := range []struct {
		m    uint64
		want string
	}{
		{0, ""},
		{fanOpen, "OPEN"},
		{fanOpen | fanCloseWrite, "OPEN|CLOSE_WRITE"},
		{unknown, "0x4000000000000000"},
		{fanOpen | unknown, "OPEN|0x4000000000000000"},
	} {
		if got := maskString(c.m); got != c.want {
			t.Errorf("maskString(%#x) = %q, want %q", c.m, got, c.want)
		}
	}
}

// TestDirCacheSmallAndUpdate: a cache asked for no room still holds one
// entry, and putting a key again replaces its path and makes it the most
// recently used.
func TestDirCacheSmallAndUpdate(t *testing.T) {
	c := newDirCache(0)
	c.put([]byte("a"), "/a", true)
	c.put([]byte("b"), "/b", true)
	if c.len() != 1 {
		t.Fatalf("len %d, want 1", c.len())
	}
	if _, _, found := c.get([]byte("a")); found {
		t.Fatal("a survived in a one-entry cache")
	}

	c = newDirCache(2)
	c.put([]byte("a"), "/a", true)
	c.put([]byte("b"), "/b", true)
	c.put([]byte("a"), "/a2", false) // update: a becomes the newest
	c.put([]byte("c"), "/c", true)   // evicts b, not a
	if p, ok, found := c.get([]byte("a")); !found || ok || p != "/a2" {
		t.Fatalf("a = %q %v %v, want the updated negative entry", p, ok, found)
	}
	if _, _, found := c.get([]byte("b")); found {
		t.Fatal("b not evicted after a was refreshed")
	}
	if c.len() != 2 {
		t.Fatalf("len %d", c.len())
	}
	if n := c.invalidatePrefix(""); n != 0 {
		t.Fatalf("invalidatePrefix(\"\") dropped %d", n)
	}
}

func TestSourceName(t *testing.T) {
	if n := (&Source{}).Name(); n != "fanotify" {
		t.Fatalf("Name() = %q", n)
	}
}

// TestDecodeMalformed: each way a record can be malformed gives its error,
// and the length to skip is the record's own when its length field can be
// trusted, 0 when it cannot; the records after a skippable one still decode.
func TestDecodeMalformed(t *testing.T) {
	good := rec(fanCreate, 7, fidInfo(infoDFIDName, 3, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "name"))
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	info := func(typ byte, body []byte) []byte {
		h := []byte{typ, 0, 0, 0}
		binary.NativeEndian.PutUint16(h[2:], uint16(4+len(body)))
		return append(h, body...)
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
		skip bool // n is the record's length
	}{
		{"shorter than the metadata", good[:metadataLen-1], errShort, false},
		{"length below the metadata", mutate(func(b []byte) []byte { binary.NativeEndian.PutUint32(b, metadataLen-1); return b }), errShort, false},
		{"length past the buffer", mutate(func(b []byte) []byte { binary.NativeEndian.PutUint32(b, uint32(len(b)+1)); return b }), errShort, false},
		{"unknown metadata version", mutate(func(b []byte) []byte { b[4] = metadataVersion + 1; return b }), errVersion, true},
		{"metadata length below its size", mutate(func(b []byte) []byte { binary.NativeEndian.PutUint16(b[6:], metadataLen-1); return b }), errShort, true},
		{"metadata length past the record", mutate(func(b []byte) []byte { binary.NativeEndian.PutUint16(b[6:], uint16(len(b)+1)); return b }), errShort, true},
		{"info header cut short", rec(fanCreate, 7, []byte{infoFID, 0}), errInfo, true},
		{"info length below its header", rec(fanCreate, 7, []byte{infoFID, 0, 3, 0}), errInfo, true},
		{"info length past the record", rec(fanCreate, 7, info(infoFID, make([]byte, 16))[:12]), errInfo, true},
		{"file handle shorter than its header", rec(fanCreate, 7, info(infoFID, make([]byte, 12))), errInfo, true},
		{"handle_bytes past the info", rec(fanCreate, 7, info(infoFID, func() []byte {
			body := make([]byte, 16)
			binary.NativeEndian.PutUint32(body[8:], 1)
			return body
		}())), errInfo, true},
		{"name without its NUL", rec(fanCreate, 7, info(infoDFIDName, append(make([]byte, 16), 'a', 'b', 'c', 'd'))), errInfo, true},
	} {
		buf := c.b // alone: what follows it would be read as part of it
		if c.skip {
			buf = append(append([]byte(nil), c.b...), good...)
		}
		_, n, err := decode(buf)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.err)
			continue
		}
		if !c.skip {
			if n != 0 {
				t.Errorf("%s: skip %d, want 0 (the rest cannot be trusted)", c.name, n)
			}
			continue
		}
		if n != len(c.b) {
			t.Errorf("%s: skip %d, want the record's %d bytes", c.name, n, len(c.b))
			continue
		}
		if r, _, err := decode(buf[n:]); err != nil || string(r.name) != "name" || r.pid != 7 {
			t.Errorf("%s: the next record: %+v %v", c.name, r, err)
		}
	}
	// An info type the decoder does not know is skipped, not an error.
	r, n, err := decode(rec(fanCreate, 7, info(200, make([]byte, 4)), fidInfo(infoDFIDName, 3, []byte{1, 2, 3, 4}, "x")))
	if err != nil || n == 0 || string(r.name) != "x" {
		t.Fatalf("unknown info type: %+v %d %v", r, n, err)
	}
}
