package schema

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"sync/atomic"
)

// Meta holds the fields that are the same for every document one agent
// writes. The encoder formats them once, in NewEncoder.
type Meta struct {
	// HostID is host.id. It also keys every event.id and derived
	// process.entity_id, so it must be stable across restarts of one host
	// (for example /etc/machine-id or the IOPlatformUUID).
	HostID string
	// HostName is host.name.
	HostName string
	// Hostname is host.hostname: the name the OS reports (os.Hostname),
	// which host.name may override.
	Hostname string
	// Architecture is host.architecture, e.g. "x86_64" or "arm64".
	Architecture string
	// OSType is host.os.type: "linux" or "macos".
	OSType string
	// OSVersion is host.os.version, e.g. "15.3.1" or "6.18.0".
	OSVersion string
	// OSFamily, OSName, OSPlatform, OSKernel and OSFull are host.os.family
	// ("debian", "macos"), .name ("Debian GNU/Linux", "macOS"), .platform
	// ("debian", "macos"), .kernel (the kernel release) and .full ("macOS
	// 15.3.1").
	OSFamily   string
	OSName     string
	OSPlatform string
	OSKernel   string
	OSFull     string
	// AgentID is agent.id: the identity of this agent installation.
	AgentID string
	// AgentVersion is agent.version.
	AgentVersion string
	// Namespace is data_stream.namespace (default "default", or "fileward"
	// with DefendCompatible).
	Namespace string
	// DefendCompatible names the datasets of file and process events as
	// Elastic Defend does (endpoint.events.file, endpoint.events.process),
	// so that documents land in logs-endpoint.events.*-<namespace> streams
	// that Elastic's prebuilt rules search. Agent documents keep
	// fileward.agent.
	DefendCompatible bool
}

// Dataset names, the data_stream.dataset and event.dataset of each kind of
// document.
const (
	DatasetFile          = "fileward.file"
	DatasetProcess       = "fileward.process"
	DatasetAgent         = "fileward.agent"
	DatasetDefendFile    = "endpoint.events.file"
	DatasetDefendProcess = "endpoint.events.process"
	// DefaultNamespace is data_stream.namespace when Meta gives none.
	DefaultNamespace = "default"
	// DefendNamespace is the namespace when Meta.DefendCompatible and Meta
	// gives none: logs-endpoint.events.file-fileward.
	DefendNamespace = "fileward"
)

// Datasets returns the datasets of file, process and agent documents for m.
func (m Meta) Datasets() (file, process, agent string) {
	if m.DefendCompatible {
		return DatasetDefendFile, DatasetDefendProcess, DatasetAgent
	}
	return DatasetFile, DatasetProcess, DatasetAgent
}

// NamespaceOrDefault returns the namespace documents carry.
func (m Meta) NamespaceOrDefault() string {
	switch {
	case m.Namespace != "":
		return m.Namespace
	case m.DefendCompatible:
		return DefendNamespace
	}
	return DefaultNamespace
}

// DataStreams returns the names of the data streams m's documents go to:
// file, process and agent, each "logs-<dataset>-<namespace>".
func (m Meta) DataStreams() []string {
	f, p, a := m.Datasets()
	ns := m.NamespaceOrDefault()
	return []string{"logs-" + f + "-" + ns, "logs-" + p + "-" + ns, "logs-" + a + "-" + ns}
}

// IDLen is the length in bytes of every id the encoder writes: event.id,
// process.entity_id when derived, and the ids of loss and heartbeat
// documents. Ids are 128 bits in lowercase hex, so they are safe as an
// Elasticsearch _id, a Kafka header and a file name.
const IDLen = 32

// Encoder turns Events into ECS JSON documents. It is immutable after
// NewEncoder but for its caches of derived entity ids and encoded process
// objects, which are safe for concurrent use, so one Encoder may be shared
// by any number of goroutines.
//
// Every Append method appends to dst and returns the extended slice. None
// allocates when dst has enough capacity, which a reused buffer has in steady
// state, except that a process seen twice in a row in its cache slot is
// kept (one entry of about its documents' process part). Output is
// byte-for-byte deterministic: the same Meta and Event give the same bytes,
// with fields in the fixed order docs/ecs.md documents; the caches only ever
// give the bytes the same input would.
type Encoder struct {
	meta Meta
	// block is AES-128 keyed by the host key, SHA-256("fileward host\x00" +
	// HostID)[:16]. cipher.Block is safe for concurrent use.
	block cipher.Block
	// tail is `,"host":{…},"agent":{…},"ecs":{…}}`: the constant end of
	// every document.
	tail []byte
	// dsFile, dsProcess and dsAgent are `,"data_stream":{…}` for each kind
	// of document; evFile, evProcess and evAgent the matching
	// `"module":"fileward","dataset":"…"` of event.*.
	dsFile, dsProcess, dsAgent []byte
	evFile, evProcess, evAgent string
	// entities caches recently derived entity ids, direct-mapped by their
	// tuple (see appendEntityID). It and procs are the Encoder's only
	// changing state: each slot is swapped atomically to an immutable
	// entry, so a reader sees a whole entry or another one, and an entry
	// only ever holds the id its tuple derives.
	entities *[entityCacheSlots]cacheSlot[cachedID]
	// procs caches the encoded process, user and group objects of recent
	// processes (see appendProcess), in the same way.
	procs *[procCacheSlots]cacheSlot[procFrag]
}

// Tags separate the id spaces of the different hashed tuples.
const (
	tagEvent     = 'E'
	tagEntity    = 'P'
	tagLoss      = 'L'
	tagHeartbeat = 'H'
)

// NewEncoder returns an Encoder for one agent's constant fields.
func NewEncoder(m Meta) *Encoder {
	e := &Encoder{meta: m, entities: new([entityCacheSlots]cacheSlot[cachedID]), procs: new([procCacheSlots]cacheSlot[procFrag])}
	sum := sha256.Sum256([]byte("fileward host\x00" + m.HostID))
	block, err := aes.NewCipher(sum[:16])
	if err != nil {
		panic("schema: aes.NewCipher with a 16-byte key: " + err.Error()) // cannot happen
	}
	e.block = block

	ns := m.NamespaceOrDefault()
	f, p, a := m.Datasets()
	ds := func(dataset string) []byte {
		b := append([]byte(nil), `,"data_stream":{"type":"logs","dataset":`...)
		b = appendString(b, dataset)
		b = append(b, `,"namespace":`...)
		b = appendString(b, ns)
		return append(b, '}')
	}
	ev := func(dataset string) string {
		return string(appendString([]byte(`"module":"fileward","dataset":`), dataset))
	}
	e.dsFile, e.dsProcess, e.dsAgent = ds(f), ds(p), ds(a)
	e.evFile, e.evProcess, e.evAgent = ev(f), ev(p), ev(a)

	t := make([]byte, 0, 256)
	t = append(t, `,"host":{`...)
	n := 0
	field := func(name, v string) {
		if v == "" {
			return
		}
		if n > 0 {
			t = append(t, ',')
		}
		n++
		t = append(t, '"')
		t = append(t, name...)
		t = append(t, '"', ':')
		t = appendString(t, v)
	}
	field("id", m.HostID)
	field("name", m.HostName)
	field("hostname", m.Hostname)
	field("architecture", m.Architecture)
	if m.OSType != "" || m.OSVersion != "" || m.OSFamily != "" || m.OSName != "" || m.OSPlatform != "" || m.OSKernel != "" || m.OSFull != "" {
		if n > 0 {
			t = append(t, ',')
		}
		n++
		t = append(t, `"os":{`...)
		k := n
		n = 0
		field("type", m.OSType)
		field("family", m.OSFamily)
		field("name", m.OSName)
		field("platform", m.OSPlatform)
		field("version", m.OSVersion)
		field("kernel", m.OSKernel)
		field("full", m.OSFull)
		n = k
		t = append(t, '}')
	}
	t = append(t, `},"agent":{"type":"fileward"`...)
	n = 1
	field("version", m.AgentVersion)
	field("id", m.AgentID)
	t = append(t, `},"ecs":{"version":"`+ECSVersion+`"}}`...)
	e.tail = t
	return e
}

// Meta returns the constant fields the encoder was built with.
func (e *Encoder) Meta() Meta { return e.meta }

// appendID appends the id of the four-word tuple (w0, w1, w2, w3) as IDLen
// lowercase hex digits: the AES-128 CBC-MAC of the tuple's two big-endian
// blocks under the host key. For messages of one fixed length, CBC-MAC is a
// pseudorandom function, so distinct tuples collide only with the 2^-128
// odds of random ids. w0 carries a tag byte in its top byte to keep the id
// spaces of events, processes, losses and heartbeats apart.
//
// The two blocks are built in dst's spare capacity, and the hex digits are
// then written over them from the end, so no scratch array escapes to the
// heap through the cipher.Block interface.
func (e *Encoder) appendID(dst []byte, w0, w1, w2, w3 uint64) []byte {
	n := len(dst)
	dst = slices.Grow(dst, IDLen)[:n+IDLen]
	s := dst[n : n+IDLen]
	binary.BigEndian.PutUint64(s[0:], w0)
	binary.BigEndian.PutUint64(s[8:], w1)
	e.block.Encrypt(s[:16], s[:16])
	binary.BigEndian.PutUint64(s[0:], binary.BigEndian.Uint64(s[0:])^w2)
	binary.BigEndian.PutUint64(s[8:], binary.BigEndian.Uint64(s[8:])^w3)
	e.block.Encrypt(s[:16], s[:16])
	// Expand the 16 MAC bytes to 32 hex digits in place, last byte first:
	// byte i lands at 2i and 2i+1, which only later bytes occupied.
	for i := 15; i >= 0; i-- {
		b := s[i]
		s[2*i], s[2*i+1] = hexDigits[b>>4], hexDigits[b&0xf]
	}
	return dst
}

// AppendID appends the event's deterministic event.id (IDLen hex digits),
// keyed by the host id and derived from ev.Provider, ev.Stream and ev.Seq
// only. Replaying the same input on the same host gives the same ids, and a
// re-sent document collides with its first copy in Elasticsearch.
func (e *Encoder) AppendID(dst []byte, ev *Event) []byte {
	return e.appendID(dst, tagEvent<<56|uint64(ev.Provider), ev.Stream, ev.Seq, 0)
}

// AppendEntityID appends the process.entity_id the encoder derives when
// p.EntityID is empty (IDLen hex digits), keyed by the host id and derived
// from pid, pidversion and start time. The same process on the same host
// always gets the same id, and a reused pid gets a new one as long as
// pidversion or start time differ.
func (e *Encoder) AppendEntityID(dst []byte, p *Process) []byte {
	return e.appendEntityID(dst, p.PID, p.PIDVersion, p.StartNS)
}

// appendEntityID is AppendEntityID for a (pid, pidversion, start) tuple; the
// parent's derived entity id uses it with the parent's tuple. The ids of
// recent tuples come from e.entities: a process's events and its children's
// repeat them, and a lookup costs a fraction of the two AES blocks.
func (e *Encoder) appendEntityID(dst []byte, pid int32, pidVersion uint32, startNS int64) []byte {
	w1, w2 := uint64(uint32(pid))<<32|uint64(pidVersion), uint64(startNS)
	slot := &e.entities[(w1^w1>>32^w2^w2>>29)&(entityCacheSlots-1)]
	if c := slot.entry.Load(); c != nil && c.w1 == w1 && c.w2 == w2 {
		return append(dst, c.id[:]...)
	}
	n := len(dst)
	dst = e.appendID(dst, tagEntity<<56, w1, w2, 0)
	if slot.missedAgain(w1 ^ w2*0x9e3779b97f4a7c15) {
		c := &cachedID{w1: w1, w2: w2}
		copy(c.id[:], dst[n:])
		slot.entry.Store(c)
	}
	return dst
}

// cacheSlot is one slot of the Encoder's direct-mapped caches: the entry
// it holds (immutable once stored, swapped atomically, so a reader sees a
// whole entry or another one) and the fingerprint of what missed in it
// last.
type cacheSlot[T any] struct {
	entry atomic.Pointer[T]
	seen  atomic.Uint64
}

// missedAgain records a miss of fp in the slot and reports whether fp was
// also the slot's last miss: an entry is kept on the second miss in a row,
// so a stream that never repeats allocates nothing.
func (s *cacheSlot[T]) missedAgain(fp uint64) bool { return s.seen.Swap(fp) == fp }

// entityCacheSlots is the size of an Encoder's cache of derived entity ids
// (a power of two).
const entityCacheSlots = 256

// cachedID is a derived process.entity_id and the (pid<<32|pidversion,
// start) words it was derived from. It is never changed once stored.
type cachedID struct {
	w1, w2 uint64
	id     [IDLen]byte
}

// actionHead returns event.category, event.type, event.action and
// event.outcome for a, already formatted. An invalid action is written as
// "unknown" with type "info" and no outcome, so the document stays valid
// JSON and DecodeECS rejects it.
func actionHead(a Action) string {
	switch a {
	case ActionOpen:
		return `"category":["file"],"type":["access"],"action":"open","outcome":"success"`
	case ActionClose:
		return `"category":["file"],"type":["access"],"action":"close","outcome":"success"`
	case ActionModification, ActionTruncate, ActionExchange:
		return `"category":["file"],"type":["change"],"action":"modification","outcome":"success"`
	case ActionCreation, ActionLink, ActionClone:
		return `"category":["file"],"type":["creation"],"action":"creation","outcome":"success"`
	case ActionDeletion:
		return `"category":["file"],"type":["deletion"],"action":"deletion","outcome":"success"`
	case ActionRename:
		return `"category":["file"],"type":["change"],"action":"rename","outcome":"success"`
	case ActionAttributesModification:
		return `"category":["file"],"type":["change"],"action":"attributes_modification","outcome":"success"`
	case ActionExtendedAttributesModification:
		return `"category":["file"],"type":["change"],"action":"extended_attributes_modification","outcome":"success"`
	case ActionExtendedAttributesDelete:
		return `"category":["file"],"type":["change"],"action":"extended_attributes_delete","outcome":"success"`
	case ActionAccess:
		return `"category":["file"],"type":["access"],"action":"access","outcome":"success"`
	case ActionExec:
		return `"category":["process"],"type":["start"],"action":"exec","outcome":"success"`
	}
	return `"category":["file"],"type":["info"],"action":"unknown"`
}

// EventType returns the event.type value for a (the single element of the
// event.type array): access, change, creation, deletion, start (exec), or
// info for an invalid action.
func EventType(a Action) string {
	switch a {
	case ActionOpen, ActionClose, ActionAccess:
		return "access"
	case ActionExec:
		return "start"
	case ActionCreation, ActionLink, ActionClone:
		return "creation"
	case ActionDeletion:
		return "deletion"
	case ActionModification, ActionRename, ActionAttributesModification,
		ActionExtendedAttributesModification, ActionExtendedAttributesDelete,
		ActionTruncate, ActionExchange:
		return "change"
	}
	return "info"
}

// EventCategory returns the event.category value for a: "process" for exec,
// "file" for everything else.
func EventCategory(a Action) string {
	if a == ActionExec {
		return "process"
	}
	return "file"
}

// SplitPath derives file.directory, file.name and file.extension from a path.
// The directory of "/x" is "/"; a path without a slash has no directory. The
// extension is taken from the name only, after its last dot, and a name whose
// only dot is its first character (".bashrc") or its last ("file.") has none,
// so "/private/etc/pam.d/login" has no extension and "a.tar.gz" has "gz".
func SplitPath(path string) (dir, name, ext string) {
	i := strings.LastIndexByte(path, '/')
	switch {
	case i < 0:
		name = path
	case i == 0:
		dir, name = "/", path[1:]
	default:
		dir, name = path[:i], path[i+1:]
	}
	if j := strings.LastIndexByte(name, '.'); j > 0 && j < len(name)-1 {
		ext = name[j+1:]
	}
	return dir, name, ext
}

// Extension returns file.extension for a path as the encoder writes it:
// SplitPath's extension, lowercased as Elastic Defend writes it.
func Extension(path string) string {
	_, _, ext := SplitPath(path)
	return lowerExt(ext)
}

// lowerExt lowercases an extension without allocating when it is ASCII.
func lowerExt(ext string) string {
	for i := 0; i < len(ext); i++ {
		c := ext[i]
		if c >= 0x80 {
			return strings.ToLower(ext)
		}
		if 'A' <= c && c <= 'Z' {
			return strings.ToLower(ext)
		}
	}
	return ext
}

// appendLowerExt appends ext lowercased as a JSON string; ASCII upper case
// is folded in place after appending, so only non-ASCII extensions allocate.
func appendLowerExt(dst []byte, ext string) []byte {
	for i := 0; i < len(ext); i++ {
		if ext[i] >= 0x80 {
			return appendString(dst, strings.ToLower(ext))
		}
	}
	n := len(dst)
	dst = appendString(dst, ext)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + ('a' - 'A')
		}
	}
	return dst
}

// baseName returns the part of path after its last slash.
func baseName(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// File type bits of st_mode and their file.type names.
const (
	modeTypeMask = 0o170000
	modeFIFO     = 0o010000
	modeChar     = 0o020000
	modeDir      = 0o040000
	modeBlock    = 0o060000
	modeRegular  = 0o100000
	modeSymlink  = 0o120000
	modeSocket   = 0o140000
)

func fileType(mode uint32) string {
	switch mode & modeTypeMask {
	case modeRegular:
		return "file"
	case modeDir:
		return "dir"
	case modeSymlink:
		return "symlink"
	case modeChar:
		return "char_device"
	case modeBlock:
		return "block_device"
	case modeFIFO:
		return "fifo"
	case modeSocket:
		return "socket"
	}
	return ""
}

func fileTypeMode(t string) (uint32, bool) {
	switch t {
	case "file":
		return modeRegular, true
	case "dir":
		return modeDir, true
	case "symlink":
		return modeSymlink, true
	case "char_device":
		return modeChar, true
	case "block_device":
		return modeBlock, true
	case "fifo":
		return modeFIFO, true
	case "socket":
		return modeSocket, true
	}
	return 0, false
}

// hasProcess reports whether the event carries any process information.
func hasProcess(p *Process) bool {
	return p.PID != 0 || p.Executable != "" || p.EntityID != ""
}

// isESF reports whether the event has fileward.esf.* provenance.
func isESF(ev *Event) bool {
	return ev.Provider == ProviderEndpointSecurity || ev.ESFEvent != "" || ev.HasGlobalSeq
}

// dataset returns the data_stream object and event.module/dataset pair of
// a file or process event.
func (e *Encoder) dataset(a Action) (ds []byte, ev string) {
	if a == ActionExec {
		return e.dsProcess, e.evProcess
	}
	return e.dsFile, e.evFile
}

// appendCaps appends the names of the set bits of a capability set as a
// JSON array (bits the table does not know are left out).
func appendCaps(dst []byte, set uint64) []byte {
	dst = append(dst, '[')
	n := 0
	for b := 0; b < 64; b++ {
		if set&(1<<b) == 0 {
			continue
		}
		name := CapabilityName(b)
		if name == "" {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// appendArgs appends a JSON array of strings.
func appendArgs(dst []byte, args []string) []byte {
	dst = append(dst, '[')
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, a)
	}
	return append(dst, ']')
}

// appendCommandLine appends process.command_line: the arguments joined by
// single spaces, as Elastic Defend builds it on Linux and macOS.
func appendCommandLine(dst []byte, args []string) []byte {
	dst = append(dst, '"')
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ' ')
		}
		q := appendString(dst, a)
		// appendString added quotes around the escaped argument: drop them.
		copy(q[len(dst):], q[len(dst)+1:len(q)-1])
		dst = q[:len(q)-2]
	}
	return append(dst, '"')
}

// Append appends one ECS JSON object for ev, without a trailing newline.
// Fields are written in the fixed order of docs/ecs.md, and fields the event
// does not know are omitted rather than written as zeros. It does not
// allocate when dst has room for the document.
func (e *Encoder) Append(dst []byte, ev *Event) []byte {
	dst, _ = e.AppendWithID(dst, ev)
	return dst
}

// AppendWithID is Append that also says where in the returned slice the
// document's event.id starts: it is out[id : id+IDLen], the same bytes
// AppendID gives. The id is computed once, for callers that need it beside
// the document (the pipeline's batches carry both).
func (e *Encoder) AppendWithID(dst []byte, ev *Event) (out []byte, id int) {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, ev.TimeNS)
	ds, evds := e.dataset(ev.Action)
	dst = append(dst, ds...)

	// event.*
	dst = append(dst, `,"event":{"kind":"event",`...)
	dst = append(dst, actionHead(ev.Action)...)
	dst = append(dst, `,"id":"`...)
	id = len(dst)
	dst = e.AppendID(dst, ev)
	dst = append(dst, `","sequence":`...)
	dst = appendUint(dst, ev.Seq)
	dst = append(dst, ',')
	dst = append(dst, evds...)
	if p := ev.Provider.String(); p != "" {
		dst = append(dst, `,"provider":"`...)
		dst = append(dst, p...)
		dst = append(dst, '"')
	}
	if ev.CreatedNS != 0 {
		dst = append(dst, `,"created":`...)
		dst = appendTime(dst, ev.CreatedNS)
	}
	dst = append(dst, '}')

	// file.*
	dir, name, ext := SplitPath(ev.Path)
	dst = append(dst, `,"file":{"path":`...)
	dst = appendString(dst, ev.Path)
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, name)
	}
	if dir != "" {
		dst = append(dst, `,"directory":`...)
		dst = appendString(dst, dir)
	}
	if ext != "" {
		dst = append(dst, `,"extension":`...)
		dst = appendLowerExt(dst, ext)
	}
	if ev.HasStat {
		if t := fileType(ev.Mode); t != "" {
			dst = append(dst, `,"type":"`...)
			dst = append(dst, t...)
			dst = append(dst, '"')
		}
		dst = append(dst, `,"inode":`...)
		dst = appendUintString(dst, ev.Inode)
		dst = append(dst, `,"device":`...)
		dst = appendUintString(dst, ev.Device)
		dst = append(dst, `,"mode":`...)
		dst = appendMode(dst, ev.Mode)
		dst = append(dst, `,"uid":`...)
		dst = appendUintString(dst, uint64(ev.UID))
		dst = append(dst, `,"gid":`...)
		dst = appendUintString(dst, uint64(ev.GID))
		dst = append(dst, `,"size":`...)
		dst = appendInt(dst, ev.Size)
		if ev.MtimeNS != 0 {
			dst = append(dst, `,"mtime":`...)
			dst = appendTime(dst, ev.MtimeNS)
		}
	}
	if ev.OrigPath != "" {
		dst = append(dst, `,"Ext":{"original":{"path":`...)
		dst = appendString(dst, ev.OrigPath)
		_, oname, oext := SplitPath(ev.OrigPath)
		if oname != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, oname)
		}
		if oext != "" {
			dst = append(dst, `,"extension":`...)
			dst = appendLowerExt(dst, oext)
		}
		dst = append(dst, `}}`...)
	}
	dst = append(dst, '}')

	// process.*, user.* and group.*
	p := &ev.Process
	dst = e.appendProcess(dst, p, ev.Action == ActionExec)

	// fileward.*
	esf := isESF(ev)
	platform := p.HasCodeSig && p.Platform
	if ev.Access&(AccessRead|AccessWrite) != 0 || ev.Count > 1 || ev.Stream != 0 || ev.PathTruncated || ev.ExtAttr != "" || esf || platform {
		dst = append(dst, `,"fileward":{`...)
		sep := false
		comma := func(dst []byte) []byte {
			if sep {
				return append(dst, ',')
			}
			sep = true
			return dst
		}
		if ev.Access&(AccessRead|AccessWrite) != 0 {
			dst = comma(dst)
			switch ev.Access & (AccessRead | AccessWrite) {
			case AccessRead:
				dst = append(dst, `"access":["read"]`...)
			case AccessWrite:
				dst = append(dst, `"access":["write"]`...)
			default:
				dst = append(dst, `"access":["read","write"]`...)
			}
		}
		if ev.Count > 1 {
			dst = comma(dst)
			dst = append(dst, `"count":`...)
			dst = appendUint(dst, uint64(ev.Count))
		}
		if ev.Stream != 0 {
			dst = comma(dst)
			dst = append(dst, `"stream":`...)
			dst = appendUint(dst, ev.Stream)
		}
		if ev.PathTruncated {
			dst = comma(dst)
			dst = append(dst, `"path_truncated":true`...)
		}
		if ev.ExtAttr != "" {
			dst = comma(dst)
			dst = append(dst, `"extattr":`...)
			dst = appendString(dst, ev.ExtAttr)
		}
		if platform {
			dst = comma(dst)
			dst = append(dst, `"process":{"platform_binary":true}`...)
		}
		if esf {
			dst = comma(dst)
			dst = append(dst, `"esf":{"seq_num":`...)
			dst = appendUint(dst, ev.ESFSeqNum)
			if ev.ESFEvent != "" {
				dst = append(dst, `,"event":`...)
				dst = appendString(dst, ev.ESFEvent)
			}
			if ev.ESFVersion != 0 {
				dst = append(dst, `,"version":`...)
				dst = appendUint(dst, uint64(ev.ESFVersion))
			}
			if ev.HasGlobalSeq {
				dst = append(dst, `,"global_seq_num":`...)
				dst = appendUint(dst, ev.GlobalSeq)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, e.tail...), id
}

// appendProcess appends the process object and the user and group objects
// of an event whose process is p (exec: the event is an exec, whose
// process carries its capabilities). They depend on p and exec only, and
// consecutive events of one process repeat them: the bytes of recent ones
// come from e.procs (see procFrag) when p and exec equal theirs.
func (e *Encoder) appendProcess(dst []byte, p *Process, exec bool) []byte {
	k, cacheable := procKeyOf(p, exec)
	var slot *cacheSlot[procFrag]
	if cacheable {
		slot = &e.procs[k.slot()]
		if f := slot.entry.Load(); f != nil && f.key == k {
			return append(dst, f.doc...)
		}
	}
	start := len(dst)
	dst = e.appendProcessFields(dst, p, exec)
	if cacheable && slot.missedAgain(k.fingerprint()) {
		slot.entry.Store(&procFrag{key: k, doc: bytes.Clone(dst[start:])})
	}
	return dst
}

// appendProcessFields is appendProcess without the cache.
func (e *Encoder) appendProcessFields(dst []byte, p *Process, exec bool) []byte {
	if hasProcess(p) {
		dst = append(dst, `,"process":{"pid":`...)
		dst = appendInt(dst, int64(p.PID))
		if p.Executable != "" {
			dst = append(dst, `,"executable":`...)
			dst = appendString(dst, p.Executable)
		}
		pname := p.Name
		if pname == "" {
			pname = baseName(p.Executable)
		}
		if pname != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, pname)
		}
		if len(p.Args) > 0 {
			dst = append(dst, `,"args":`...)
			dst = appendArgs(dst, p.Args)
			dst = append(dst, `,"args_count":`...)
			dst = appendInt(dst, int64(len(p.Args)))
			dst = append(dst, `,"command_line":`...)
			dst = appendCommandLine(dst, p.Args)
		}
		if p.WorkingDir != "" {
			dst = append(dst, `,"working_directory":`...)
			dst = appendString(dst, p.WorkingDir)
		}
		dst = append(dst, `,"entity_id":`...)
		if p.EntityID != "" {
			dst = appendString(dst, p.EntityID)
		} else {
			dst = append(dst, '"')
			dst = e.AppendEntityID(dst, p)
			dst = append(dst, '"')
		}
		if p.StartNS != 0 {
			dst = append(dst, `,"start":`...)
			dst = appendTime(dst, p.StartNS)
		}
		if p.PPID > 0 {
			dst = e.appendParent(dst, p)
		}
		if p.HasCaps && exec {
			dst = append(dst, `,"thread":{"capabilities":{"effective":`...)
			dst = appendCaps(dst, p.CapEff)
			dst = append(dst, `,"permitted":`...)
			dst = appendCaps(dst, p.CapPrm)
			dst = append(dst, `}}`...)
		}
		if p.HasCodeSig {
			dst = append(dst, `,"code_signature":{"exists":`...)
			dst = appendBool(dst, p.SigningID != "" || p.CSFlags&CSSigned != 0)
			if p.SigningID != "" {
				dst = append(dst, `,"signing_id":`...)
				dst = appendString(dst, p.SigningID)
			}
			if p.TeamID != "" {
				dst = append(dst, `,"team_id":`...)
				dst = appendString(dst, p.TeamID)
			}
			if p.HasCSFlags {
				dst = append(dst, `,"flags":`...)
				dst = appendUintString(dst, uint64(p.CSFlags))
				dst = append(dst, `,"valid":`...)
				dst = appendBool(dst, p.CSFlags&CSValid != 0)
			}
			if trusted, ok := p.Trusted(); ok {
				dst = append(dst, `,"trusted":`...)
				dst = appendBool(dst, trusted)
			}
			dst = append(dst, '}')
			if p.CDHash != "" {
				dst = append(dst, `,"hash":{"cdhash":`...)
				dst = appendString(dst, p.CDHash)
				dst = append(dst, '}')
			}
		}
		dst = append(dst, '}')
	}

	// user.* and group.*
	if p.HasUser {
		dst = append(dst, `,"user":{"id":`...)
		dst = appendUintString(dst, uint64(p.UID))
		if p.UserName != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, p.UserName)
		}
		dst = append(dst, `,"Ext":{"real":{"id":`...)
		dst = appendUintString(dst, uint64(p.RUID))
		dst = append(dst, `}}},"group":{"id":`...)
		dst = appendUintString(dst, uint64(p.GID))
		if p.GroupName != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, p.GroupName)
		}
		dst = append(dst, '}')
	}

	return dst
}

// procCacheSlots is the size of an Encoder's cache of encoded process
// objects (a power of two).
const procCacheSlots = 256

// procFrag is what appendProcessFields wrote for the process and exec flag
// key holds.
type procFrag struct {
	key procKey
	doc []byte
}

// procKey is everything appendProcessFields reads: a Process without its
// argument slices (an event whose process or parent has arguments is not
// cached) and the exec flag. Two equal keys give equal bytes.
type procKey struct {
	PID, PPID            int32
	PIDVersion           uint32
	StartNS              int64
	Executable, Name     string
	EntityID, WorkingDir string
	ParentExecutable     string
	ParentName           string
	ParentEntityID       string
	ParentPIDVersion     uint32
	ParentStartNS        int64
	CapEff, CapPrm       uint64
	HasCaps              bool
	HasUser              bool
	UID, RUID, GID       uint32
	UserName, GroupName  string
	HasCodeSig           bool
	SigningID, TeamID    string
	CDHash               string
	Platform             bool
	CSFlags              uint32
	HasCSFlags           bool
	Exec                 bool
}

// procKeyOf returns p's key, and false when p cannot be cached (it has
// arguments, or its parent has).
func procKeyOf(p *Process, exec bool) (procKey, bool) {
	if len(p.Args) > 0 || len(p.Parent.Args) > 0 {
		return procKey{}, false
	}
	return procKey{
		PID: p.PID, PPID: p.PPID, PIDVersion: p.PIDVersion, StartNS: p.StartNS,
		Executable: p.Executable, Name: p.Name, EntityID: p.EntityID, WorkingDir: p.WorkingDir,
		ParentExecutable: p.Parent.Executable, ParentName: p.Parent.Name, ParentEntityID: p.Parent.EntityID,
		ParentPIDVersion: p.Parent.PIDVersion, ParentStartNS: p.Parent.StartNS,
		CapEff: p.CapEff, CapPrm: p.CapPrm, HasCaps: p.HasCaps,
		HasUser: p.HasUser, UID: p.UID, RUID: p.RUID, GID: p.GID, UserName: p.UserName, GroupName: p.GroupName,
		HasCodeSig: p.HasCodeSig, SigningID: p.SigningID, TeamID: p.TeamID, CDHash: p.CDHash,
		Platform: p.Platform, CSFlags: p.CSFlags, HasCSFlags: p.HasCSFlags, Exec: exec,
	}, true
}

// fingerprint identifies a process image cheaply (not a whole key).
func (k *procKey) fingerprint() uint64 {
	return (uint64(uint32(k.PID))<<32 | uint64(k.PIDVersion)) ^ uint64(k.StartNS)*0x9e3779b97f4a7c15
}

// slot is the key's slot in the cache.
func (k *procKey) slot() uint64 {
	return k.fingerprint() * 0xbf58476d1ce4e5b9 >> 56 & (procCacheSlots - 1)
}

// appendParent appends `,"parent":{…}` for p (p.PPID > 0): the pid and
// what the source knows of the parent.
func (e *Encoder) appendParent(dst []byte, p *Process) []byte {
	pp := &p.Parent
	dst = append(dst, `,"parent":{"pid":`...)
	dst = appendInt(dst, int64(p.PPID))
	if pp.Executable != "" {
		dst = append(dst, `,"executable":`...)
		dst = appendString(dst, pp.Executable)
	}
	name := pp.Name
	if name == "" {
		name = baseName(pp.Executable)
	}
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, name)
	}
	if len(pp.Args) > 0 {
		dst = append(dst, `,"args":`...)
		dst = appendArgs(dst, pp.Args)
		dst = append(dst, `,"args_count":`...)
		dst = appendInt(dst, int64(len(pp.Args)))
		dst = append(dst, `,"command_line":`...)
		dst = appendCommandLine(dst, pp.Args)
	}
	switch {
	case pp.EntityID != "":
		dst = append(dst, `,"entity_id":`...)
		dst = appendString(dst, pp.EntityID)
	case pp.StartNS != 0:
		dst = append(dst, `,"entity_id":"`...)
		dst = e.appendEntityID(dst, p.PPID, pp.PIDVersion, pp.StartNS)
		dst = append(dst, '"')
	}
	if pp.StartNS != 0 {
		dst = append(dst, `,"start":`...)
		dst = appendTime(dst, pp.StartNS)
	}
	return append(dst, '}')
}

// dataStreamPrefix is how every document the encoders write names its data
// stream, right after @timestamp.
const dataStreamPrefix = `,"data_stream":{"type":"`

// DataStreamOf returns "<type>-<dataset>-<namespace>" from a document the
// encoders wrote, reading the data_stream object that follows @timestamp.
// ok is false for any other document (for example one from an older agent
// read back from Kafka); sinks then use their configured stream.
func DataStreamOf(doc []byte) (stream string, ok bool) {
	const limit = 96 // @timestamp is at most ~45 bytes in
	head := doc
	if len(head) > limit {
		head = head[:limit]
	}
	i := bytes.Index(head, []byte(dataStreamPrefix))
	if i < 0 {
		return "", false
	}
	rest := doc[i+len(dataStreamPrefix):]
	typ, rest, ok := plainValue(rest)
	if !ok {
		return "", false
	}
	if !bytes.HasPrefix(rest, []byte(`,"dataset":"`)) {
		return "", false
	}
	ds, rest, ok := plainValue(rest[len(`,"dataset":"`):])
	if !ok {
		return "", false
	}
	if !bytes.HasPrefix(rest, []byte(`,"namespace":"`)) {
		return "", false
	}
	ns, _, ok := plainValue(rest[len(`,"namespace":"`):])
	if !ok {
		return "", false
	}
	return string(typ) + "-" + string(ds) + "-" + string(ns), true
}

// plainValue reads a JSON string body of at most 100 bytes (the longest
// dataset or namespace Elastic and agent.data_stream.namespace allow) up to
// its closing quote; it refuses escapes and characters a data stream name
// cannot hold.
func plainValue(b []byte) (v, rest []byte, ok bool) {
	for i := 0; i < len(b) && i <= 100; i++ {
		switch c := b[i]; {
		case c == '"':
			return b[:i], b[i+1:], i > 0
		case c == '\\' || c < 0x20 || c == ' ' || c == '*' || c == ',' || c == '/':
			return nil, nil, false
		}
	}
	return nil, nil, false
}
