//go:build linux

package fanotify

import (
	"encoding/binary"
	"errors"
)

// Kernel ABI constants from <linux/fanotify.h>, defined here so the decoder
// builds and fuzzes on every OS.
const (
	fanAccess       = 0x00000001
	fanModify       = 0x00000002
	fanAttrib       = 0x00000004
	fanCloseWrite   = 0x00000008
	fanCloseNoWrite = 0x00000010
	fanOpen         = 0x00000020
	fanMovedFrom    = 0x00000040
	fanMovedTo      = 0x00000080
	fanCreate       = 0x00000100
	fanDelete       = 0x00000200
	fanDeleteSelf   = 0x00000400
	fanMoveSelf     = 0x00000800
	fanOpenExec     = 0x00001000
	fanQOverflow    = 0x00004000
	fanRename       = 0x10000000
	fanEventOnChild = 0x08000000
	fanOnDir        = 0x40000000

	metadataVersion = 3
	metadataLen     = 24

	infoFID         = 1
	infoDFIDName    = 2
	infoDFID        = 3
	infoOldDFIDName = 10
	infoNewDFIDName = 12
)

// fidRef points into the read buffer at one file identifier: fsid, handle
// type and handle bytes. key is the contiguous raw bytes of all three, used
// as a cache key without copying.
type fidRef struct {
	fsid   uint64
	htype  int32
	handle []byte
	key    []byte
}

func (f fidRef) ok() bool { return f.key != nil }

// record is one decoded kernel record. Slices alias the read buffer.
type record struct {
	mask uint64
	fd   int32
	pid  int32

	dir  fidRef // DFID_NAME or DFID: the parent directory (or the directory itself, name ".")
	name []byte
	obj  fidRef // FID: the object itself (the target of a dirent event with FAN_REPORT_TARGET_FID)

	oldDir  fidRef // FAN_RENAME: old parent and name
	oldName []byte
	newDir  fidRef // FAN_RENAME: new parent and name
	newName []byte
}

var (
	errShort   = errors.New("fanotify: short record")
	errVersion = errors.New("fanotify: unsupported metadata version")
	errInfo    = errors.New("fanotify: malformed info record")
)

// Records are in the machine's native byte order.

// decode parses the first record in b. It returns the record and its length.
// When the error is not nil and n > 0, the caller may skip n bytes and go on;
// n == 0 means the rest of the buffer cannot be trusted.
func decode(b []byte) (r record, n int, err error) {
	if len(b) < metadataLen {
		return r, 0, errShort
	}
	eventLen := int(binary.NativeEndian.Uint32(b[0:4]))
	vers := b[4]
	mdLen := int(binary.NativeEndian.Uint16(b[6:8]))
	if eventLen < metadataLen || eventLen > len(b) {
		return r, 0, errShort
	}
	if vers != metadataVersion {
		return r, eventLen, errVersion
	}
	if mdLen < metadataLen || mdLen > eventLen {
		return r, eventLen, errShort
	}
	r.mask = binary.NativeEndian.Uint64(b[8:16])
	r.fd = int32(binary.NativeEndian.Uint32(b[16:20]))
	r.pid = int32(binary.NativeEndian.Uint32(b[20:24]))
	off := mdLen
	for off < eventLen {
		if eventLen-off < 4 {
			return r, eventLen, errInfo
		}
		typ := b[off]
		l := int(binary.NativeEndian.Uint16(b[off+2 : off+4]))
		if l < 4 || off+l > eventLen {
			return r, eventLen, errInfo
		}
		body := b[off+4 : off+l]
		switch typ {
		case infoFID, infoDFID, infoDFIDName, infoOldDFIDName, infoNewDFIDName:
			f, name, ok := decodeFID(body, typ != infoFID && typ != infoDFID)
			if !ok {
				return r, eventLen, errInfo
			}
			switch typ {
			case infoFID:
				r.obj = f
			case infoDFID:
				r.dir = f
			case infoDFIDName:
				r.dir, r.name = f, name
			case infoOldDFIDName:
				r.oldDir, r.oldName = f, name
			case infoNewDFIDName:
				r.newDir, r.newName = f, name
			}
		}
		off += l
	}
	return r, eventLen, nil
}

// decodeFID parses fsid(8) handle_bytes(4) handle_type(4) f_handle[handle_bytes]
// and, when withName, a NUL-terminated name after the handle.
func decodeFID(b []byte, withName bool) (f fidRef, name []byte, ok bool) {
	if len(b) < 16 {
		return f, nil, false
	}
	hb := int(binary.NativeEndian.Uint32(b[8:12]))
	if hb < 0 || hb > len(b)-16 {
		return f, nil, false
	}
	f.fsid = binary.NativeEndian.Uint64(b[0:8])
	f.htype = int32(binary.NativeEndian.Uint32(b[12:16]))
	f.handle = b[16 : 16+hb]
	f.key = b[:16+hb]
	if withName {
		rest := b[16+hb:]
		end := 0
		for end < len(rest) && rest[end] != 0 {
			end++
		}
		if end == len(rest) {
			return f, nil, false // no terminator
		}
		name = rest[:end]
	}
	return f, name, true
}
