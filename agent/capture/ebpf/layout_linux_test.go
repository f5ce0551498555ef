//go:build linux && (amd64 || arm64)

package ebpf

import (
	"testing"
	"unsafe"
)

// TestRecordLayout checks decode's offsets against the C struct as bpf2go
// sees it.
func TestRecordLayout(t *testing.T) {
	var h filewardEventHdr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(h), hdrSize},
		{"time", unsafe.Offsetof(h.TimeNs), offTime}, {"start", unsafe.Offsetof(h.StartNs), offStart},
		{"cgroup", unsafe.Offsetof(h.CgroupId), offCgroup}, {"ino", unsafe.Offsetof(h.Ino), offIno},
		{"key_dentry", unsafe.Offsetof(h.KeyDentry), offKeyDentry}, {"key_mnt", unsafe.Offsetof(h.KeyMnt), offKeyMnt},
		{"dev", unsafe.Offsetof(h.Dev), offDev}, {"pid", unsafe.Offsetof(h.Pid), offPID}, {"tgid", unsafe.Offsetof(h.Tgid), offTGID},
		{"ppid", unsafe.Offsetof(h.Ppid), offPPID}, {"uid", unsafe.Offsetof(h.Uid), offUID}, {"euid", unsafe.Offsetof(h.Euid), offEUID},
		{"gid", unsafe.Offsetof(h.Gid), offGID}, {"egid", unsafe.Offsetof(h.Egid), offEGID}, {"mode", unsafe.Offsetof(h.Mode), offMode},
		{"action", unsafe.Offsetof(h.Action), offAction}, {"access", unsafe.Offsetof(h.Access), offAccess},
		{"comp1", unsafe.Offsetof(h.Comp1), offComp1}, {"suffix1", unsafe.Offsetof(h.Suffix1), offSuffix1},
		{"comp2", unsafe.Offsetof(h.Comp2), offComp2}, {"suffix2", unsafe.Offsetof(h.Suffix2), offSuffix2},
		{"flags", unsafe.Offsetof(h.Flags), offFlags}, {"comm", unsafe.Offsetof(h.Comm), offComm},
	} {
		if c.got != c.want {
			t.Errorf("%s: C has %d, decode uses %d", c.name, c.got, c.want)
		}
	}
}
