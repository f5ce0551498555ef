//go:build linux

package fanotify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/capture/fanotify"
	"github.com/fileward/fileward/agent/procfs"
	"github.com/fileward/fileward/schema"
)

// Example shows how the agent wires the source: the read loop fills the
// ring, and the pipeline enriches process fields after it.
func Example() {
	src, err := fanotify.New(fanotify.Options{
		Marks:       []string{"/"},
		MarkType:    "filesystem",
		Events:      []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"},
		IgnorePaths: []string{"/var/lib/fileward"},
		SelfPID:     os.Getpid(),
		Logger:      slog.Default(),
	})
	if err != nil {
		fmt.Println(err) // e.g. "fanotify needs root or CAP_SYS_ADMIN ..."
		return
	}
	drops := &capture.Drops{}
	ring := capture.NewRing(65536, drops)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx, ring, drops)

	procs := procfs.New(procfs.Options{HostID: "host-1"})
	defer procs.Close()
	var ev schema.Event
	for ring.Pop(ctx, &ev) {
		if !procs.Enrich(&ev) {
			// count process_unresolved; ev.Process.PID is still set
		}
		fmt.Println(ev.Action, ev.Path, ev.Process.Executable)
	}
}
