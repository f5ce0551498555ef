//go:build !darwin

package eslogger

import "log/slog"

// checkPlatform off macOS skips the macOS checks with one warning: the
// configured executable is run as an eslogger stand-in (recorded streams).
func checkPlatform(path string, log *slog.Logger) error {
	log.Warn("not macOS: skipping the macOS checks (version, root, Full Disk Access) and running the configured executable as an eslogger stand-in", "path", path)
	return nil
}
