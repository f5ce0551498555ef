package main

import (
	"errors"
	"fmt"

	"github.com/fileward/fileward/agent/spool"
)

// versionHint adds this binary's version to a spool written by a newer
// fileward (a rollback), so the message names both sides: the spool's format
// version and the agent that cannot read it (docs/upgrade.md).
func versionHint(err error) string {
	var ve *spool.VersionError
	if !errors.As(err, &ve) {
		return ""
	}
	return fmt.Sprintf(" (this is fileward %s; see docs/upgrade.md, Rollback)", version)
}
