package macos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fileward/fileward/internal/testtool"
)

// TestPkgScriptsSyntax: bash -n on every macOS install script. (pkgbuild,
// productbuild, productsign, notarytool and launchctl exist only on a Mac:
// none of these scripts has run against the real tools here.)
func TestPkgScriptsSyntax(t *testing.T) {
	bash := testtool.Need(t, "bash", "bash")
	for _, f := range []string{"build-pkg.sh", "uninstall.sh", "pkg-scripts/postinstall"} {
		if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
		if st, err := os.Stat(f); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (%v)", f, err)
		}
	}
}

// stubs are stand-ins for the macOS tools build-pkg.sh calls. Each appends its
// arguments to $STUB_LOG; pkgbuild also lists the payload it was given.
var stubs = map[string]string{
	"uname":        `echo Darwin`,
	"pkgbuild":     `echo "pkgbuild $*" >>"$STUB_LOG"; while [ $# -gt 0 ]; do case $1 in --root) (cd "$2" && find . -mindepth 1 | sort | while read -r p; do printf '%s %s\n' "$(stat -c %a "$p")" "${p#.}"; done) >"$STUB_PAYLOAD"; shift 2;; --scripts) ls "$2" >"$STUB_SCRIPTS"; shift 2;; *) last=$1; shift;; esac; done; : >"$last"`,
	"productbuild": `echo "productbuild $*" >>"$STUB_LOG"; for last; do :; done; : >"$last"`,
	"productsign":  `echo "productsign $*" >>"$STUB_LOG"; for last; do :; done; : >"$last"`,
	"codesign":     `echo "codesign $*" >>"$STUB_LOG"; case "$*" in *-dr*) echo 'designated => identifier "com.fileward.agent" and anchor apple generic and certificate leaf[subject.OU] = "TEAMID1234"' >&2;; esac`,
	"pkgutil":      `echo "pkgutil $*" >>"$STUB_LOG"`,
	"xcrun":        `echo "xcrun $*" >>"$STUB_LOG"`,
}

// TestBuildPkgFromArchive lays out the darwin release archive with
// deploy/packaging/package.sh, extracts it, and runs the archive's
// build-pkg.sh there with stand-ins for the Apple tools. It checks the
// package's payload, that every path the plist, the postinstall script and
// the uninstaller use agrees with it, and the filled-in PPPC profile. The
// stand-ins only record their arguments: this proves the script's logic and
// paths, not that Apple's tools accept them.
func TestBuildPkgFromArchive(t *testing.T) {
	bash := testtool.Need(t, "bash", "bash")
	testtool.Need(t, "tar", "tar")
	dir := t.TempDir()

	// A stand-in fileward that answers `fileward version`.
	fake := filepath.Join(dir, "fake-fileward")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'fileward 1.2.3+4.gabc1234'\n"), 0o755)
	out := filepath.Join(dir, "dist")
	pk := exec.Command(bash, "../packaging/package.sh")
	pk.Env = append(os.Environ(), "OUT="+out, "OSES=darwin", "ARCHS=arm64", "FORMATS=tar", "FILEWARD_PREBUILT="+fake, "PKG_VERSION=1.2.3+4.gabc1234")
	if b, err := pk.CombinedOutput(); err != nil {
		t.Fatalf("package.sh: %v\n%s", err, b)
	}
	name := "fileward_1.2.3+4.gabc1234_darwin_arm64"
	if b, err := exec.Command("tar", "-C", dir, "-xzf", filepath.Join(out, name+".tar.gz")).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	ar := filepath.Join(dir, name)
	var got []string
	filepath.Walk(ar, func(p string, _ os.FileInfo, _ error) error {
		if rel, _ := filepath.Rel(ar, p); rel != "." {
			got = append(got, rel)
		}
		return nil
	})
	want := []string{"LICENSE", "README.md", "build-pkg.sh", "com.fileward.agent.plist", "config.yaml", "fileward",
		"fileward-pppc.mobileconfig", "pkg-scripts", "pkg-scripts/postinstall", "uninstall.sh"}
	if !slices.Equal(got, want) {
		t.Errorf("darwin archive holds %v, want %v", got, want)
	}

	stubDir := filepath.Join(dir, "stubs")
	os.Mkdir(stubDir, 0o755)
	for n, body := range stubs {
		os.WriteFile(filepath.Join(stubDir, n), []byte("#!/bin/sh\n"+body+"\n"), 0o755)
	}
	log, payload, scripts := filepath.Join(dir, "log"), filepath.Join(dir, "payload"), filepath.Join(dir, "scripts")
	build := exec.Command(bash, "./build-pkg.sh",
		"--app-identity", "Developer ID Application: Example (TEAMID1234)",
		"--installer-identity", "Developer ID Installer: Example (TEAMID1234)",
		"--notary-profile", "fileward-notary", "--out", filepath.Join(dir, "pkg-out"))
	build.Dir = ar
	build.Env = append(os.Environ(), "PATH="+stubDir+":"+os.Getenv("PATH"), "STUB_LOG="+log, "STUB_PAYLOAD="+payload, "STUB_SCRIPTS="+scripts)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-pkg.sh: %v\n%s", err, b)
	}

	pl := strings.Split(strings.TrimSpace(string(readOrFail(t, payload))), "\n")
	wantPayload := []string{
		"755 /Library", "755 /Library/LaunchDaemons", "644 /Library/LaunchDaemons/com.fileward.agent.plist",
		"755 /usr", "755 /usr/local", "755 /usr/local/bin", "755 /usr/local/bin/fileward",
		"755 /usr/local/share", "755 /usr/local/share/fileward", "644 /usr/local/share/fileward/LICENSE",
		"644 /usr/local/share/fileward/config.yaml", "755 /usr/local/share/fileward/uninstall.sh",
	}
	if !slices.Equal(pl, wantPayload) {
		t.Errorf("pkg payload\n%v\nwant\n%v", pl, wantPayload)
	}
	if s := strings.TrimSpace(string(readOrFail(t, scripts))); s != "postinstall" {
		t.Errorf("pkg scripts: %q, want postinstall", s)
	}
	calls := string(readOrFail(t, log))
	for _, want := range []string{
		"codesign --force --options runtime --timestamp --identifier com.fileward.agent --sign Developer ID Application: Example (TEAMID1234)",
		"pkgbuild --root", "--identifier com.fileward.agent --version 1.2.3+4.gabc1234",
		"productsign --timestamp --sign Developer ID Installer: Example (TEAMID1234)",
		"xcrun notarytool submit", "--keychain-profile fileward-notary --wait", "xcrun stapler staple",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("build-pkg.sh did not run %q; it ran:\n%s", want, calls)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pkg-out", "fileward-1.2.3+4.gabc1234.pkg")); err != nil {
		t.Error(err)
	}
	// The profile comes out with the requirement in place, still a valid plist.
	prof := filepath.Join(dir, "pkg-out", "fileward-pppc.mobileconfig")
	p := parsePlist(t, prof)
	svc := p["PayloadContent"].([]any)[0].(map[string]any)["Services"].(map[string]any)
	entry := svc["SystemPolicyAllFiles"].([]any)[0].(map[string]any)
	if cr := entry["CodeRequirement"]; cr != `identifier "com.fileward.agent" and anchor apple generic and certificate leaf[subject.OU] = "TEAMID1234"` {
		t.Errorf("filled-in CodeRequirement %q", cr)
	}

	// The launchd job, the postinstall script and the uninstaller agree with
	// the payload and with each other.
	plist := parsePlist(t, "com.fileward.agent.plist")
	args := plist["ProgramArguments"].([]any)
	inPayload := func(p string) bool {
		return slices.ContainsFunc(pl, func(l string) bool { return strings.HasSuffix(l, " "+p) })
	}
	if !inPayload(args[0].(string)) {
		t.Errorf("the plist runs %s, which the package does not install", args[0])
	}
	post := string(readOrFail(t, "pkg-scripts/postinstall"))
	uninst := string(readOrFail(t, "uninstall.sh"))
	for _, p := range []string{args[3].(string), plist["WorkingDirectory"].(string), filepath.Dir(plist["StandardErrorPath"].(string))} {
		if !strings.Contains(post, filepath.Dir(p)) && !strings.Contains(post, p) {
			t.Errorf("postinstall does not create %s, which the plist uses", p)
		}
	}
	if !strings.Contains(post, "install -d -m 0700 -o root -g wheel "+plist["WorkingDirectory"].(string)) {
		t.Errorf("postinstall does not create the data directory %s as 0700", plist["WorkingDirectory"])
	}
	if !strings.Contains(post, `/usr/local/share/fileward/config.yaml "$conf"`) || !strings.Contains(post, "conf="+args[3].(string)) {
		t.Error("postinstall does not install the packaged example config as the config the plist names")
	}
	label := plist["Label"].(string)
	for _, s := range []string{post, uninst} {
		if !strings.Contains(s, "label="+label) || !strings.Contains(s, `launchctl bootout "system/$label"`) {
			t.Errorf("a script does not boot out system/%s", label)
		}
	}
	if !strings.Contains(post, `launchctl bootstrap system "$plist"`) {
		t.Error("postinstall does not bootstrap the LaunchDaemon")
	}
	for _, l := range pl {
		p := strings.Fields(l)[1]
		if strings.Count(p, "/") < 3 || strings.HasPrefix(p, "/usr/local/share/fileward/") {
			continue // directories, and what rm -rf /usr/local/share/fileward removes
		}
		if !strings.Contains(uninst, p) {
			t.Errorf("uninstall.sh leaves %s behind", p)
		}
	}
	for _, p := range []string{"/usr/local/share/fileward", plist["WorkingDirectory"].(string), "/usr/local/etc/fileward", "/var/log/fileward"} {
		if !strings.Contains(uninst, p) {
			t.Errorf("uninstall.sh never removes %s", p)
		}
	}
	cfg := string(readOrFail(t, "config.yaml"))
	if !strings.Contains(cfg, fmt.Sprintf("data_dir: %s ", plist["WorkingDirectory"])) {
		t.Errorf("config.yaml's data_dir is not the plist's WorkingDirectory %s", plist["WorkingDirectory"])
	}
}

func readOrFail(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
