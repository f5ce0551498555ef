package eslogger

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/fileward/fileward/schema"
)

// open(2) fflag bits (the kernel FFLAG mask, not open(2) oflags).
const (
	fflagRead  = 0x1
	fflagWrite = 0x2
)

// eventKind says how a payload is mapped.
type eventKind uint8

const (
	kindUnknown  eventKind = iota
	kindUnmapped           // a known ESF event Fileward does not map (fork, exit, …)
	kindOpen
	kindClose
	kindCreate
	kindWrite
	kindRename
	kindUnlink
	kindTruncate
	kindLink
	kindClone
	kindExchange
	kindExtAttr
	kindAttr
	kindExec
)

// eventKinds maps eslogger event names to how Parse handles them. Names of
// ESMessage.h NOTIFY events that Fileward deliberately does not map are
// kindUnmapped; any name not in the table is unknown. Read-only.
var eventKinds = func() map[string]eventKind {
	m := map[string]eventKind{
		"open": kindOpen, "close": kindClose, "create": kindCreate, "write": kindWrite,
		"rename": kindRename, "unlink": kindUnlink, "truncate": kindTruncate, "link": kindLink,
		"clone": kindClone, "exchangedata": kindExchange,
		"setextattr": kindExtAttr, "deleteextattr": kindExtAttr,
		"setmode": kindAttr, "setowner": kindAttr, "setflags": kindAttr, "setattrlist": kindAttr,
		"setacl": kindAttr, "utimes": kindAttr,
		"exec": kindExec,
	}
	for _, n := range []string{
		"fork", "exit", "mmap", "mprotect", "mount", "unmount", "remount", "signal", "readlink",
		"lookup", "chdir", "chroot", "getattrlist", "stat", "access", "fcntl", "getextattr",
		"listextattr", "readdir", "fsgetpath", "dup", "copyfile", "kextload", "kextunload",
		"iokit_open", "get_task", "get_task_read", "get_task_inspect", "get_task_name",
		"proc_check", "pty_grant", "pty_close", "uipc_bind", "uipc_connect", "searchfs",
		"setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "settime",
		"file_provider_materialize", "file_provider_update", "trace", "remote_thread_create",
		"proc_suspend_resume", "cs_invalidated", "authentication", "xp_malware_detected",
		"xp_malware_remediated", "lw_session_login", "lw_session_logout", "lw_session_lock",
		"lw_session_unlock", "screensharing_attach", "screensharing_detach", "openssh_login",
		"openssh_logout", "login_login", "login_logout", "btm_launch_item_add",
		"btm_launch_item_remove", "profile_add", "profile_remove", "su", "authorization_petition",
		"authorization_judgement", "sudo", "od_group_add", "od_group_remove", "od_group_set",
		"od_modify_password", "od_disable_user", "od_enable_user", "od_attribute_value_add",
		"od_attribute_value_remove", "od_attribute_set", "od_create_user", "od_create_group",
		"od_delete_user", "od_delete_group", "xpc_connect", "gatekeeper_user_override", "tcc_modify",
	} {
		m[n] = kindUnmapped
	}
	return m
}()

// kindOf is eventKinds[string(name)], with the mapped names in a switch
// (no hashing on the hot path).
func kindOf(name []byte) eventKind {
	switch string(name) {
	case "open":
		return kindOpen
	case "close":
		return kindClose
	case "create":
		return kindCreate
	case "write":
		return kindWrite
	case "rename":
		return kindRename
	case "unlink":
		return kindUnlink
	case "truncate":
		return kindTruncate
	case "link":
		return kindLink
	case "clone":
		return kindClone
	case "exchangedata":
		return kindExchange
	case "setextattr", "deleteextattr":
		return kindExtAttr
	case "setmode", "setowner", "setflags", "setattrlist", "setacl", "utimes":
		return kindAttr
	case "exec":
		return kindExec
	}
	return eventKinds[string(name)]
}

// maxUnknownNames bounds how many distinct unknown event names Stats keeps.
const maxUnknownNames = 32

// Stats counts what Parse saw. Counters are totals since the Parser was made.
type Stats struct {
	Lines     uint64 // calls to Parse
	Mapped    uint64 // messages mapped to an Event
	Unmapped  uint64 // known ESF events Fileward does not map (fork, exit, …)
	Unknown   uint64 // event names this parser does not know
	Malformed uint64 // lines that returned an error
	// UnknownByName samples unknown event names (the first 32 distinct
	// names seen) with their counts.
	UnknownByName map[string]uint64
}

// Parser decodes eslogger JSON lines into schema.Event values. Parse must be
// called from one goroutine at a time; Stats may be called from any goroutine.
//
// It is a hand-written scanner over the line bytes: it decodes only the fields
// the agent needs, skips the rest by bracket counting, and accepts keys in any
// order, unknown keys, escaped slashes, audit tokens as objects or as 8-integer
// arrays, and null signing or team ids.
type Parser struct {
	s scanner

	// per-message scratch, reused
	target, source, dir, exe fileInfo
	name                     []byte
	newName                  []byte
	extattr                  []byte
	fflag                    uint64
	modified, mappedWritable bool
	hasNewPath               bool
	execProc                 schema.Process
	execFile                 fileInfo
	cwd                      fileInfo
	args                     []string

	// procs remembers, per pid, the image the parser last saw: the parent
	// fields of an exec event come from it (see rememberProcess).
	procs map[int32]procInfo

	intern map[string]string
	recent [256]string // direct-mapped cache in front of intern

	// pcache holds the decoded top-level process objects of recent
	// messages (see cachedProcess).
	pcache *procCache
	// noProcCache turns the cache off (benchmarks and tests compare).
	noProcCache bool

	lines, mapped, unmapped, unknown, malformed atomic.Uint64
	mu                                          sync.Mutex
	unknownNames                                map[string]uint64
}

// fileInfo is an es_file_t being decoded; path is a reused buffer.
type fileInfo struct {
	set     bool
	path    []byte
	trunc   bool
	hasStat bool
	inode   uint64
	dev     uint64
	mode    uint32
	uid     uint32
	gid     uint32
	size    int64
	mtimeNS int64
}

func (f *fileInfo) clear() {
	p := f.path[:0]
	*f = fileInfo{path: p}
}

// NewParser returns a Parser. The zero Parser is ready to use too.
func NewParser() *Parser {
	return &Parser{intern: make(map[string]string, 256), unknownNames: make(map[string]uint64)}
}

// Stats returns a snapshot of the counters.
func (p *Parser) Stats() Stats {
	st := Stats{
		Lines: p.lines.Load(), Mapped: p.mapped.Load(), Unmapped: p.unmapped.Load(),
		Unknown: p.unknown.Load(), Malformed: p.malformed.Load(),
		UnknownByName: map[string]uint64{},
	}
	p.mu.Lock()
	for k, v := range p.unknownNames {
		st.UnknownByName[k] = v
	}
	p.mu.Unlock()
	return st
}

// maxIntern bounds the intern table; it is cleared when full.
const maxIntern = 4096

// str returns b as a string, shared with earlier equal strings for the
// low-cardinality process fields (executable, signing and team ids, cdhash).
func (p *Parser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// Most lines repeat the previous lines' executables and ids: a cheap
	// direct-mapped check avoids hashing the whole string.
	slot := &p.recent[(uint(len(b))*31^uint(b[len(b)-1])*7^uint(b[len(b)/2]))&255]
	if *slot == string(b) {
		return *slot
	}
	if p.intern == nil {
		p.intern = make(map[string]string, 256)
	}
	if s, ok := p.intern[string(b)]; ok {
		*slot = s
		return s
	}
	if len(p.intern) >= maxIntern {
		clear(p.intern)
	}
	s := string(b)
	p.intern[s] = s
	*slot = s
	return s
}

// Parse decodes one eslogger JSON line (with or without its trailing newline)
// into ev, which it resets first.
//
// mapped is true when the line is a file or exec event Fileward maps: ev is
// then complete except for CreatedNS, which the caller sets (Stream is the
// message's mach_time, see below), and,
// when !ev.HasGlobalSeq (message version < 4), Seq, which the caller sets to
// its own per-stream position (the runner uses the line number in the child's
// output). When HasGlobalSeq, Seq is global_seq_num.
//
// mapped is false with a nil error for a valid message that is not mapped
// (fork, exit, or an unknown event type; counted in Stats, not fatal). Even
// then ev.ESFEvent, ESFVersion, ESFSeqNum, GlobalSeq and HasGlobalSeq are set,
// so that the caller can still check sequence numbers.
//
// err is a *SyntaxError for a malformed line. Strings in ev never alias line.
//
// For exec, ev.Process is the new image (exec's target: same pid, new
// pidversion, new executable, code signature and args) and ev.Path is its
// executable; the parent pid is the target's parent.
func (p *Parser) Parse(line []byte, ev *schema.Event) (mapped bool, err error) {
	*ev = schema.Event{}
	p.lines.Add(1)
	p.target.clear()
	p.source.clear()
	p.dir.clear()
	p.execFile.clear()
	p.cwd.clear()
	p.execProc = schema.Process{}
	p.name = p.name[:0]
	p.newName = p.newName[:0]
	p.extattr = p.extattr[:0]
	p.fflag = 0
	p.modified, p.mappedWritable, p.hasNewPath = false, false, false
	p.args = nil

	s := &p.s
	s.reset(line)
	kind, sawEvent := p.message(ev)
	if s.err == nil {
		if s.ws(); s.i < len(s.b) {
			s.fail("trailing data after message")
		}
	}
	if s.err == nil && !sawEvent {
		s.i = 0
		s.fail("message has no event object")
	}
	if s.err != nil {
		p.malformed.Add(1)
		e := s.err
		s.err = nil
		*ev = schema.Event{}
		return false, e
	}
	ev.Provider = schema.ProviderEndpointSecurity
	if ev.HasGlobalSeq {
		ev.Seq = ev.GlobalSeq
	}
	switch kind {
	case kindUnknown:
		p.unknown.Add(1)
		p.mu.Lock()
		if p.unknownNames == nil {
			p.unknownNames = make(map[string]uint64)
		}
		if _, ok := p.unknownNames[ev.ESFEvent]; ok || len(p.unknownNames) < maxUnknownNames {
			p.unknownNames[ev.ESFEvent]++
		}
		p.mu.Unlock()
		return false, nil
	case kindUnmapped:
		p.unmapped.Add(1)
		return false, nil
	}
	p.finish(kind, ev)
	p.mapped.Add(1)
	return true, nil
}

// message decodes the top-level object.
func (p *Parser) message(ev *schema.Event) (kind eventKind, sawEvent bool) {
	s := &p.s
	if !s.enterObject() {
		return kindUnknown, false
	}
	sawProcess := false
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			break
		}
		switch string(k) {
		case "version":
			ev.ESFVersion = s.uint32v()
		case "time":
			ev.TimeNS = s.timeNS()
		case "mach_time":
			// The message's Mach absolute time: with global_seq_num it makes
			// the event id unique across eslogger restarts, and it comes from
			// the message itself, so the live runner and `fileward convert`
			// derive the same id from the same line.
			ev.Stream = s.uint()
		case "seq_num":
			ev.ESFSeqNum = s.uint()
		case "global_seq_num":
			ev.GlobalSeq = s.uint()
			ev.HasGlobalSeq = s.err == nil
		case "process":
			if sawProcess {
				// A repeated key decodes over the first one's fields: not
				// what the cache holds.
				p.process(&ev.Process, nil)
			} else {
				p.cachedProcess(&ev.Process)
			}
			sawProcess = true
			p.rememberProcess(&ev.Process, nil)
		case "event":
			if sawEvent {
				s.fail("duplicate event object")
				break
			}
			sawEvent = true
			kind = p.event(ev)
		default:
			s.skipValue()
		}
	}
	return kind, sawEvent
}

// event decodes {"<name>": {payload}}.
func (p *Parser) event(ev *schema.Event) eventKind {
	s := &p.s
	if !s.enterObject() {
		return kindUnknown
	}
	k, ok := s.nextKey(0)
	if !ok {
		if s.err == nil {
			s.fail("empty event object")
		}
		return kindUnknown
	}
	kind := kindOf(k) // kindUnknown when absent
	// Event names are plain identifiers; unescape only for odd input.
	if kind == kindUnknown && len(k) > 0 {
		if u, ok := unescape(nil, k); ok {
			k = u
		}
	}
	ev.ESFEvent = p.str(k)
	if kind == kindUnknown || kind == kindUnmapped {
		s.skipValue()
	} else {
		p.payload(kind)
	}
	if _, more := s.nextKey(1); more {
		s.fail("event object has more than one key")
	}
	return kind
}

// payload decodes the fields of a mapped event payload.
func (p *Parser) payload(kind eventKind) {
	s := &p.s
	if !s.enterObject() {
		return
	}
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "target":
			if kind == kindExec {
				p.process(&p.execProc, &p.execFile)
			} else {
				p.file(&p.target)
			}
		case "file", "file1":
			p.file(&p.target)
		case "file2", "source":
			p.file(&p.source)
		case "target_dir":
			p.file(&p.dir)
		case "target_filename", "target_name":
			p.newName, _ = s.appendString(p.newName[:0])
		case "destination":
			p.destination()
		case "fflag":
			p.fflag = uint64(s.int())
		case "modified":
			p.modified = s.bool()
		case "was_mapped_writable":
			p.mappedWritable = s.bool()
		case "extattr":
			if !s.null() {
				p.extattr, _ = s.appendString(p.extattr[:0])
			}
		case "args":
			if kind == kindExec {
				p.stringArray()
			} else {
				s.skipValue()
			}
		case "cwd":
			if kind == kindExec {
				p.fileStat(&p.cwd, false)
			} else {
				s.skipValue()
			}
		default:
			s.skipValue()
		}
	}
}

// destination decodes create/rename destinations: {"existing_file": file}
// or {"new_path": {"dir": file, "filename": "..."}}. destination_type is not
// needed: whichever key is present decides.
func (p *Parser) destination() {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "existing_file":
			p.file(&p.dir) // reuse: an existing file is the whole destination
			p.hasNewPath = false
		case "new_path":
			p.hasNewPath = true
			if s.null() || !s.enterObject() {
				break
			}
			for m := 0; ; m++ {
				k2, ok := s.nextKey(m)
				if !ok {
					break
				}
				switch string(k2) {
				case "dir":
					p.file(&p.dir)
				case "filename":
					p.newName, _ = s.appendString(p.newName[:0])
				default:
					s.skipValue()
				}
			}
		default:
			s.skipValue()
		}
	}
}

func (p *Parser) stringArray() {
	s := &p.s
	if s.null() {
		return
	}
	if s.peek() != '[' {
		s.fail("expected array")
		return
	}
	s.i++
	args := make([]string, 0, 8)
	for n := 0; ; n++ {
		c := s.peek()
		if c == ']' {
			s.i++
			break
		}
		if n > 0 {
			if c != ',' {
				s.fail("expected ',' or ']' in array")
				return
			}
			s.i++
		}
		v, ok := s.rawString()
		if !ok {
			return
		}
		args = append(args, string(v))
	}
	p.args = args
}

// file decodes an es_file_t into f, with its stat.
func (p *Parser) file(f *fileInfo) { p.fileStat(f, true) }

// fileStat decodes an es_file_t into f; the stat only when withStat.
func (p *Parser) fileStat(f *fileInfo, withStat bool) {
	s := &p.s
	if s.null() {
		return
	}
	if !s.enterObject() {
		return
	}
	f.set = true
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "path":
			f.path, _ = s.appendString(f.path[:0])
		case "path_truncated":
			f.trunc = s.bool()
		case "stat":
			if withStat {
				p.stat(f)
			} else {
				s.skipValue()
			}
		default:
			s.skipValue()
		}
	}
}

func (p *Parser) stat(f *fileInfo) {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	f.hasStat = true
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "st_dev":
			// dev_t is a signed 32-bit value on Darwin.
			v := s.int()
			if v < 0 {
				v = int64(uint32(int32(v)))
			}
			f.dev = uint64(v)
		case "st_ino":
			f.inode = s.uint()
		case "st_mode":
			f.mode = s.uint32v()
		case "st_uid":
			f.uid = s.uint32v()
		case "st_gid":
			f.gid = s.uint32v()
		case "st_size":
			f.size = s.int()
		case "st_mtimespec":
			f.mtimeNS = s.timeNS()
		default:
			s.skipValue()
		}
	}
}

// process decodes an es_process_t. exe, when not nil, receives the
// executable's es_file_t (for exec's target).
func (p *Parser) process(pr *schema.Process, exe *fileInfo) {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	var parentPID int32
	hasParent := false
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			break
		}
		switch string(k) {
		case "audit_token":
			var t token
			if p.token(&t) {
				pr.PID = t.pid
				pr.PIDVersion = t.pidversion
				pr.UID = t.euid
				pr.RUID = t.ruid
				pr.GID = t.egid
				pr.HasUser = true
			}
		case "parent_audit_token":
			var t token
			if p.token(&t) {
				parentPID, hasParent = t.pid, true
				pr.Parent.PIDVersion = t.pidversion
			}
		case "ppid":
			v := s.int()
			if !hasParent {
				pr.PPID = int32(v)
			}
		case "executable":
			f := exe
			if f == nil {
				f = &p.exe
				f.clear()
			}
			p.fileStat(f, exe != nil)
			if f.set {
				pr.Executable = p.str(f.path)
			}
		case "signing_id":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.SigningID = p.str(v)
				}
			}
		case "team_id":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.TeamID = p.str(v)
				}
			}
		case "cdhash":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.CDHash = p.str(v)
				}
			}
		case "is_platform_binary":
			pr.HasCodeSig = true
			pr.Platform = s.bool()
		case "codesigning_flags":
			if !s.null() {
				pr.HasCodeSig = true
				pr.CSFlags = uint32(s.uint())
				pr.HasCSFlags = s.err == nil
			}
		case "start_time":
			pr.StartNS = s.timeNS()
		default:
			s.skipValue()
		}
	}
	if hasParent {
		pr.PPID = parentPID
	}
}

type token struct {
	pid                    int32
	pidversion, euid, ruid uint32
	egid                   uint32
}

// token decodes an audit token: an object with named members, or (macOS 26,
// message version 10) an array [auid, euid, egid, ruid, rgid, pid, asid,
// pidversion]. It reports whether one was present (not null).
func (p *Parser) token(t *token) bool {
	s := &p.s
	switch s.peek() {
	case 'n':
		s.null()
		return false
	case '[':
		if v, end, ok := tokenArray(s.b, s.i); ok {
			s.i = end
			t.euid, t.egid, t.ruid, t.pid, t.pidversion = v[1], v[2], v[3], int32(v[5]), v[7]
			return true
		}
		s.i++
		var v [8]uint32
		for n := 0; ; n++ {
			c := s.peek()
			if c == ']' {
				s.i++
				if n != 8 {
					s.fail("audit token array needs 8 integers")
					return false
				}
				break
			}
			if n > 0 {
				if c != ',' {
					s.fail("expected ',' or ']' in audit token")
					return false
				}
				s.i++
			}
			if n >= 8 {
				s.fail("audit token array needs 8 integers")
				return false
			}
			v[n] = s.uint32v()
			if s.err != nil {
				return false
			}
		}
		t.euid, t.egid, t.ruid, t.pid, t.pidversion = v[1], v[2], v[3], int32(v[5]), v[7]
		return true
	case '{':
		if end, ok := tokenObject(s.b, s.i, t); ok {
			s.i = end
			return true
		}
		s.i++
		for n := 0; ; n++ {
			k, ok := s.nextKey(n)
			if !ok {
				break
			}
			switch string(k) {
			case "pid":
				t.pid = int32(s.uint32v())
			case "pidversion":
				t.pidversion = s.uint32v()
			case "euid":
				t.euid = s.uint32v()
			case "ruid":
				t.ruid = s.uint32v()
			case "egid":
				t.egid = s.uint32v()
			default:
				s.skipValue()
			}
		}
		return s.err == nil
	}
	s.fail("expected audit token object or array")
	return false
}

// tokenArray is the fast path for an audit token array of exactly 8
// integers that fit uint32, of up to 10 digits each, separated by ',' or ', ' (as eslogger
// writes them). b[i] is '['. Anything else returns ok=false, and the general
// decoding in token runs from the same place, errors included.
func tokenArray(b []byte, i int) (v [8]uint32, end int, ok bool) {
	i++
	for n := 0; n < 8; n++ {
		if i < len(b) && b[i] == ' ' {
			i++
		}
		start := i
		var x uint64
		for i < len(b) && i-start < 10 && b[i]-'0' <= 9 {
			x = x*10 + uint64(b[i]-'0')
			i++
		}
		if i == start || i >= len(b) || x > 1<<32-1 {
			return v, 0, false
		}
		v[n] = uint32(x)
		c := b[i]
		if n < 7 && c == ',' {
			i++
			continue
		}
		if n == 7 && c == ']' {
			return v, i + 1, true
		}
		return v, 0, false
	}
	return v, 0, false
}

// The 4-byte audit token keys as little-endian words.
const (
	keyEUID = uint32('e') | uint32('u')<<8 | uint32('i')<<16 | uint32('d')<<24
	keyRUID = uint32('r') | uint32('u')<<8 | uint32('i')<<16 | uint32('d')<<24
	keyAUID = uint32('a') | uint32('u')<<8 | uint32('i')<<16 | uint32('d')<<24
	keyEGID = uint32('e') | uint32('g')<<8 | uint32('i')<<16 | uint32('d')<<24
	keyRGID = uint32('r') | uint32('g')<<8 | uint32('i')<<16 | uint32('d')<<24
	keyASID = uint32('a') | uint32('s')<<8 | uint32('i')<<16 | uint32('d')<<24
)

// tokenObject is the fast path for an audit token object as eslogger writes
// it: {"key": integer, ...} with ", " or "," between members, every key one
// of the eight token fields, every value an integer that fits uint32. b[i] is
// '{'. It fills t only on success; anything else returns ok=false, and the
// general decoding in token runs from the same place, errors included. On
// success the general decoding would have set the same fields.
func tokenObject(b []byte, i int, t *token) (end int, ok bool) {
	var r token
	i++
	for n := 0; ; n++ {
		if n > 0 {
			if i+1 < len(b) && b[i] == ',' && b[i+1] == ' ' {
				i += 2
			} else if i < len(b) && b[i] == ',' {
				i++
			} else {
				return 0, false
			}
		}
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		// The key ends at the first quote, within 16 bytes; a backslash
		// first, or no quote there, is not this fast path's input.
		ks := i + 1
		if ks+16 > len(b) {
			return 0, false
		}
		k := 16
		if x := binary.LittleEndian.Uint64(b[ks:]); zeroMask(x^quotes)|zeroMask(x^backslashes) != 0 {
			k = bits.TrailingZeros64(zeroMask(x^quotes)|zeroMask(x^backslashes)) >> 3
		} else if x := binary.LittleEndian.Uint64(b[ks+8:]); zeroMask(x^quotes)|zeroMask(x^backslashes) != 0 {
			k = 8 + bits.TrailingZeros64(zeroMask(x^quotes)|zeroMask(x^backslashes))>>3
		}
		if k == 16 || b[ks+k] != '"' {
			return 0, false
		}
		key := b[ks : ks+k]
		i = ks + k + 1
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i++
		if i < len(b) && b[i] == ' ' {
			i++
		}
		ds := i
		var x uint64
		for i < len(b) && i-ds < 10 && b[i]-'0' <= 9 {
			x = x*10 + uint64(b[i]-'0')
			i++
		}
		if i == ds || i >= len(b) || x > 1<<32-1 || b[i]-'0' <= 9 {
			return 0, false
		}
		// The eight keys by length and, for the 4-byte ones, as one word.
		switch len(key) {
		case 3:
			if key[0] != 'p' || key[1] != 'i' || key[2] != 'd' {
				return 0, false
			}
			r.pid = int32(uint32(x))
		case 4:
			switch binary.LittleEndian.Uint32(key) {
			case keyEUID:
				r.euid = uint32(x)
			case keyRUID:
				r.ruid = uint32(x)
			case keyEGID:
				r.egid = uint32(x)
			case keyAUID, keyASID, keyRGID:
			default:
				return 0, false
			}
		case 10:
			if string(key) != "pidversion" {
				return 0, false
			}
			r.pidversion = uint32(x)
		default:
			return 0, false
		}
		if b[i] == '}' {
			*t = r
			return i + 1, true
		}
	}
}

// finish maps the decoded payload onto ev.
func (p *Parser) finish(kind eventKind, ev *schema.Event) {
	switch kind {
	case kindOpen:
		ev.Action = schema.ActionOpen
		if p.fflag&fflagRead != 0 {
			ev.Access |= schema.AccessRead
		}
		if p.fflag&fflagWrite != 0 {
			ev.Access |= schema.AccessWrite
		}
		p.setFile(ev, &p.target)
	case kindClose:
		ev.Action = schema.ActionClose
		if p.modified || p.mappedWritable {
			ev.Action = schema.ActionModification
		}
		p.setFile(ev, &p.target)
	case kindWrite:
		ev.Action = schema.ActionModification
		p.setFile(ev, &p.target)
	case kindUnlink:
		ev.Action = schema.ActionDeletion
		p.setFile(ev, &p.target)
	case kindTruncate:
		ev.Action = schema.ActionTruncate
		p.setFile(ev, &p.target)
	case kindAttr:
		ev.Action = schema.ActionAttributesModification
		p.setFile(ev, &p.target)
	case kindExtAttr:
		ev.Action = schema.ActionExtendedAttributesModification
		if ev.ESFEvent == "deleteextattr" {
			ev.Action = schema.ActionExtendedAttributesDelete
		}
		p.setFile(ev, &p.target)
		ev.ExtAttr = p.str(p.extattr)
	case kindCreate:
		ev.Action = schema.ActionCreation
		p.setDest(ev, p.hasNewPath)
	case kindRename:
		ev.Action = schema.ActionRename
		// The stat of the moved file is the source's.
		p.setFile(ev, &p.source)
		ev.OrigPath = ev.Path
		ev.Path = ""
		ev.PathTruncated = p.source.trunc
		p.setDestPath(ev, p.hasNewPath)
	case kindLink:
		ev.Action = schema.ActionLink
		// A hard link shares the source's inode, so its stat applies.
		p.setFile(ev, &p.source)
		ev.OrigPath = ev.Path
		ev.Path = ""
		p.setDestPath(ev, true)
	case kindClone:
		ev.Action = schema.ActionClone
		// A clone is a new inode: the source's stat does not describe it.
		ev.OrigPath = string(p.source.path)
		ev.PathTruncated = p.source.trunc
		p.setDestPath(ev, true)
	case kindExchange:
		ev.Action = schema.ActionExchange
		p.setFile(ev, &p.target)
		ev.OrigPath = string(p.source.path)
		ev.PathTruncated = ev.PathTruncated || p.source.trunc
	case kindExec:
		ev.Action = schema.ActionExec
		args := p.args
		ev.Process = p.execProc
		ev.Process.Args = args
		if p.cwd.set && len(p.cwd.path) > 0 {
			ev.Process.WorkingDir = p.str(p.cwd.path)
		}
		p.rememberProcess(&ev.Process, args)
		p.parentOf(&ev.Process)
		p.setFile(ev, &p.execFile)
	}
}

// setFile sets Path, PathTruncated and the stat from f.
func (p *Parser) setFile(ev *schema.Event, f *fileInfo) {
	ev.Path = string(f.path)
	ev.PathTruncated = ev.PathTruncated || f.trunc
	if f.hasStat {
		ev.HasStat = true
		ev.Inode, ev.Device, ev.Mode = f.inode, f.dev, f.mode
		ev.UID, ev.GID, ev.Size, ev.MtimeNS = f.uid, f.gid, f.size, f.mtimeNS
	}
}

// setDest sets Path (and, for an existing file, the stat) from a create
// destination.
func (p *Parser) setDest(ev *schema.Event, newPath bool) {
	if !newPath {
		p.setFile(ev, &p.dir)
		return
	}
	p.setDestPath(ev, true)
}

// setDestPath sets Path to dir + "/" + name (newPath) or to the existing
// file's path, without the stat (the stat there is the directory's or the
// replaced file's).
func (p *Parser) setDestPath(ev *schema.Event, newPath bool) {
	ev.PathTruncated = ev.PathTruncated || p.dir.trunc
	if !newPath {
		ev.Path = string(p.dir.path)
		return
	}
	d := p.dir.path
	buf := p.s.buf[:0]
	buf = append(buf, d...)
	if len(d) == 0 || d[len(d)-1] != '/' {
		buf = append(buf, '/')
	}
	buf = append(buf, p.newName...)
	p.s.buf = buf
	ev.Path = string(buf)
}

// procInfo is what the parser remembers of one process image.
type procInfo struct {
	pidVersion uint32
	startNS    int64
	executable string
	args       []string
}

// maxProcs bounds the parser's process memory; it is cleared when full.
const maxProcs = 8192

// rememberProcess records pr's image under its pid, so that a later exec by
// one of its children can name it as the parent. Every message's process
// feeds it: a pid seen with a new pidversion (an exec, or a reused pid)
// replaces the entry. args are kept only from an exec event.
func (p *Parser) rememberProcess(pr *schema.Process, args []string) {
	if pr.PID <= 0 || pr.PIDVersion == 0 || pr.StartNS == 0 {
		return
	}
	if e, ok := p.procs[pr.PID]; ok && e.pidVersion == pr.PIDVersion && args == nil {
		return
	}
	if p.procs == nil {
		p.procs = make(map[int32]procInfo, 256)
	}
	if len(p.procs) >= maxProcs {
		clear(p.procs)
	}
	p.procs[pr.PID] = procInfo{pidVersion: pr.PIDVersion, startNS: pr.StartNS, executable: pr.Executable, args: args}
}

// parentOf fills pr.Parent from the remembered image of pr.PPID, when the
// parent audit token names that very image (same pidversion). Otherwise
// only the parent pid is known and the rest is left out.
func (p *Parser) parentOf(pr *schema.Process) {
	if pr.PPID <= 0 || pr.Parent.PIDVersion == 0 {
		return
	}
	e, ok := p.procs[pr.PPID]
	if !ok || e.pidVersion != pr.Parent.PIDVersion {
		return
	}
	pr.Parent.Executable = e.executable
	pr.Parent.Args = e.args
	pr.Parent.StartNS = e.startNS
}
