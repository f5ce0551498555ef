package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fileward/fileward/schema"
)

// hostMeta gathers the per-agent constant fields. hostID and hostName
// override what the machine says; dataDir (when set) keeps agent.id stable
// across restarts.
func hostMeta(hostID, hostName, dataDir string) (schema.Meta, error) {
	m := schema.Meta{HostID: hostID, HostName: hostName, AgentVersion: version}
	if m.HostName == "" {
		h, err := os.Hostname()
		if err != nil {
			return m, fmt.Errorf("host name: %w", err)
		}
		m.HostName = h
	}
	if m.HostID == "" {
		m.HostID = machineID(m.HostName)
	}
	m.OSType, m.OSVersion = osInfo()
	fillHostOS(&m, "")
	if dataDir == "" {
		sum := sha256.Sum256([]byte("agent:" + m.HostID))
		m.AgentID = hex.EncodeToString(sum[:16])
		return m, nil
	}
	id, err := agentID(dataDir)
	if err != nil {
		return m, err
	}
	m.AgentID = id
	return m, nil
}

// machineID is /etc/machine-id on Linux, the IOPlatformUUID on macOS, or a
// hash of the host name when neither is available.
func machineID(hostName string) string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id
			}
		}
	}
	if runtime.GOOS == "darwin" {
		if out, err := exec.Command("/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice").Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "IOPlatformUUID") {
					if f := strings.Split(line, `"`); len(f) >= 4 {
						return f[3]
					}
				}
			}
		}
	}
	sum := sha256.Sum256([]byte("host:" + hostName))
	return hex.EncodeToString(sum[:16])
}

func osInfo() (typ, ver string) {
	switch runtime.GOOS {
	case "darwin":
		typ = "macos"
		if out, err := exec.Command("/usr/bin/sw_vers", "-productVersion").Output(); err == nil {
			ver = strings.TrimSpace(string(out))
		}
	case "linux":
		typ = "linux"
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			ver = string(bytes.TrimRight(u.Release[:], "\x00"))
		}
	default:
		typ = runtime.GOOS
	}
	return typ, ver
}

// agentID reads data_dir/state/agent.id, creating it on first start.
func agentID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "state", "agent.id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read agent id: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("agent id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("agent id: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("agent id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("agent id: %w", err)
	}
	return id, nil
}

// fillHostOS sets host.hostname, host.architecture and host.os.{family,
// name, platform, version, kernel, full} as Elastic Defend fills them. On
// Linux they come from uname(2) and os-release(5); hostRoot, when set (the
// DaemonSet's /host), is where the host's /etc/os-release is read, so a
// containerised agent reports the node's OS, not its image's.
func fillHostOS(m *schema.Meta, hostRoot string) {
	if h, err := os.Hostname(); err == nil {
		m.Hostname = h
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Architecture = string(bytes.TrimRight(u.Machine[:], "\x00"))
	}
	switch runtime.GOOS {
	case "darwin":
		m.OSFamily, m.OSName, m.OSPlatform = "macos", "macOS", "macos"
		m.OSKernel = string(bytes.TrimRight(u.Version[:], "\x00"))
		if m.OSVersion != "" {
			m.OSFull = "macOS " + m.OSVersion
		}
	case "linux":
		m.OSKernel = string(bytes.TrimRight(u.Release[:], "\x00"))
		for _, p := range []string{filepath.Join(hostRoot, "/etc/os-release"), filepath.Join(hostRoot, "/usr/lib/os-release")} {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			r := parseOSRelease(b)
			m.OSPlatform = r["ID"]
			m.OSFamily = r["ID"]
			if like := strings.Fields(r["ID_LIKE"]); len(like) > 0 {
				m.OSFamily = like[0]
			}
			m.OSName = r["NAME"]
			m.OSFull = r["PRETTY_NAME"]
			if v := r["VERSION_ID"]; v != "" {
				m.OSVersion = v
			}
			break
		}
	}
}

// parseOSRelease reads the KEY=value lines of os-release(5), unquoting
// values.
func parseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out
}
