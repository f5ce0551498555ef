package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fileward/fileward/agent/spool"
)

// pidFile is the agent's lock in its data_dir. It holds the pid of the
// running agent (for `fileward reload` and for the message a second agent
// gets) and an exclusive flock for as long as that agent runs.
const pidFile = "fileward.pid"

// errAgentRunning is wrapped by lockDataDir's error when another agent holds
// the data_dir.
var errAgentRunning = errors.New("another fileward agent is running on this data_dir")

// dataDirLock is the held lock of one data_dir.
type dataDirLock struct{ f *os.File }

// lockDataDir takes the data_dir's lock and writes this process's pid in it.
func lockDataDir(dataDir string) (*dataDirLock, error) {
	p := filepath.Join(dataDir, pidFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("agent.data_dir %s: %w", dataDir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if pid, ok := runningPID(dataDir); ok {
				return nil, fmt.Errorf("agent.data_dir %s: %w (pid %d)", dataDir, errAgentRunning, pid)
			}
			return nil, fmt.Errorf("agent.data_dir %s: %w", dataDir, errAgentRunning)
		}
		return nil, fmt.Errorf("agent.data_dir %s: lock %s: %w", dataDir, p, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
			return nil, fmt.Errorf("agent.data_dir %s: %w", dataDir, err)
		}
	}
	return &dataDirLock{f: f}, nil
}

// release drops the lock. The pid file stays; its lock says whether it is live.
func (l *dataDirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// runningPID returns the pid of the agent that holds dataDir's lock, and
// false when no agent holds it.
func runningPID(dataDir string) (int, bool) {
	f, err := os.Open(filepath.Join(dataDir, pidFile))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0, false // nobody holds it
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// startFailure renders a failure to start as one line: the cause, then what
// to do about it. Errors that already say what to do (fanotify's) pass as
// they are.
func startFailure(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	var fix string
	switch {
	case errors.Is(err, errAgentRunning), errors.Is(err, spool.ErrLocked):
		fix = "stop the other agent first, or give this one its own agent.data_dir"
	case errors.Is(err, syscall.EADDRINUSE):
		fix = "another process listens on that address: stop it, or set metrics.listen to a free port (\"\" disables metrics)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		fix = "that address is not on this host: set metrics.listen to a local address such as 127.0.0.1:9464"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		fix = "the disk is full: free space on it, or point agent.data_dir at a filesystem with room"
	case errors.Is(err, syscall.EROFS):
		fix = "the filesystem is read-only: remount it read-write, or point agent.data_dir somewhere writable"
	case strings.Contains(msg, "fanotify"):
		// The fanotify source's errors name their fix already.
	case errors.Is(err, fs.ErrPermission):
		fix = "this user may not write there: run fileward as a user who may, or point agent.data_dir (or the path named) elsewhere"
	case errors.Is(err, fs.ErrNotExist):
		fix = "create the file, or correct the path in the config"
	}
	if fix == "" {
		return msg
	}
	return msg + ": " + fix
}
