package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"unsafe"
)

// Layout of struct event_hdr in bpf/fileward.bpf.c (little-endian, the only
// byte order the objects are built for). TestRecordLayout checks it against
// the bpf2go type.
const (
	hdrSize = 120

	offTime      = 0
	offStart     = 8
	offCgroup    = 16
	offIno       = 24
	offKeyDentry = 32
	offKeyMnt    = 40
	offDev       = 48
	offPID       = 52
	offTGID      = 56
	offPPID      = 60
	offUID       = 64
	offEUID      = 68
	offGID       = 72
	offEGID      = 76
	offMode      = 80
	offAction    = 84
	offAccess    = 86
	offComp1     = 88
	offSuffix1   = 90
	offComp2     = 92
	offSuffix2   = 94
	offFlags     = 96
	offComm      = 100
)

// Kernel actions (enum fw_action).
const (
	kOpen   = 1
	kClose  = 2
	kModify = 3
	kCreate = 4
	kDelete = 5
	kRename = 6
	kAttrib = 7
	kExec   = 8
	kLink   = 9
)

// record is one decoded ring buffer record.
type record struct {
	timeNS, startNS, cgroup, ino uint64
	keyDentry, keyMnt            uint64
	dev                          uint32
	pid, tgid, ppid              uint32
	uid, euid, gid, egid         uint32
	mode                         uint32
	action, access               uint16
	flags                        uint32
	comm                         []byte
	path, path2                  string
}

var errShort = errors.New("ebpf record: shorter than its header")

// decode parses one record. It never panics on any input.
func decode(b []byte, r *record) error {
	if len(b) < hdrSize {
		return errShort
	}
	le := binary.LittleEndian
	r.timeNS = le.Uint64(b[offTime:])
	r.startNS = le.Uint64(b[offStart:])
	r.cgroup = le.Uint64(b[offCgroup:])
	r.ino = le.Uint64(b[offIno:])
	r.keyDentry = le.Uint64(b[offKeyDentry:])
	r.keyMnt = le.Uint64(b[offKeyMnt:])
	r.dev = le.Uint32(b[offDev:])
	r.pid = le.Uint32(b[offPID:])
	r.tgid = le.Uint32(b[offTGID:])
	r.ppid = le.Uint32(b[offPPID:])
	r.uid = le.Uint32(b[offUID:])
	r.euid = le.Uint32(b[offEUID:])
	r.gid = le.Uint32(b[offGID:])
	r.egid = le.Uint32(b[offEGID:])
	r.mode = le.Uint32(b[offMode:])
	r.action = le.Uint16(b[offAction:])
	r.access = le.Uint16(b[offAccess:])
	c1 := int(le.Uint16(b[offComp1:]))
	s1 := int(le.Uint16(b[offSuffix1:]))
	c2 := int(le.Uint16(b[offComp2:]))
	s2 := int(le.Uint16(b[offSuffix2:]))
	r.flags = le.Uint32(b[offFlags:])
	comm := b[offComm : offComm+16]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	r.comm = comm
	if r.action < kOpen || r.action > kLink {
		return fmt.Errorf("ebpf record: unknown action %d", r.action)
	}
	body := b[hdrSize:]
	if c1+s1+c2+s2 > len(body) {
		return fmt.Errorf("ebpf record: path lengths %d+%d+%d+%d exceed the record's %d bytes", c1, s1, c2, s2, len(body))
	}
	r.path = joinPath(body[:c1], body[c1:c1+s1])
	r.path2 = ""
	if c2+s2 > 0 {
		body = body[c1+s1:]
		r.path2 = joinPath(body[:c2], body[c2:c2+s2])
	}
	return nil
}

// joinPath builds a path from the kernel's components (leaf first, each
// NUL-terminated) and a syscall's own path string (NUL-terminated, may be
// empty): the string alone when it is absolute, else the components' path
// joined with it and cleaned.
func joinPath(comps, suffix []byte) string {
	if i := bytes.IndexByte(suffix, 0); i >= 0 {
		suffix = suffix[:i]
	}
	if len(suffix) > 0 && suffix[0] == '/' {
		return path.Clean(string(suffix))
	}
	// One allocation: the components' bytes in reverse order, each after a
	// slash.
	size := 0
	for rest := comps; len(rest) > 0; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			i = len(rest)
		}
		if i > 0 {
			size += 1 + i
		}
		if i == len(rest) {
			break
		}
		rest = rest[i+1:]
	}
	if size == 0 {
		if len(suffix) == 0 {
			return "/"
		}
		return path.Join("/", string(suffix))
	}
	buf := make([]byte, size)
	at := size
	for rest := comps; len(rest) > 0; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			i = len(rest)
		}
		if i > 0 {
			at -= i
			copy(buf[at:], rest[:i])
			at--
			buf[at] = '/'
		}
		if i == len(rest) {
			break
		}
		rest = rest[i+1:]
	}
	dir := unsafe.String(&buf[0], len(buf)) // buf is never written again
	if len(suffix) == 0 {
		return dir
	}
	return path.Join(dir, string(suffix))
}
