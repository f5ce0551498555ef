package schema

// ECSVersion is the version of the Elastic Common Schema the documents follow.
const ECSVersion = "8.11.0"

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
	ActionTruncate:                       "truncate",
	ActionLink:                           "link",
	ActionClone:                          "clone",
	ActionExchange:                       "exchange",
	ActionAccess:                         "access",
	ActionExec:                           "exec",
}

// String returns the event.action value.
func (a Action) String() string {
	if a < actionCount {
		return actionNames[a]
	}
	return ""
}

// Actions returns every valid action, in enum order.
func Actions() []Action {
	out := make([]Action, 0, actionCount-1)
	for a := ActionOpen; a < actionCount; a++ {
		out = append(out, a)
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
)

// String returns the event.provider value.
func (p Provider) String() string {
	switch p {
	case ProviderEndpointSecurity:
		return "endpoint_security"
	case ProviderFanotify:
		return "fanotify"
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
	// LossReasonCount is the number of reasons; use it to size arrays.
	LossReasonCount
)

var lossNames = [LossReasonCount]string{
	LossRingFull:       "ring_full",
	LossKernelOverflow: "kernel_overflow",
	LossSeqGap:         "seq_gap",
	LossSourceRestart:  "source_restart",
	LossSpoolFull:      "spool_full",
	LossRejected:       "rejected",
	LossMalformed:      "malformed",
	LossCorrupt:        "corrupt",
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
