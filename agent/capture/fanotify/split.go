//go:build linux

package fanotify

import (
	"fmt"
	"strings"

	"github.com/fileward/fileward/schema"
)

// eventSet is the set of config event names a Source was asked for.
type eventSet struct {
	open, close, create, modify, rename, delete, attrib, exec, access, write bool
}

// defaultEvents is source.events' default.
func defaultEvents() []string {
	return []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"}
}

// parseEvents maps config names to an eventSet and returns the names it did
// not know (fanotify has no truncate, link, clone, exchange or setextattr).
func parseEvents(names []string) (eventSet, []string) {
	if len(names) == 0 {
		names = defaultEvents()
	}
	var s eventSet
	var unknown []string
	for _, n := range names {
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "open":
			s.open = true
		case "close":
			s.close = true
		case "create":
			s.create = true
		case "modify":
			s.modify = true
		case "rename":
			s.rename = true
		case "delete":
			s.delete = true
		case "attrib":
			s.attrib = true
		case "exec":
			s.exec = true
		case "access":
			s.access = true
		case "write":
			s.write = true
		default:
			unknown = append(unknown, n)
		}
	}
	return s, unknown
}

// dirent reports whether any event needs directory-entry reporting (a FID
// group on a filesystem or inode mark).
func (s eventSet) dirent() bool { return s.create || s.delete || s.rename || s.attrib }

// kernelMask is the fanotify mask for s. legacyRename selects
// FAN_MOVED_FROM|FAN_MOVED_TO instead of FAN_RENAME (kernels before 5.17).
func (s eventSet) kernelMask(legacyRename bool) uint64 {
	var m uint64
	if s.open {
		m |= fanOpen
	}
	if s.close {
		m |= fanCloseWrite | fanCloseNoWrite
	}
	if s.modify {
		m |= fanModify | fanCloseWrite
	}
	if s.write {
		m |= fanModify
	}
	if s.create {
		m |= fanCreate
	}
	if s.delete {
		m |= fanDelete
	}
	if s.rename {
		if legacyRename {
			m |= fanMovedFrom | fanMovedTo
		} else {
			m |= fanRename
		}
	}
	if s.attrib {
		m |= fanAttrib
	}
	if s.exec {
		m |= fanOpenExec
	}
	if s.access {
		m |= fanAccess
	}
	if s.dirent() {
		m |= fanOnDir // mkdir, rmdir, directory renames and chmod of directories
	}
	return m
}

// step is one event to emit from a (possibly merged) kernel record.
type step struct {
	action schema.Action
	access uint8
}

// maxSteps bounds the events one record can yield.
const maxSteps = 10

// splitter turns a record's mask into events in syscall order: creation,
// open (or exec), access, write, modification or close, attributes
// modification, rename, deletion. It remembers, in a bounded set, which
// (process, file) pairs saw FAN_MODIFY so that a later FAN_CLOSE_WRITE becomes
// a modification rather than a close.
type splitter struct {
	ev       eventSet
	modified map[uint64]struct{}
	maxMod   int
}

func newSplitter(ev eventSet, maxMod int) *splitter {
	return &splitter{ev: ev, modified: make(map[uint64]struct{}), maxMod: maxMod}
}

// split appends the events of mask to dst and returns how many it wrote.
// modKey identifies (pid, file) for the modification set.
func (sp *splitter) split(mask uint64, modKey uint64, dst *[maxSteps]step) int {
	n := 0
	add := func(a schema.Action, acc uint8) {
		if n < maxSteps {
			dst[n] = step{action: a, access: acc}
			n++
		}
	}
	ev := sp.ev
	if mask&fanCreate != 0 && ev.create {
		add(schema.ActionCreation, 0)
	}
	// Opens, reads, writes and closes of directories (readdir) are not file
	// accesses; the kernel reports them only because FAN_ONDIR is set for
	// mkdir, rmdir and directory renames.
	if mask&fanOnDir == 0 {
		if mask&fanOpenExec != 0 && ev.exec {
			add(schema.ActionExec, schema.AccessRead)
		}
		if mask&fanOpen != 0 && mask&fanOpenExec == 0 && ev.open {
			add(schema.ActionOpen, accessFromMask(mask))
		}
		if mask&fanAccess != 0 && ev.access {
			add(schema.ActionAccess, schema.AccessRead)
		}
		if mask&fanModify != 0 {
			if ev.write {
				add(schema.ActionModification, 0)
			}
			if ev.modify && mask&fanCloseWrite == 0 {
				sp.markModified(modKey)
			}
		}
		if mask&fanCloseWrite != 0 {
			if ev.modify && (mask&fanModify != 0 || sp.takeModified(modKey)) {
				add(schema.ActionModification, 0)
			} else if ev.close {
				add(schema.ActionClose, 0)
			}
		}
		if mask&fanCloseNoWrite != 0 && ev.close {
			add(schema.ActionClose, 0)
		}
	}
	if mask&fanAttrib != 0 && ev.attrib {
		add(schema.ActionAttributesModification, 0)
	}
	if mask&(fanRename|fanMovedFrom|fanMovedTo) != 0 && ev.rename {
		add(schema.ActionRename, 0)
	}
	if mask&fanDelete != 0 && ev.delete {
		add(schema.ActionDeletion, 0)
	}
	return n
}

// accessFromMask infers fileward.access for an open from the other bits
// merged into the same record: FAN_MODIFY or FAN_CLOSE_WRITE mean the file
// was open for writing, FAN_CLOSE_NOWRITE or FAN_ACCESS mean reading. When the
// close has not happened yet it returns 0 (unknown).
func accessFromMask(mask uint64) uint8 {
	var a uint8
	if mask&(fanModify|fanCloseWrite) != 0 {
		a |= schema.AccessWrite
	}
	if mask&(fanCloseNoWrite|fanAccess) != 0 {
		a |= schema.AccessRead
	}
	return a
}

func (sp *splitter) markModified(k uint64) {
	if len(sp.modified) >= sp.maxMod {
		clear(sp.modified) // bounded: forget everything rather than grow
	}
	sp.modified[k] = struct{}{}
}

func (sp *splitter) takeModified(k uint64) bool {
	if _, ok := sp.modified[k]; ok {
		delete(sp.modified, k)
		return true
	}
	return false
}

// modKey hashes a pid and a file identifier (FNV-1a, 64 bit).
func modKey(pid int32, id []byte, name []byte) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < 4; i++ {
		h ^= uint64(byte(pid >> (8 * i)))
		h *= 1099511628211
	}
	for _, c := range id {
		h ^= uint64(c)
		h *= 1099511628211
	}
	for _, c := range name {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// maskString names the bits of a mask, for logs and test failures.
func maskString(m uint64) string {
	names := []struct {
		bit  uint64
		name string
	}{
		{fanCreate, "CREATE"}, {fanOpen, "OPEN"}, {fanOpenExec, "OPEN_EXEC"}, {fanAccess, "ACCESS"},
		{fanModify, "MODIFY"}, {fanCloseWrite, "CLOSE_WRITE"}, {fanCloseNoWrite, "CLOSE_NOWRITE"},
		{fanAttrib, "ATTRIB"}, {fanMovedFrom, "MOVED_FROM"}, {fanMovedTo, "MOVED_TO"}, {fanRename, "RENAME"},
		{fanDelete, "DELETE"}, {fanDeleteSelf, "DELETE_SELF"}, {fanMoveSelf, "MOVE_SELF"},
		{fanQOverflow, "Q_OVERFLOW"}, {fanOnDir, "ONDIR"},
	}
	var b strings.Builder
	for _, n := range names {
		if m&n.bit != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
			m &^= n.bit
		}
	}
	if m != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "%#x", m)
	}
	return b.String()
}
