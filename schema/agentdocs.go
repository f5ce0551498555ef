package schema

// Loss describes events the agent lost, to be reported in the event stream
// itself as an ECS document with event.action events_lost.
type Loss struct {
	// TimeNS is when the loss was noticed (@timestamp), Unix nanoseconds.
	TimeNS int64
	// Reason is fileward.lost.reason.
	Reason LossReason
	// Count is fileward.lost.count: how many events were lost.
	Count uint64
	// Seq is event.sequence: the reporter's own counter of loss documents
	// (or any position that is unique per host, reason and time). It feeds
	// the deterministic event.id.
	Seq uint64
	// Totals, when set, are fileward.lost.total.<reason>: every event lost
	// for each reason since the spool was created, across restarts,
	// including this document's Count.
	Totals *[LossReasonCount]uint64
}

// Heartbeat is the periodic liveness document (event.kind metric,
// event.action heartbeat) with the agent's running totals.
type Heartbeat struct {
	// TimeNS is @timestamp, Unix nanoseconds.
	TimeNS int64
	// Seq is event.sequence: the heartbeat counter since the agent started.
	Seq uint64
	// StartedNS is when the agent started (fileward.stats.started); 0 when
	// unknown, and then fileward.stats.uptime_s is omitted too.
	StartedNS int64
	// Captured, Dropped and Spooled are totals since the agent started
	// (fileward.stats.captured, .dropped, .spooled).
	Captured uint64
	Dropped  uint64
	Spooled  uint64
	// SpoolBytes is the spool's current size (fileward.stats.spool_bytes).
	SpoolBytes int64
	// RingDepth is the ring's current depth (fileward.stats.ring_depth).
	RingDepth int64
}

// lossExplanation is the human half of a loss document's message.
func lossExplanation(r LossReason) string {
	switch r {
	case LossRingFull:
		return "the ring between capture and pipeline was full, the pipeline fell behind the kernel"
	case LossKernelOverflow:
		return "the kernel event queue overflowed (fanotify FAN_Q_OVERFLOW)"
	case LossSeqGap:
		return "the Endpoint Security sequence numbers skipped, so ESF dropped events before eslogger saw them"
	case LossSourceRestart:
		return "the capture source restarted, and events during the restart were not seen"
	case LossSpoolFull:
		return "the spool reached spool.max_bytes and spool.when_full discarded events"
	case LossRejected:
		return "a sink refused them for good, and they went to the dead-letter file"
	case LossMalformed:
		return "the input could not be parsed"
	case LossCorrupt:
		return "spool data was damaged on disk and could not be read back"
	case LossEBPFRingbufFull:
		return "the BPF ring buffer between the kernel and the agent was full, the agent fell behind the kernel"
	case LossEBPFMapFull:
		return "a BPF map was full, so the kernel could not remember that a file was written (its close was reported as a close, not a modification)"
	}
	return "of an unknown reason"
}

// AppendLossID appends the deterministic event.id of a loss document
// (IDLen hex digits), keyed by the host id and derived from Reason, Seq and
// TimeNS.
func (e *Encoder) AppendLossID(dst []byte, l *Loss) []byte {
	return e.appendID(dst, tagLoss<<56|uint64(l.Reason), l.Seq, uint64(l.TimeNS), 0)
}

// AppendLoss appends the ECS document that reports a loss: event.kind
// pipeline_error, event.dataset fileward.agent, event.action events_lost,
// fileward.lost.reason and .count, a readable message, and the host, agent
// and ecs fields. No trailing newline; no allocation when dst has room.
func (e *Encoder) AppendLoss(dst []byte, l *Loss) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, l.TimeNS)
	dst = append(dst, e.dsAgent...)
	dst = append(dst, `,"event":{"kind":"pipeline_error","action":"events_lost","id":"`...)
	dst = e.AppendLossID(dst, l)
	dst = append(dst, `","sequence":`...)
	dst = appendUint(dst, l.Seq)
	dst = append(dst, ',')
	dst = append(dst, e.evAgent...)
	dst = append(dst, `},"message":"fileward lost `...)
	dst = appendUint(dst, l.Count)
	if l.Count == 1 {
		dst = append(dst, ` event (`...)
	} else {
		dst = append(dst, ` events (`...)
	}
	dst = append(dst, l.Reason.String()...)
	dst = append(dst, `): `...)
	dst = append(dst, lossExplanation(l.Reason)...)
	dst = append(dst, `","fileward":{"lost":{"reason":"`...)
	dst = append(dst, l.Reason.String()...)
	dst = append(dst, `","count":`...)
	dst = appendUint(dst, l.Count)
	if l.Totals != nil {
		dst = append(dst, `,"total":{`...)
		for r := LossReason(0); r < LossReasonCount; r++ {
			if r > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, r.String()...)
			dst = append(dst, `":`...)
			dst = appendUint(dst, l.Totals[r])
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `}}`...)
	return append(dst, e.tail...)
}

// AppendHeartbeatID appends the deterministic event.id of a heartbeat
// (IDLen hex digits), keyed by the host id and derived from Seq and TimeNS.
func (e *Encoder) AppendHeartbeatID(dst []byte, h *Heartbeat) []byte {
	return e.appendID(dst, tagHeartbeat<<56, h.Seq, uint64(h.TimeNS), 0)
}

// AppendHeartbeat appends the heartbeat document: event.kind metric,
// event.action heartbeat, event.dataset fileward.agent, the running totals
// under fileward.stats, and the host, agent and ecs fields.
func (e *Encoder) AppendHeartbeat(dst []byte, h *Heartbeat) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, h.TimeNS)
	dst = append(dst, e.dsAgent...)
	dst = append(dst, `,"event":{"kind":"metric","action":"heartbeat","id":"`...)
	dst = e.AppendHeartbeatID(dst, h)
	dst = append(dst, `","sequence":`...)
	dst = appendUint(dst, h.Seq)
	dst = append(dst, ',')
	dst = append(dst, e.evAgent...)
	dst = append(dst, `},"message":"fileward heartbeat","fileward":{"stats":{`...)
	if h.StartedNS != 0 {
		dst = append(dst, `"started":`...)
		dst = appendTime(dst, h.StartedNS)
		dst = append(dst, `,"uptime_s":`...)
		dst = appendInt(dst, (h.TimeNS-h.StartedNS)/1_000_000_000)
		dst = append(dst, ',')
	}
	dst = append(dst, `"captured":`...)
	dst = appendUint(dst, h.Captured)
	dst = append(dst, `,"dropped":`...)
	dst = appendUint(dst, h.Dropped)
	dst = append(dst, `,"spooled":`...)
	dst = appendUint(dst, h.Spooled)
	dst = append(dst, `,"spool_bytes":`...)
	dst = appendInt(dst, h.SpoolBytes)
	dst = append(dst, `,"ring_depth":`...)
	dst = appendInt(dst, h.RingDepth)
	dst = append(dst, `}}`...)
	return append(dst, e.tail...)
}
