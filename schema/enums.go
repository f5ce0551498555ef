package schema

// ECSVersion is the version of the Elastic Common Schema the documents follow.
const ECSVersion = "8.17.0"

// Action is the normalised event.action of a file event.
type Action uint8

// The actions of docs/ecs.md's table. ActionNone is the zero value and never
// reaches the encoder.
const (
	ActionNone Action = iota
	ActionOpen
	ActionClose
	ActionModification
	ActionCreation
	ActionDeletion
	ActionRename
	ActionAttributesModification
	ActionExtendedAttributesModification
	ActionTruncate
	ActionLink
	ActionClone
	ActionExchange
	ActionAccess
	ActionExec
	ActionExtendedAttributesDelete
	actionCount
)

var actionNames = [actionCount]string{
	ActionNone:                           "",
	ActionOpen:                           "open",
	ActionClose:                          "close",
	ActionModification:                   "modification",
	ActionCreation:                       "creation",
	ActionDeletion:                       "deletion",
	ActionRename:                         "rename",
	ActionAttributesModification:         "attributes_modification",
	ActionExtendedAttributesModification: "extended_attributes_modification",
	// Elastic Defend has no truncate, link, clone or exchange action. Its
	// rules look for content changes as "modification" and for new names as
	// "creation", so these ESF events take those spellings (the ESF event
	// name stays in fileward.esf.event). ParseAction maps the spelling back
	// to ActionModification or ActionCreation, which encode the same.
	ActionTruncate:                 "modification",
	ActionLink:                     "creation",
	ActionClone:                    "creation",
	ActionExchange:                 "modification",
	ActionAccess:                   "access",
	ActionExec:                     "exec",
	ActionExtendedAttributesDelete: "extended_attributes_delete",
}

// String returns the event.action value.
func (a Action) String() string {
	if a < actionCount {
		return actionNames[a]
	}
	return ""
}

// Actions returns every valid action, in enum order. Several actions share a
// spelling (see actionNames); use ActionNames for the distinct values.
func Actions() []Action {
	out := make([]Action, 0, actionCount-1)
	for a := ActionOpen; a < actionCount; a++ {
		out = append(out, a)
	}
	return out
}

// ActionNames returns every distinct event.action value a file or process
// event can carry, in enum order of first use.
func ActionNames() []string {
	var out []string
	seen := map[string]bool{}
	for a := ActionOpen; a < actionCount; a++ {
		if n := actionNames[a]; !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Provider is event.provider: which kernel facility produced the event.
type Provider uint8

const (
	ProviderNone Provider = iota
	// ProviderEndpointSecurity is Apple's Endpoint Security framework (ESF), read through eslogger.
	ProviderEndpointSecurity
	// ProviderFanotify is Linux fanotify.
	ProviderFanotify
	// ProviderEBPF is Linux capture by fileward's BPF LSM programs.
	ProviderEBPF
)

// String returns the event.provider value.
func (p Provider) String() string {
	switch p {
	case ProviderEndpointSecurity:
		return "endpoint_security"
	case ProviderFanotify:
		return "fanotify"
	case ProviderEBPF:
		return "ebpf"
	}
	return ""
}

// Access bits for fileward.access on open events.
const (
	AccessRead  uint8 = 1 << 0
	AccessWrite uint8 = 1 << 1
)

// LossReason is fileward.lost.reason and the reason label of
// fileward_events_dropped_total.
type LossReason uint8

const (
	LossRingFull LossReason = iota
	LossKernelOverflow
	LossSeqGap
	LossSourceRestart
	LossSpoolFull
	LossRejected
	LossMalformed
	LossCorrupt
	// LossEBPFRingbufFull counts eBPF records the kernel could not write
	// because the BPF ring buffer was full (the agent fell behind).
	LossEBPFRingbufFull
	// LossEBPFMapFull counts eBPF events lost because a BPF map was full:
	// a write the kernel could not remember, so its close was reported as
	// a close instead of a modification.
	LossEBPFMapFull
	// LossReasonCount is the number of reasons; use it to size arrays.
	LossReasonCount
)

var lossNames = [LossReasonCount]string{
	LossRingFull:        "ring_full",
	LossKernelOverflow:  "kernel_overflow",
	LossSeqGap:          "seq_gap",
	LossSourceRestart:   "source_restart",
	LossSpoolFull:       "spool_full",
	LossRejected:        "rejected",
	LossMalformed:       "malformed",
	LossCorrupt:         "corrupt",
	LossEBPFRingbufFull: "ebpf_ringbuf_full",
	LossEBPFMapFull:     "ebpf_map_full",
}

// ParseLossReason maps a fileward.lost.reason value back to its reason.
func ParseLossReason(s string) (LossReason, bool) {
	for r, n := range lossNames {
		if n == s {
			return LossReason(r), true
		}
	}
	return LossReasonCount, false
}

// String returns the fileward.lost.reason value.
func (r LossReason) String() string {
	if r < LossReasonCount {
		return lossNames[r]
	}
	return "unknown"
}

// capNames are the Linux capability names by bit (<linux/capability.h>).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// CapabilityName returns the name of capability bit b ("CAP_SYS_ADMIN"), or
// "" for a bit this table does not know.
func CapabilityName(b int) string {
	if b >= 0 && b < len(capNames) {
		return capNames[b]
	}
	return ""
}

// parseCapability maps a name back to its bit.
func parseCapability(name string) (int, bool) {
	for i, n := range capNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}
