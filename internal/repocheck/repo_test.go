package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// relPathRe finds relative paths that climb: a run of path characters that
// contains "../" (or ends in "/.."). Absolute paths and paths that start with
// a variable (${DIR}/.., $HOME/..) are judged by escapes, which skips them.
var relPathRe = regexp.MustCompile(`[A-Za-z0-9_.~$/{}-]*\.\./[A-Za-z0-9_.~$/{}-]*`)

// outsideNames are places outside the repository that once leaked into it
// (the developers' reference set beside the checkout). They are written in
// pieces so that this file does not name them itself.
var outsideNames = []string{
	".." + "/shared",
	`"..", "` + `shared"`,
	"/work" + "/shared",
}

// escapes reports whether the relative path p, written in a file in directory
// dir (slash-separated, relative to the repository root), names something
// outside the repository. The file's own directory is taken as the base: it
// is the deepest base a relative path in that file can mean (a doc's link, a
// test's working directory), so a path that escapes from there escapes from
// any base.
func escapes(dir, p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "$") || strings.HasPrefix(p, "~") {
		return false
	}
	depth := 0
	if dir != "." && dir != "" {
		depth = len(strings.Split(dir, "/"))
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			if strings.Contains(seg, "$") || strings.Contains(seg, "{") {
				return false // a variable: cannot tell, and never the case we guard
			}
			depth++
		}
	}
	return false
}

func TestEscapes(t *testing.T) {
	cases := []struct {
		dir, p string
		want   bool
	}{
		{".", "../elsewhere/fixtures", true},
		{".", "../x", true},
		{"docs", "../deploy/macos/config.yaml", false},
		{"docs", "../../x", true},
		{"agent/capture/eslogger", "../../../testdata/fixtures/eslogger", false},
		{"agent/capture/eslogger", "../../../../elsewhere", true},
		{"deploy/compose", "../..", false},
		{"deploy/compose", "../../..", true},
		{"schema", "a/../../../x", true},
		{"schema", "a/../b", false},
		{".", "/proc/../etc", false},
		{".", "$(dirname)/../x", false},
	}
	for _, c := range cases {
		if got := escapes(c.dir, c.p); got != c.want {
			t.Errorf("escapes(%q, %q) = %v, want %v", c.dir, c.p, got, c.want)
		}
	}
}

// TestNoPathOutsideRepository fails when any file tracked in the repository
// names a path outside it: a relative path that climbs above the root from
// the file's directory, or one of the outside places that leaked in before.
// A clean clone with nothing beside it must be enough for every test, doc,
// config and help text.
func TestNoPathOutsideRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: cannot list the tracked files")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): cannot list the tracked files", err)
	}
	root := strings.TrimSpace(string(top))
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	self, err := filepath.Abs("repo_test.go")
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 50 {
		t.Fatalf("git ls-files listed only %d files", len(files))
	}
	checked := 0
	for _, f := range files {
		full := filepath.Join(root, filepath.FromSlash(f))
		if full == self {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(data, 0) >= 0 {
			continue // binary
		}
		checked++
		dir := path.Dir(f)
		for i, line := range strings.Split(string(data), "\n") {
			for _, name := range outsideNames {
				if strings.Contains(line, name) {
					t.Errorf("%s:%d names %q, outside the repository: %s", f, i+1, name, strings.TrimSpace(line))
				}
			}
			for _, p := range relPathRe.FindAllString(line, -1) {
				if escapes(dir, p) {
					t.Errorf("%s:%d: %q climbs above the repository root from %s/: %s", f, i+1, p, dir, strings.TrimSpace(line))
				}
			}
		}
	}
	t.Logf("checked %d tracked text files", checked)
}
