//go:build linux

package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
)

// TestSpoolRefusesENOSPC: the spool's file system (a 1 MiB tmpfs) fills up
// under the pipeline. Appends fail with ENOSPC, are refused and counted,
// capture goes on; once space is freed (no restart) appending resumes and
// the loss report arrives: stored events plus the reported count are every
// event pushed.
func TestSpoolRefusesENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestSpoolRefusesENOSPC mounts a tmpfs and needs root (CI runs as root)")
	}
	mnt := testtool.Tmpfs(t, "1m")
	s := newSpoolRig(t, spool.Options{Dir: filepath.Join(mnt, "spool"), MaxBytes: 64 << 20, SegmentBytes: 256 << 10,
		Fsync: spool.FsyncNever})
	// Fill what the spool left to the last byte.
	filler := filepath.Join(mnt, "filler")
	testtool.FillDisk(t, filler)
	stop := started(t, s.rig)
	const n = 1000
	pushAll(t, s.rig, 1, n)
	waitFor(t, func() bool { return s.ring.Len() == 0 })
	settle(t, s.p, Rules{}, 0)
	refused := counterValue(t, s.reg, "fileward_pipeline_append_refused_total")
	if refused == 0 || s.drops.Load(schema.LossSpoolFull) == 0 {
		t.Fatalf("refused %v batches, %d events counted: the disk never filled", refused, s.drops.Load(schema.LossSpoolFull))
	}
	if !strings.Contains(s.logs.String(), "no space left on device") {
		t.Errorf("the warning does not name the full disk:\n%s", s.logs.String())
	}
	// Space comes back: the next events and the loss report are stored.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	pushAll(t, s.rig, n+1, 10)
	seqs := s.drainAndAccount(t, stop, n+10, refused)
	if len(seqs) < 10 || seqs[len(seqs)-1] != n+10 {
		t.Errorf("the events after the space came back are not stored: last %v", seqs[max(0, len(seqs)-10):])
	}
}
