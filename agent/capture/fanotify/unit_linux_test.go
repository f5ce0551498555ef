//go:build linux

package fanotify

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/fileward/fileward/schema"
)

func TestSplitOrder(t *testing.T) {
	all, _ := parseEvents([]string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec", "access", "write"})
	cases := []struct {
		mask uint64
		ev   eventSet
		want []schema.Action
	}{
		// The merge docs/linux.md records on 6.18: create, open, write, close-write, close-nowrite.
		{fanCreate | fanOpen | fanModify | fanCloseWrite | fanCloseNoWrite, defaultSet(),
			[]schema.Action{schema.ActionCreation, schema.ActionOpen, schema.ActionModification, schema.ActionClose}},
		{fanCloseWrite, defaultSet(), []schema.Action{schema.ActionClose}}, // opened for writing, nothing written
		{fanOpen | fanOpenExec | fanCloseNoWrite, defaultSet(), []schema.Action{schema.ActionExec, schema.ActionClose}},
		{fanAttrib | fanDelete, defaultSet(), []schema.Action{schema.ActionAttributesModification, schema.ActionDeletion}},
		{fanCreate | fanOnDir | fanOpen | fanCloseNoWrite, defaultSet(), []schema.Action{schema.ActionCreation}}, // directory opens are not file accesses
		{fanRename | fanOnDir, defaultSet(), []schema.Action{schema.ActionRename}},
		{fanOpen | fanAccess | fanModify | fanCloseWrite, all,
			[]schema.Action{schema.ActionOpen, schema.ActionAccess, schema.ActionModification, schema.ActionModification}},
		{fanCreate | fanModify, eventSet{create: true}, []schema.Action{schema.ActionCreation}},
	}
	for i, c := range cases {
		sp := newSplitter(c.ev, 16)
		var st [maxSteps]step
		n := sp.split(c.mask, 1, &st)
		var got []schema.Action
		for _, s := range st[:n] {
			got = append(got, s.action)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%d: %s → %v, want %v", i, maskString(c.mask), got, c.want)
		}
	}
}

func defaultSet() eventSet { s, _ := parseEvents(nil); return s }

func TestModifyThenCloseAcrossRecords(t *testing.T) {
	sp := newSplitter(defaultSet(), 2)
	var st [maxSteps]step
	if n := sp.split(fanOpen|fanModify, 7, &st); n != 1 || st[0].action != schema.ActionOpen || st[0].access != schema.AccessWrite {
		t.Fatalf("open|modify: %v", st[:n])
	}
	if n := sp.split(fanCloseWrite, 8, &st); n != 1 || st[0].action != schema.ActionClose {
		t.Fatalf("close_write of another (pid, file): %v", st[:n])
	}
	if n := sp.split(fanCloseWrite, 7, &st); n != 1 || st[0].action != schema.ActionModification {
		t.Fatalf("close_write after modify: %v", st[:n])
	}
	if n := sp.split(fanCloseWrite, 7, &st); n != 1 || st[0].action != schema.ActionClose {
		t.Fatalf("second close_write: %v", st[:n])
	}
	// The set is bounded.
	for k := uint64(0); k < 100; k++ {
		sp.split(fanModify, k, &st)
	}
	if len(sp.modified) > 2 {
		t.Fatalf("modified set grew to %d", len(sp.modified))
	}
}

func TestParseEventsUnknown(t *testing.T) {
	s, unknown := parseEvents([]string{"open", "truncate", "setextattr", "WRITE"})
	if !s.open || !s.write || s.close || fmt.Sprint(unknown) != "[truncate setextattr]" {
		t.Fatalf("%+v %v", s, unknown)
	}
	if m := s.kernelMask(false); m != fanOpen|fanModify {
		t.Fatalf("mask %s", maskString(m))
	}
	d := defaultSet()
	if m := d.kernelMask(false); m&fanRename == 0 || m&fanMovedFrom != 0 || m&fanOnDir == 0 || m&fanAccess != 0 {
		t.Fatalf("default mask %s", maskString(m))
	}
	if m := d.kernelMask(true); m&fanRename != 0 || m&(fanMovedFrom|fanMovedTo) == 0 {
		t.Fatalf("legacy mask %s", maskString(m))
	}
}

func TestDirCache(t *testing.T) {
	c := newDirCache(3)
	k := func(s string) []byte { return []byte(s) }
	c.put(k("a"), "/x", true)
	c.put(k("b"), "/x/y", true)
	c.put(k("c"), "/xy", true)
	if p, ok, found := c.get(k("a")); !found || !ok || p != "/x" {
		t.Fatal("a")
	}
	c.put(k("d"), "/x/y/z", true) // evicts b, the least recently used
	if _, _, found := c.get(k("b")); found {
		t.Fatal("b not evicted")
	}
	if c.len() != 3 {
		t.Fatalf("len %d", c.len())
	}
	if n := c.invalidatePrefix("/x"); n != 2 { // /x and /x/y/z, not /xy
		t.Fatalf("invalidated %d", n)
	}
	if _, _, found := c.get(k("c")); !found {
		t.Fatal("/xy dropped by prefix /x")
	}
	c.put(k("e"), "", false)
	if _, ok, found := c.get(k("e")); !found || ok {
		t.Fatal("negative entry")
	}
	c.remove(k("e"))
	if c.len() != 1 {
		t.Fatalf("len %d", c.len())
	}
	if joinPath("/", []byte("a")) != "/a" || joinPath("/d", []byte(".")) != "/d" || joinPath("/d", []byte("f")) != "/d/f" {
		t.Fatal("joinPath")
	}
	if !underPath("/a/b", "/a") || underPath("/ab", "/a") || !underPath("/a", "/a") || !underPath("/x", "/") {
		t.Fatal("underPath")
	}
}

// rec builds a kernel record: metadata and info records.
func rec(mask uint64, pid int32, infos ...[]byte) []byte {
	l := metadataLen
	for _, in := range infos {
		l += len(in)
	}
	b := make([]byte, metadataLen, l)
	binary.NativeEndian.PutUint32(b[0:], uint32(l))
	b[4] = metadataVersion
	binary.NativeEndian.PutUint16(b[6:], metadataLen)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], uint32(0xffffffff)) // FAN_NOFD
	binary.NativeEndian.PutUint32(b[20:], uint32(pid))
	for _, in := range infos {
		b = append(b, in...)
	}
	return b
}

func fidInfo(typ byte, fsid uint64, handle []byte, name string) []byte {
	body := make([]byte, 16, 16+len(handle)+len(name)+1)
	binary.NativeEndian.PutUint64(body[0:], fsid)
	binary.NativeEndian.PutUint32(body[8:], uint32(len(handle)))
	binary.NativeEndian.PutUint32(body[12:], 1)
	body = append(body, handle...)
	if typ != infoFID && typ != infoDFID {
		body = append(body, name...)
		body = append(body, 0)
	}
	for (4+len(body))%4 != 0 {
		body = append(body, 0)
	}
	h := []byte{typ, 0, 0, 0}
	binary.NativeEndian.PutUint16(h[2:], uint16(4+len(body)))
	return append(h, body...)
}

func TestDecode(t *testing.T) {
	b := rec(fanRename|fanOnDir, 42,
		fidInfo(infoOldDFIDName, 9, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "old"),
		fidInfo(infoNewDFIDName, 9, []byte{8, 7, 6, 5, 4, 3, 2, 1}, "new"),
		fidInfo(infoFID, 9, []byte{5, 5, 5, 5}, ""))
	b = append(b, rec(fanQOverflow, 0)...)
	r, n, err := decode(b)
	if err != nil || n == 0 {
		t.Fatal(err)
	}
	if r.pid != 42 || string(r.oldName) != "old" || string(r.newName) != "new" || r.oldDir.fsid != 9 || len(r.obj.handle) != 4 || r.dir.ok() {
		t.Fatalf("%+v", r)
	}
	r, _, err = decode(b[n:])
	if err != nil || r.mask != fanQOverflow || r.fd != -1 {
		t.Fatalf("overflow: %+v %v", r, err)
	}
	// Truncations never panic and never claim more than the buffer.
	for i := 0; i < len(b); i++ {
		if _, n, _ := decode(b[:i]); n > i {
			t.Fatalf("n %d > len %d", n, i)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rec(fanCreate, 1, fidInfo(infoDFIDName, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "name"), fidInfo(infoFID, 1, []byte{1, 2, 3, 4}, "")))
	f.Add(rec(fanQOverflow, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			r, n, err := decode(b)
			if n > len(b) || n < 0 {
				t.Fatalf("n %d of %d", n, len(b))
			}
			if err == nil {
				if len(r.name) > n || len(r.dir.key) > n {
					t.Fatal("slice beyond record")
				}
			}
			if n == 0 {
				return
			}
			b = b[n:]
		}
	})
}
