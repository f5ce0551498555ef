package macos

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/fileward/fileward/agent/config"
)

// plistValue is a decoded property-list value: string, int64, bool,
// []any or map[string]any.
type plistValue = any

// parsePlist decodes an XML property list strictly enough to catch broken
// files: well-formed XML, a <plist> root, <dict> keys followed by values.
func parsePlist(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var root plistValue
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				t.Fatalf("%s: root element %q, want plist", name, se.Name.Local)
			}
			root, err = plistChild(d)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	m, ok := root.(map[string]any)
	if !ok {
		t.Fatalf("%s: top-level value is %T, want a dict", name, root)
	}
	return m
}

// plistChild reads the next element inside the current one.
func plistChild(d *xml.Decoder) (plistValue, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return plistElem(d, t)
		case xml.EndElement:
			return nil, nil
		}
	}
}

func plistElem(d *xml.Decoder, se xml.StartElement) (plistValue, error) {
	switch se.Name.Local {
	case "string", "integer", "date", "data", "real":
		var s string
		if err := d.DecodeElement(&s, &se); err != nil {
			return nil, err
		}
		if se.Name.Local == "integer" {
			var n int64
			if _, err := fmt.Sscan(s, &n); err != nil {
				return nil, fmt.Errorf("bad integer %q", s)
			}
			return n, nil
		}
		return s, nil
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return se.Name.Local == "true", nil
	case "array":
		var a []any
		for {
			v, err := plistChild(d)
			if err != nil {
				return nil, err
			}
			if v == nil {
				return a, nil
			}
			a = append(a, v)
		}
	case "dict":
		m := map[string]any{}
		for {
			k, err := plistChild(d)
			if err != nil {
				return nil, err
			}
			if k == nil {
				return m, nil
			}
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key is %T", k)
			}
			v, err := plistChild(d)
			if err != nil {
				return nil, err
			}
			if v == nil {
				return nil, fmt.Errorf("dict key %q has no value", key)
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
			m[key] = v
		}
	case "key":
		var s string
		err := d.DecodeElement(&s, &se)
		return s, err
	}
	return nil, fmt.Errorf("unknown plist element <%s>", se.Name.Local)
}

func TestLaunchdPlist(t *testing.T) {
	p := parsePlist(t, "com.fileward.agent.plist")
	if p["Label"] != "com.fileward.agent" {
		t.Errorf("Label %v", p["Label"])
	}
	args, _ := p["ProgramArguments"].([]any)
	want := []string{"/usr/local/bin/fileward", "run", "-c", "/usr/local/etc/fileward/config.yaml"}
	if fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("ProgramArguments %v, want %v", args, want)
	}
	if p["RunAtLoad"] != true || p["KeepAlive"] != true {
		t.Errorf("RunAtLoad %v KeepAlive %v", p["RunAtLoad"], p["KeepAlive"])
	}
	if n, _ := p["ThrottleInterval"].(int64); n < 5 {
		t.Errorf("ThrottleInterval %v", p["ThrottleInterval"])
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if s, _ := p[k].(string); !strings.HasPrefix(s, "/var/log/fileward/") {
			t.Errorf("%s %q", k, s)
		}
	}
	// The agent drains on SIGTERM within agent.shutdown_timeout; launchd must wait longer.
	cfg := loadConfig(t)
	if n, _ := p["ExitTimeOut"].(int64); n <= int64(cfg.Agent.ShutdownTimeout.D().Seconds()) {
		t.Errorf("ExitTimeOut %v not above shutdown_timeout %v", p["ExitTimeOut"], cfg.Agent.ShutdownTimeout)
	}
	if p["WorkingDirectory"] != cfg.Agent.DataDir {
		t.Errorf("WorkingDirectory %v, data_dir %v", p["WorkingDirectory"], cfg.Agent.DataDir)
	}
}

func TestPPPCProfile(t *testing.T) {
	p := parsePlist(t, "fileward-pppc.mobileconfig")
	if p["PayloadType"] != "Configuration" || p["PayloadScope"] != "System" {
		t.Errorf("top: %v %v", p["PayloadType"], p["PayloadScope"])
	}
	uuidRE := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`)
	content, _ := p["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent %v", content)
	}
	pl := content[0].(map[string]any)
	if pl["PayloadType"] != "com.apple.TCC.configuration-profile-policy" {
		t.Errorf("payload type %v", pl["PayloadType"])
	}
	for _, u := range []any{p["PayloadUUID"], pl["PayloadUUID"]} {
		if s, _ := u.(string); !uuidRE.MatchString(s) {
			t.Errorf("bad PayloadUUID %v", u)
		}
	}
	if p["PayloadUUID"] == pl["PayloadUUID"] || p["PayloadIdentifier"] == pl["PayloadIdentifier"] {
		t.Error("profile and payload share a UUID or identifier")
	}
	svc, _ := pl["Services"].(map[string]any)
	all, _ := svc["SystemPolicyAllFiles"].([]any)
	if len(all) != 1 {
		t.Fatalf("SystemPolicyAllFiles %v", svc)
	}
	e := all[0].(map[string]any)
	if e["Identifier"] != "/usr/local/bin/fileward" || e["IdentifierType"] != "path" || e["Authorization"] != "Allow" {
		t.Errorf("entry %v", e)
	}
	if cr, _ := e["CodeRequirement"].(string); cr == "" {
		t.Error("CodeRequirement is missing")
	}
	// The placeholder must come with the instruction to replace it.
	raw, _ := os.ReadFile("fileward-pppc.mobileconfig")
	if !bytes.Contains(raw, []byte("codesign -dr - /usr/local/bin/fileward")) || !bytes.Contains(raw, []byte("REPLACE_WITH_CODE_REQUIREMENT")) {
		t.Error("profile lacks the CodeRequirement placeholder and its codesign instruction")
	}
}

func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("config.yaml")
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

func TestMacOSConfig(t *testing.T) {
	cfg := loadConfig(t)
	if cfg.Source.Type != "eslogger" || cfg.Source.Eslogger.Path != "/usr/bin/eslogger" {
		t.Errorf("source %+v", cfg.Source)
	}
	for _, e := range cfg.Source.Events {
		if e == "access" || e == "write" {
			t.Errorf("source.events has %q, which macOS cannot report or which floods", e)
		}
	}
	if !strings.HasPrefix(cfg.Agent.DataDir, "/") {
		t.Errorf("data_dir %q must be absolute under launchd", cfg.Agent.DataDir)
	}
	muted := false
	for _, p := range cfg.Filters.ExcludePaths {
		if strings.HasPrefix(cfg.Agent.DataDir+"/", p) {
			muted = true
		}
	}
	if !muted {
		t.Errorf("data_dir %s is not in filters.exclude_paths", cfg.Agent.DataDir)
	}
}
