package schema

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
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
	// OSType is host.os.type: "linux" or "macos".
	OSType string
	// OSVersion is host.os.version, e.g. "15.3.1" or "6.18.0".
	OSVersion string
	// AgentID is agent.id: the identity of this agent installation.
	AgentID string
	// AgentVersion is agent.version.
	AgentVersion string
}

// IDLen is the length in bytes of every id the encoder writes: event.id,
// process.entity_id when derived, and the ids of loss and heartbeat
// documents. Ids are 128 bits in lowercase hex, so they are safe as an
// Elasticsearch _id, a Kafka header and a file name.
const IDLen = 32

// Encoder turns Events into ECS JSON documents. It is immutable after
// NewEncoder, so one Encoder may be shared by any number of goroutines.
//
// Every Append method appends to dst and returns the extended slice. None
// allocates when dst has enough capacity, which a reused buffer has in steady
// state. Output is byte-for-byte deterministic: the same Meta and Event give
// the same bytes, with fields in the fixed order docs/ecs.md documents.
type Encoder struct {
	meta Meta
	// block is AES-128 keyed by the host key, SHA-256("fileward host\x00" +
	// HostID)[:16]. cipher.Block is safe for concurrent use.
	block cipher.Block
	// tail is `,"host":{…},"agent":{…},"ecs":{…}}`: the constant end of
	// every document.
	tail []byte
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
	e := &Encoder{meta: m}
	sum := sha256.Sum256([]byte("fileward host\x00" + m.HostID))
	block, err := aes.NewCipher(sum[:16])
	if err != nil {
		panic("schema: aes.NewCipher with a 16-byte key: " + err.Error()) // cannot happen
	}
	e.block = block

	t := make([]byte, 0, 160+len(m.HostID)+len(m.HostName)+len(m.OSType)+len(m.OSVersion)+len(m.AgentID)+len(m.AgentVersion))
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
	if m.OSType != "" || m.OSVersion != "" {
		if n > 0 {
			t = append(t, ',')
		}
		n++
		t = append(t, `"os":{`...)
		k := n
		n = 0
		field("type", m.OSType)
		field("version", m.OSVersion)
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
	return e.appendID(dst, tagEntity<<56, uint64(uint32(p.PID))<<32|uint64(p.PIDVersion), uint64(p.StartNS), 0)
}

// actionHead returns event.category, event.type and event.action for a,
// already formatted. An invalid action is written as "unknown" with type
// "info", so the document stays valid JSON and DecodeECS rejects it.
func actionHead(a Action) string {
	switch a {
	case ActionOpen:
		return `"category":["file"],"type":["access"],"action":"open"`
	case ActionClose:
		return `"category":["file"],"type":["access"],"action":"close"`
	case ActionModification:
		return `"category":["file"],"type":["change"],"action":"modification"`
	case ActionCreation:
		return `"category":["file"],"type":["creation"],"action":"creation"`
	case ActionDeletion:
		return `"category":["file"],"type":["deletion"],"action":"deletion"`
	case ActionRename:
		return `"category":["file"],"type":["change"],"action":"rename"`
	case ActionAttributesModification:
		return `"category":["file"],"type":["change"],"action":"attributes_modification"`
	case ActionExtendedAttributesModification:
		return `"category":["file"],"type":["change"],"action":"extended_attributes_modification"`
	case ActionTruncate:
		return `"category":["file"],"type":["change"],"action":"truncate"`
	case ActionLink:
		return `"category":["file"],"type":["creation"],"action":"link"`
	case ActionClone:
		return `"category":["file"],"type":["creation"],"action":"clone"`
	case ActionExchange:
		return `"category":["file"],"type":["change"],"action":"exchange"`
	case ActionAccess:
		return `"category":["file"],"type":["access"],"action":"access"`
	case ActionExec:
		return `"category":["file","process"],"type":["access"],"action":"exec"`
	}
	return `"category":["file"],"type":["info"],"action":"unknown"`
}

// EventType returns the event.type value for a (the single element of the
// event.type array): access, change, creation, deletion, or info for an
// invalid action.
func EventType(a Action) string {
	switch a {
	case ActionOpen, ActionClose, ActionAccess, ActionExec:
		return "access"
	case ActionCreation, ActionLink, ActionClone:
		return "creation"
	case ActionDeletion:
		return "deletion"
	case ActionModification, ActionRename, ActionAttributesModification,
		ActionExtendedAttributesModification, ActionTruncate, ActionExchange:
		return "change"
	}
	return "info"
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

// Append appends one ECS JSON object for ev, without a trailing newline.
// Fields are written in the fixed order of docs/ecs.md, and fields the event
// does not know are omitted rather than written as zeros. It does not
// allocate when dst has room for the document.
func (e *Encoder) Append(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, ev.TimeNS)

	// event.*
	dst = append(dst, `,"event":{"kind":"event",`...)
	dst = append(dst, actionHead(ev.Action)...)
	dst = append(dst, `,"id":"`...)
	dst = e.AppendID(dst, ev)
	dst = append(dst, `","sequence":`...)
	dst = appendUint(dst, ev.Seq)
	dst = append(dst, `,"module":"fileward","dataset":"fileward.file"`...)
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
		dst = appendString(dst, ext)
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
		if n := baseName(ev.OrigPath); n != "" {
			dst = append(dst, `,"name":`...)
			dst = appendString(dst, n)
		}
		dst = append(dst, `}}`...)
	}
	dst = append(dst, '}')

	// process.*
	p := &ev.Process
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
			dst = append(dst, `,"args":[`...)
			for i, a := range p.Args {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, a)
			}
			dst = append(dst, `],"args_count":`...)
			dst = appendInt(dst, int64(len(p.Args)))
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
			dst = append(dst, `,"parent":{"pid":`...)
			dst = appendInt(dst, int64(p.PPID))
			dst = append(dst, '}')
		}
		if p.HasCodeSig {
			dst = append(dst, `,"code_signature":{"exists":`...)
			dst = appendBool(dst, p.SigningID != "")
			if p.SigningID != "" {
				dst = append(dst, `,"signing_id":`...)
				dst = appendString(dst, p.SigningID)
			}
			if p.TeamID != "" {
				dst = append(dst, `,"team_id":`...)
				dst = appendString(dst, p.TeamID)
			}
			dst = append(dst, `,"trusted":`...)
			dst = appendBool(dst, p.Platform)
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
		dst = append(dst, '}')
	}

	// fileward.*
	esf := isESF(ev)
	if ev.Access&(AccessRead|AccessWrite) != 0 || ev.Count > 1 || ev.Stream != 0 || ev.PathTruncated || ev.ExtAttr != "" || esf {
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
	return append(dst, e.tail...)
}
