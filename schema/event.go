package schema

// Event is the compact value a capture source fills for one file event. It is
// the ECS document before encoding: the encoder adds the host, agent and ECS
// fields that are the same for every event of one agent.
//
// Numbers are kept as numbers here and formatted only by the encoder. Strings
// may alias a source's buffers only until the event is pushed to the ring;
// sources must give the ring strings they no longer mutate.
type Event struct {
	// TimeNS is the kernel's event time (@timestamp) in Unix nanoseconds.
	TimeNS int64
	// CreatedNS is the agent's receive time (event.created) in Unix nanoseconds.
	CreatedNS int64

	Action   Action
	Provider Provider
	// Access holds AccessRead and AccessWrite bits; it is set on ActionOpen.
	Access uint8

	// Seq is the source's own sequence or position for this event: the ESF
	// global_seq_num (or a per-stream position when the message lacks one), a
	// fanotify read counter, or a replay line number plus loop offset. It
	// becomes event.sequence and feeds the deterministic event.id.
	Seq uint64
	// Stream distinguishes independent sequences of one provider on one host
	// (for example two fanotify groups, or eslogger restarts), so that ids
	// stay unique. Zero is a valid stream.
	Stream uint64

	// Path is file.path: the target, or the new path of a rename, link or clone.
	Path string
	// OrigPath is file.Ext.original.path: the old path of a rename, or the
	// source of a link, clone or exchange.
	OrigPath string
	// PathTruncated is set when the source reports the path was cut.
	PathTruncated bool

	// File metadata, valid when HasStat is set.
	HasStat bool
	Inode   uint64
	Device  uint64
	Mode    uint32 // permission bits and file type as st_mode
	UID     uint32
	GID     uint32
	Size    int64
	MtimeNS int64

	Process Process

	// ESF provenance (fileward.esf.*).
	ESFEvent     string // the eslogger event name, e.g. "setextattr"
	ESFVersion   uint32
	ESFSeqNum    uint64
	GlobalSeq    uint64
	HasGlobalSeq bool
	// ExtAttr is the extended attribute name for setextattr/deleteextattr.
	ExtAttr string

	// Count is fileward.count: how many raw events aggregation folded into
	// this one. 0 and 1 mean a single event.
	Count uint32
}

// Process describes the process that caused the event.
type Process struct {
	PID        int32
	PPID       int32
	PIDVersion uint32 // ESF audit token pidversion
	StartNS    int64  // process start time in Unix nanoseconds, 0 when unknown
	Executable string
	Name       string // derived from Executable when empty
	Args       []string

	// EntityID is process.entity_id. When empty the encoder derives it from
	// host id, pid, pidversion and start time.
	EntityID string

	// WorkingDir is process.working_directory (eslogger exec: cwd).
	WorkingDir string

	// Parent is process.parent.*: what the source knows of the parent
	// process. Its PID is PPID above.
	Parent Parent

	// CapEff and CapPrm are the effective and permitted capability sets
	// (Linux, /proc/<pid>/status), valid when HasCaps. They become
	// process.thread.capabilities.{effective,permitted} on process start
	// events.
	CapEff, CapPrm uint64
	HasCaps        bool

	HasUser   bool
	UID       uint32 // effective uid (user.id)
	RUID      uint32 // real uid
	GID       uint32 // effective gid (group.id)
	UserName  string
	GroupName string

	// macOS code signing.
	HasCodeSig bool
	SigningID  string
	TeamID     string
	CDHash     string
	// Platform is ESF is_platform_binary (fileward.process.platform_binary).
	Platform bool
	// CSFlags are the ESF codesigning_flags, valid when HasCSFlags. They
	// decide process.code_signature.trusted and .valid (see Trusted).
	CSFlags    uint32
	HasCSFlags bool
}

// Parent is what a source knows about a process's parent. Every field is
// optional: a source that cannot tell leaves it empty and the encoder omits it.
type Parent struct {
	Executable string
	Name       string // derived from Executable when empty
	Args       []string
	// EntityID is process.parent.entity_id. When empty and StartNS is not
	// zero, the encoder derives it from (PPID, PIDVersion, StartNS) exactly
	// as it derives process.entity_id, so that it equals the parent's own
	// process.entity_id.
	EntityID   string
	PIDVersion uint32
	StartNS    int64
}

// Code signing flags of <kern/cs_blobs.h> that Trusted reads.
const (
	CSValid    = 0x00000001
	CSAdhoc    = 0x00000002
	CSPlatform = 0x04000000 // CS_PLATFORM_BINARY
	CSSigned   = 0x20000000
)

// Trusted says whether process.code_signature.trusted is true, with the
// meaning Elastic Defend gives it: the signature is valid (CS_VALID) and
// chains to a trusted root, which for a non-ad-hoc signature means a
// Developer ID or App Store team id, or an Apple platform binary. A
// signature that was invalidated since exec (CS_VALID cleared) is
// untrusted. ok is false when the source gave no flags: then trust was not
// evaluated and the field is left out.
func (p *Process) Trusted() (trusted, ok bool) {
	if !p.HasCSFlags {
		return false, false
	}
	f := p.CSFlags
	if f&CSValid == 0 || f&CSAdhoc != 0 {
		return false, true
	}
	return p.TeamID != "" || p.Platform || f&CSPlatform != 0, true
}
