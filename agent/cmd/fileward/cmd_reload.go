package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
)

// cmdReload is `fileward reload [-c FILE]`: it sends SIGHUP to the agent
// that holds the config's data_dir lock. The agent logs what the reload did.
func cmdReload(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("reload", stdout, stderr)
	cfg, _, code, done := commandConfig(fs, args, stdout, stderr)
	if done {
		return code
	}
	dataDir, err := filepath.Abs(cfg.Agent.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "fileward reload: agent.data_dir: %v\n", err)
		return 2
	}
	pid, ok := runningPID(dataDir)
	if !ok {
		fmt.Fprintf(stderr, "fileward reload: no agent is running on %s (start one with fileward run)\n", dataDir)
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "fileward reload: signal pid %d: %v\n", pid, err)
		return 1
	}
	fmt.Fprintf(stdout, "sent SIGHUP to the agent (pid %d); its log says what the reload did\n", pid)
	return 0
}
