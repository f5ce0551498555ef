//go:build linux

package fanotify

import "time"

// ignoreRunDuration is the full-speed run of TestIgnoredPathsAndSelf.
const ignoreRunDuration = 10 * time.Second
