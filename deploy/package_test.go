package deploy

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
)

// TestVersionMapping: git describe output becomes a version deb and rpm
// accept (a leading digit) and that sorts in build order.
func TestVersionMapping(t *testing.T) {
	sh := testtool.Need(t, "sh", "dash")
	for describe, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"v1.2.3-rc.1":             "1.2.3~rc.1",
		"v1.2.3-4-gabc1234":       "1.2.3+4.gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+4.gabc1234.dirty",
		"v1.2.3-rc.1-4-gabc1234":  "1.2.3~rc.1+4.gabc1234",
		"v0.0.0-175-g229170d":     "0.0.0+175.g229170d",
	} {
		cmd := exec.Command(sh, "packaging/version.sh", describe)
		cmd.Env = append(os.Environ(), "PKG_VERSION=")
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("version.sh %s = %q (%v), want %q", describe, got, err, want)
		}
	}
	for _, bad := range []string{"1.2", "vfoo", "v1.2.3-rc/1"} {
		cmd := exec.Command(sh, "packaging/version.sh", bad)
		cmd.Env = append(os.Environ(), "PKG_VERSION=")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "version.sh:") {
			t.Errorf("version.sh %s: want a refusal, got %q (%v)", bad, out, err)
		}
	}
	// dpkg agrees on the order the mapping promises.
	if dpkg, err := exec.LookPath("dpkg"); err == nil {
		order := []string{"0.0.0+175.g229170d", "1.2.3~rc.1", "1.2.3~rc.1+4.gabc1234", "1.2.3", "1.2.3+4.gabc1234", "1.2.3+4.gabc1234.dirty", "1.2.4~rc.1"}
		for i := 0; i+1 < len(order); i++ {
			if err := exec.Command(dpkg, "--compare-versions", order[i], "lt", order[i+1]).Run(); err != nil {
				t.Errorf("dpkg: %s is not older than %s", order[i], order[i+1])
			}
		}
	}
}

// packageLayout is what the .deb and the .rpm install, apart from the unit,
// whose directory differs (debUnit, rpmUnit).
var packageLayout = []string{
	"/etc/fileward",
	"/etc/fileward/config.yaml",
	"/usr/bin/fileward",
	"/usr/share/doc/fileward/LICENSE",
	"/usr/share/doc/fileward/README.md",
	"/usr/share/doc/fileward/fileward.env.example",
	"/var/lib/fileward",
}

const (
	debUnit = "/lib/systemd/system/fileward.service"
	rpmUnit = "/usr/lib/systemd/system/fileward.service"
	wants   = "/etc/systemd/system/multi-user.target.wants/fileward.service"
)

// TestPackageInstall builds the amd64 .deb, .rpm and linux tarball with the
// script `make package` runs, checks SHA256SUMS and the .rpm's layout, then
// installs the .deb on this machine with dpkg -i, checks what it installed,
// upgrades, removes (the data stays) and purges (nothing stays).
func TestPackageInstall(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("only on linux/amd64: builds and installs the amd64 .deb")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs the .deb on this machine with dpkg -i (CI runs as root)")
	}
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("needs root on a dpkg-based system (Debian, Ubuntu): dpkg is not installed here")
	}
	rpm := testtool.Need(t, "rpm", "rpm")
	sa := testtool.Need(t, "systemd-analyze", "systemd")
	bash := testtool.Need(t, "bash", "bash")
	sha := testtool.Need(t, "sha256sum", "coreutils")
	dpkgDeb := testtool.Need(t, "dpkg-deb", "dpkg")

	// Never clobber a real installation.
	if err := exec.Command("dpkg-query", "-W", "fileward").Run(); err == nil {
		t.Fatal("a fileward package is already installed on this machine: this test would replace it; remove it first")
	}
	for _, p := range []string{"/usr/bin/fileward", "/etc/fileward", "/var/lib/fileward", "/var/log/fileward", debUnit} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on this machine: this test would install over it", p)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := t.TempDir()
	build := exec.CommandContext(ctx, bash, "packaging/package.sh")
	build.Env = append(os.Environ(), "OUT="+out, "ARCHS=amd64", "OSES=linux", "FORMATS=deb rpm tar", "PKG_VERSION=")
	start := time.Now()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("package.sh: %v\n%s", err, b)
	}
	t.Logf("package.sh (amd64 deb, rpm, tar.gz) took %v", time.Since(start).Round(time.Second))
	vb, err := exec.Command("sh", "packaging/version.sh").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(vb))

	deb := filepath.Join(out, "fileward_"+version+"_amd64.deb")
	rpmFile := filepath.Join(out, "fileward-"+version+"-1.x86_64.rpm")
	tarball := filepath.Join(out, "fileward_"+version+"_linux_amd64.tar.gz")

	t.Run("SHA256SUMS", func(t *testing.T) {
		c := exec.Command(sha, "-c", "--strict", "SHA256SUMS")
		c.Dir = out
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, b)
		}
		var listed []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			listed = append(listed, strings.TrimSuffix(l, ": OK"))
		}
		want := []string{filepath.Base(rpmFile), filepath.Base(deb), filepath.Base(tarball)}
		sort.Strings(want)
		if !slices.Equal(listed, want) {
			t.Errorf("SHA256SUMS lists %v, want %v", listed, want)
		}
	})

	t.Run("tarball", func(t *testing.T) {
		b, err := exec.Command("tar", "-tzf", tarball).Output()
		if err != nil {
			t.Fatal(err)
		}
		top := "fileward_" + version + "_linux_amd64/"
		got := strings.Fields(string(b))
		want := []string{top}
		for _, f := range []string{"LICENSE", "README.md", "config.yaml", "fileward", "fileward.env.example", "fileward.service"} {
			want = append(want, top+f)
		}
		if !slices.Equal(got, want) {
			t.Errorf("tarball holds %v, want %v", got, want)
		}
	})

	t.Run("rpm layout", func(t *testing.T) {
		b, err := exec.Command(rpm, "-qpl", rpmFile).Output()
		if err != nil {
			t.Fatalf("rpm -qpl: %v", err)
		}
		want := append(slices.Clone(packageLayout), rpmUnit)
		sort.Strings(want)
		if got := strings.Fields(string(b)); !slices.Equal(got, want) {
			t.Errorf("rpm -qpl lists\n%v\nwant\n%v", got, want)
		}
		// The config is %config(noreplace): flags c (config) and n (noreplace).
		b, err = exec.Command(rpm, "-qp", "--queryformat", "[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]", rpmFile).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"/etc/fileward/config.yaml cn -rw-r-----", "/var/lib/fileward  drwx------", "/usr/bin/fileward  -rwxr-xr-x"} {
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("rpm file flags and modes: no %q in\n%s", want, b)
			}
		}
		b, err = exec.Command(rpm, "-qp", "--queryformat", "%{VERSION}-%{RELEASE} %{LICENSE}", rpmFile).Output()
		if got := string(b); err != nil || got != version+"-1 Apache-2.0" {
			t.Errorf("rpm version and license: %q (%v), want %q", got, err, version+"-1 Apache-2.0")
		}
		b, _ = exec.Command(rpm, "-qp", "--scripts", rpmFile).Output()
		for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
			if !strings.Contains(string(b), s) {
				t.Errorf("rpm --scripts: no %s", s)
			}
		}
	})

	// The .deb lists the same layout with Debian's unit directory.
	b, err := exec.Command(dpkgDeb, "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	debFiles := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		p := strings.TrimSuffix(strings.TrimPrefix(f[len(f)-1], "."), "/")
		debFiles[p] = true
	}
	for _, p := range append(slices.Clone(packageLayout), debUnit) {
		if !debFiles[p] {
			t.Errorf("the .deb does not hold %s", p)
		}
	}
	if b, err := exec.Command(dpkgDeb, "-I", deb, "conffiles").Output(); err != nil || strings.TrimSpace(string(b)) != "/etc/fileward/config.yaml" {
		t.Errorf("deb conffiles: %q (%v), want /etc/fileward/config.yaml", b, err)
	}

	// Install. From here on, purge whatever happens.
	t.Cleanup(func() { dpkgRun(t, dpkg, "-P", "fileward") })
	msg := dpkgRun(t, dpkg, "-i", deb)
	if !strings.Contains(msg, "was not started") {
		t.Errorf("first install does not say the service was not started:\n%s", msg)
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil && !strings.Contains(msg, "systemd is not running here") {
		t.Errorf("without systemd the install does not say so:\n%s", msg)
	}
	if got, err := exec.Command("dpkg-query", "-W", "-f", "${Version} ${Status}", "fileward").Output(); err != nil || string(got) != version+" install ok installed" {
		t.Fatalf("dpkg-query: %q (%v), want %q", got, err, version+" install ok installed")
	}

	t.Run("binary on PATH answers with the package version", func(t *testing.T) {
		p, err := exec.LookPath("fileward")
		if err != nil || p != "/usr/bin/fileward" {
			t.Fatalf("fileward on PATH: %q (%v), want /usr/bin/fileward", p, err)
		}
		b, err := exec.Command(p, "version").CombinedOutput()
		if first, _, _ := strings.Cut(string(b), "\n"); err != nil || first != "fileward "+version {
			t.Errorf("fileward version: first line %q (%v), want %q", first, err, "fileward "+version)
		}
		// The same version is agent.version in every document.
		demo, err := os.Open("../agent/cmd/fileward/demo/eslogger-demo.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		defer demo.Close()
		c := exec.Command(p, "convert", "--from", "eslogger")
		c.Stdin = demo
		b, err = c.Output()
		if err != nil || !bytes.Contains(b, []byte(`"agent":{"type":"fileward","version":"`+version+`"`)) {
			t.Errorf("convert with the installed binary: %v; no agent.version %s in\n%.300s", err, version, b)
		}
	})

	t.Run("modes", func(t *testing.T) {
		for p, want := range map[string]fs.FileMode{
			"/var/lib/fileward":         fs.ModeDir | 0o700,
			"/etc/fileward":             fs.ModeDir | 0o750,
			"/etc/fileward/config.yaml": 0o640,
			"/usr/bin/fileward":         0o755,
			debUnit:                     0o644,
		} {
			st, err := os.Stat(p)
			if err != nil {
				t.Error(err)
				continue
			}
			if st.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, st.Mode(), want)
			}
		}
	})

	t.Run("unit", func(t *testing.T) {
		unit := string(readFile(t, debUnit))
		for _, want := range []string{"\nExecStart=/usr/bin/fileward run -c /etc/fileward/config.yaml\n", "\nExecStartPre=/usr/bin/fileward check-config -c /etc/fileward/config.yaml\n"} {
			if !strings.Contains(unit, want) {
				t.Errorf("installed unit has no %q", strings.TrimSpace(want))
			}
		}
		if strings.Contains(unit, "/usr/local/bin") {
			t.Error("installed unit still names /usr/local/bin")
		}
		b, err := exec.Command(sa, "verify", debUnit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(b)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", debUnit, err, b)
		}
		// Enabled on install (systemctl enable works without a running systemd).
		if target, err := os.Readlink(wants); err != nil || target != debUnit {
			t.Errorf("%s: %q (%v), want a link to %s: the unit is not enabled", wants, target, err, debUnit)
		}
	})

	t.Run("check-config accepts the installed config", func(t *testing.T) {
		b, err := exec.Command("/usr/bin/fileward", "check-config", "-c", "/etc/fileward/config.yaml").CombinedOutput()
		if err != nil || strings.TrimSpace(string(b)) != "ok" {
			t.Errorf("check-config: %v\n%s", err, b)
		}
	})

	// Data the agent would have written, and an admin's edit of the config.
	spoolFile := "/var/lib/fileward/spool/00000000000000000001.seg"
	if err := os.MkdirAll(filepath.Dir(spoolFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spoolFile, []byte("spooled"), 0o600); err != nil {
		t.Fatal(err)
	}
	edited := append(readFile(t, "/etc/fileward/config.yaml"), []byte("# edited by the admin\n")...)
	if err := os.WriteFile("/etc/fileward/config.yaml", edited, 0o640); err != nil {
		t.Fatal(err)
	}

	t.Run("upgrade keeps data and config", func(t *testing.T) {
		msg := dpkgRun(t, dpkg, "-i", deb) // the same version again: dpkg runs the upgrade path
		if strings.Contains(msg, "was not started") {
			t.Errorf("an upgrade took the first-install path:\n%s", msg)
		}
		if _, err := os.Stat("/run/systemd/system"); err != nil && !strings.Contains(msg, "restart fileward yourself") {
			t.Errorf("an upgrade without systemd does not say to restart:\n%s", msg)
		}
		if b, err := os.ReadFile(spoolFile); err != nil || string(b) != "spooled" {
			t.Errorf("spool after upgrade: %q (%v)", b, err)
		}
		if b := readFile(t, "/etc/fileward/config.yaml"); !bytes.Equal(b, edited) {
			t.Error("the upgrade replaced the admin's config")
		}
	})

	t.Run("remove keeps the data", func(t *testing.T) {
		dpkgRun(t, dpkg, "-r", "fileward")
		if b, err := os.ReadFile(spoolFile); err != nil || string(b) != "spooled" {
			t.Errorf("spool after remove: %q (%v)", b, err)
		}
		for _, p := range []string{"/usr/bin/fileward", debUnit, wants} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is still there after remove (%v)", p, err)
			}
		}
		// A reinstall after remove is a first install again: enabled again.
		msg := dpkgRun(t, dpkg, "-i", deb)
		if !strings.Contains(msg, "was not started") {
			t.Errorf("a reinstall after remove did not take the first-install path:\n%s", msg)
		}
		if _, err := os.Lstat(wants); err != nil {
			t.Errorf("not enabled after a reinstall: %v", err)
		}
	})

	t.Run("purge leaves nothing", func(t *testing.T) {
		dpkgRun(t, dpkg, "-P", "fileward")
		for _, p := range append(slices.Clone(packageLayout), debUnit, wants, "/var/log/fileward", "/usr/share/doc/fileward") {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is still there after purge (%v)", p, err)
			}
		}
		if b, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "fileward").CombinedOutput(); err == nil {
			t.Errorf("dpkg still knows the package after purge: %s", b)
		}
	})
}

// dpkgRun runs dpkg, retrying while another dpkg or apt holds its lock, and
// returns its output. It fails the test when dpkg fails.
func dpkgRun(t *testing.T, dpkg string, args ...string) string {
	t.Helper()
	var b []byte
	var err error
	for range 30 {
		c := exec.Command(dpkg, args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		b, err = c.CombinedOutput()
		if err == nil || !bytes.Contains(b, []byte("lock")) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if err != nil {
		t.Errorf("dpkg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}
