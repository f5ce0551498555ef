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

// VersionError is returned by Open and Inspect when the spool holds a segment
// or a cursor in a format newer than this build reads: a newer fileward wrote
// it, and this one was installed over it (a rollback). Open checks every
// segment's and cursor's version before it repairs anything, and changes
// nothing then: quarantining or rewriting what a newer agent wrote would
// lose it.
// Upgrading again ships the spool; so does moving the directory aside for the
// newer agent to read later.
type VersionError struct {
	Dir       string
	File      string // the segment or cursor file, relative to Dir
	Found     int    // the format version in the file
	Supported int    // the newest format version this build reads
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("spool %s: %s is in spool format version %d, written by a newer fileward; this fileward reads format versions up to %d: "+
		"install the newer fileward again, or move %s aside (it is left as it is)", e.Dir, e.File, e.Found, e.Supported, e.Dir)
}
