package pipeline

import (
	"slices"
	"testing"

	"github.com/fileward/fileward/schema"
)

// TestFiltersApplyInThePipeline runs every filter rule through Run, not
// through filter.keep: an event pushed into the ring reaches the output
// exactly when its rule keeps it. Switching off either filter check in
// handle (the path check or the process check) fails this test.
func TestFiltersApplyInThePipeline(t *testing.T) {
	rules := Rules{
		ExcludePaths:       []string{"/proc/", "/etc/hosts"},
		ExcludeExecutables: []string{"/usr/bin/noisy", "/opt/scanner/"},
		ExcludeSigningIDs:  []string{"com.apple.mds"},
		MutePIDs:           []int32{42},
		MutePaths:          []string{"/var/lib/fileward"},
	}
	cases := []struct {
		path, exe, signing string
		pid                int32
		keep               bool
	}{
		{path: "/etc/passwd", keep: true},
		{path: "/proc/1/stat"},
		{path: "/procfoo", keep: true},
		{path: "/etc/hosts"},
		{path: "/etc/hosts.allow", keep: true},
		{path: "/a/noisy", exe: "/usr/bin/noisy"},
		{path: "/a/scanner", exe: "/opt/scanner/bin/x"},
		{path: "/a/mds", signing: "com.apple.mds"},
		{path: "/a/own-pid", pid: 42},
		{path: "/var/lib/fileward/spool/00001.seg"},
		{path: "/var/lib/fileward"},
		{path: "/var/lib/fileward2/x", keep: true},
	}
	r := newRig(t, func(o *Options) { o.Rules = rules })
	var want []string
	r.run(t, func() {
		for i, c := range cases {
			ev := fileEvent(uint64(i+1), 1000, schema.ActionOpen, c.path)
			if c.exe != "" {
				ev.Process.Executable = c.exe
			}
			if c.pid != 0 {
				ev.Process.PID = c.pid
			}
			ev.Process.SigningID = c.signing
			if !r.ring.TryPush(&ev) {
				t.Fatal("ring full")
			}
			if c.keep {
				want = append(want, c.path)
			}
		}
		waitFor(t, func() bool { return r.ring.Len() == 0 })
	})
	var got []string
	for _, d := range r.out.docs(t) {
		if p, ok := field(d, "file", "path").(string); ok {
			got = append(got, p)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("paths that reached the output:\n got %q\nwant %q", got, want)
	}

	// include_paths, through Run as well.
	inc := newRig(t, func(o *Options) { o.Rules = Rules{IncludePaths: []string{"/home/"}} })
	inc.run(t, func() {
		for i, p := range []string{"/home/a/b", "/etc/a"} {
			ev := fileEvent(uint64(i+1), 1000, schema.ActionOpen, p)
			inc.ring.TryPush(&ev)
		}
		waitFor(t, func() bool { return inc.ring.Len() == 0 })
	})
	got = nil
	for _, d := range inc.out.docs(t) {
		got = append(got, field(d, "file", "path").(string))
	}
	if !slices.Equal(got, []string{"/home/a/b"}) {
		t.Errorf("with include_paths [/home/], the output holds %q, want only /home/a/b", got)
	}
}
