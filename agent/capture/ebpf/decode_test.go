package ebpf

import (
	"encoding/binary"
	"testing"
)

// rec builds a record as the kernel writes it.
func rec(action uint16, comps1 []string, suffix1 string, comps2 []string, suffix2 string) []byte {
	b := make([]byte, hdrSize)
	le := binary.LittleEndian
	le.PutUint64(b[offTime:], 7)
	le.PutUint32(b[offTGID:], 42)
	le.PutUint32(b[offPPID:], 1)
	le.PutUint32(b[offEUID:], 1000)
	le.PutUint16(b[offAction:], action)
	copy(b[offComm:], "cat")
	var n [4]int
	put := func(comps []string, suffix string, ci, si int) {
		start := len(b)
		for _, c := range comps {
			b = append(b, c...)
			b = append(b, 0)
		}
		n[ci] = len(b) - start
		if suffix != "" {
			b = append(b, suffix...)
			b = append(b, 0)
		}
		n[si] = len(b) - start - n[ci]
	}
	put(comps1, suffix1, 0, 1)
	put(comps2, suffix2, 2, 3)
	le.PutUint16(b[offComp1:], uint16(n[0]))
	le.PutUint16(b[offSuffix1:], uint16(n[1]))
	le.PutUint16(b[offComp2:], uint16(n[2]))
	le.PutUint16(b[offSuffix2:], uint16(n[3]))
	return b
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name        string
		b           []byte
		path, path2 string
	}{
		{"walked file", rec(kOpen, []string{"passwd", "etc"}, "", nil, ""), "/etc/passwd", ""},
		{"root", rec(kOpen, nil, "", nil, ""), "/", ""},
		{"relative to a walked dir", rec(kDelete, []string{"work", "tmp"}, "sub/../x.txt", nil, ""), "/tmp/work/x.txt", ""},
		{"absolute syscall path", rec(kCreate, nil, "/var//log/./y", nil, ""), "/var/log/y", ""},
		{"rename", rec(kRename, []string{"d"}, "new", []string{"d"}, "old"), "/d/new", "/d/old"},
	} {
		var r record
		if err := decode(c.b, &r); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.path != c.path || r.path2 != c.path2 || r.tgid != 42 || r.euid != 1000 || string(r.comm) != "cat" {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
	var r record
	if err := decode(make([]byte, hdrSize-1), &r); err == nil {
		t.Error("short record decoded")
	}
	bad := rec(kOpen, []string{"a"}, "", nil, "")
	binary.LittleEndian.PutUint16(bad[offComp1:], 500)
	if err := decode(bad, &r); err == nil {
		t.Error("lengths past the end decoded")
	}
	bad = rec(99, nil, "", nil, "")
	if err := decode(bad, &r); err == nil {
		t.Error("unknown action decoded")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rec(kOpen, []string{"passwd", "etc"}, "", nil, ""))
	f.Add(rec(kRename, []string{"d"}, "new", []string{"d"}, "../old"))
	f.Add(rec(kCreate, nil, "/x", nil, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		if err := decode(b, &r); err != nil {
			return
		}
		if r.path == "" || r.path[0] != '/' {
			t.Fatalf("decoded path %q is not absolute", r.path)
		}
	})
}
