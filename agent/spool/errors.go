package spool

import (
	"errors"
	"fmt"
)

var (
	// ErrFull is returned by Append when the spool is at MaxBytes and the
	// policy is drop_newest. The batch was counted through OnDrop.
	ErrFull = errors.New("spool full")
	// ErrNoSpace is wrapped by the error Append returns when the disk is
	// full (ENOSPC or EDQUOT). The batch was counted through OnDrop; a later
	// Append tries the disk again.
	ErrNoSpace = errors.New("no space left on device")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("spool closed")
	// ErrTooLarge is returned by Append for a payload that cannot fit in one
	// segment. The batch was counted through OnDrop.
	ErrTooLarge = errors.New("record larger than a segment")
	// ErrLocked is returned by Open when another process holds the spool.
	ErrLocked = errors.New("spool directory is locked by another process")
)

// CorruptionError describes damaged bytes in a segment.
type CorruptionError struct {
	Dir     string
	Segment uint64
	Offset  int64
	Err     error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("spool %s: segment %d at offset %d: %v", e.Dir, e.Segment, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptionError) Unwrap() error { return e.Err }
