//go:build darwin

package eslogger

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// checkPlatform refuses to start where eslogger cannot work: macOS older than
// 13, not root, or no eslogger executable. Each error says how to fix it.
func checkPlatform(path string, log *slog.Logger) error {
	v, err := unix.Sysctl("kern.osproductversion")
	if err != nil {
		return fmt.Errorf("eslogger: cannot read the macOS version (sysctl kern.osproductversion): %w", err)
	}
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if major < 13 {
		return fmt.Errorf("eslogger: macOS %s is too old: eslogger needs macOS 13 (Ventura) or later; upgrade macOS", v)
	}
	if os.Geteuid() != 0 {
		return errors.New("eslogger: the agent must run as root (eslogger is an Endpoint Security client); " +
			"run it with sudo or through launchd with deploy/macos/com.fileward.agent.plist")
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("eslogger: %s not found (it ships with macOS 13 and later; check source.eslogger.path): %w", path, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("eslogger: %s is not an executable file (check source.eslogger.path)", path)
	}
	log.Info("eslogger platform checks passed", "macos", v, "path", path)
	return nil
}
