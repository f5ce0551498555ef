package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fileward/fileward/agent/config"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema/template"
)

// ownedDirs are the deploy/ directories this test guards. deploy/macos and
// deploy/compose belong to their own tests.
var ownedDirs = []string{"systemd", "kubernetes", "dashboards"}

// contractMetrics are the metric names the README promises as stable (Metrics).
var contractMetrics = []string{
	"fileward_events_captured_total",
	"fileward_events_dropped_total",
	"fileward_events_spooled_total",
	"fileward_spool_bytes",
	"fileward_sink_events_acked_total",
	"fileward_sink_errors_total",
	"fileward_sink_lag_events",
	"fileward_ring_depth",
	// Added beside that list (also in the README's Metrics section): the spool's bound,
	// so the spool alert is a ratio.
	"fileward_spool_max_bytes",
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ownedFiles lists the files under the owned directories whose name ends in
// one of exts.
func ownedFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	for _, d := range ownedDirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %v files under %v", exts, ownedDirs)
	}
	return out
}

// yamlDocs decodes every document of a (multi-document) YAML file.
func yamlDocs(data []byte) ([]yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, n)
	}
}

func TestEveryYAMLFileParses(t *testing.T) {
	for _, f := range ownedFiles(t, ".yaml", ".yml") {
		docs, err := yamlDocs(readFile(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for i, d := range docs {
			if len(d.Content) == 0 || d.Content[0].Kind != yaml.MappingNode {
				t.Errorf("%s: document %d is not a mapping", f, i+1)
			}
		}
	}
}

func TestEveryJSONFileParses(t *testing.T) {
	for _, f := range ownedFiles(t, ".json", ".ndjson") {
		data := readFile(t, f)
		if filepath.Ext(f) == ".json" {
			if !json.Valid(data) {
				t.Errorf("%s: invalid JSON", f)
			}
			continue
		}
		for i, line := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
			var obj map[string]any
			if err := json.Unmarshal(line, &obj); err != nil {
				t.Errorf("%s:%d: not one JSON object per line: %v", f, i+1, err)
			}
		}
	}
}

// ---- agent configs ----

// parseConfig loads data through the real loader with only env set.
func parseConfig(t *testing.T, name string, data []byte, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(name, data, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("config %s does not load:\n%v", name, err)
	}
	return cfg
}

var envRefRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// commentRe matches a YAML comment: "#" at the start of a line or after a blank.
var commentRe = regexp.MustCompile(`(?m)(^|\s)#.*$`)

// envRefs returns the variables a config refers to outside comments, and
// those without a default.
func envRefs(data []byte) (all, required []string) {
	for _, m := range envRefRe.FindAllSubmatch(commentRe.ReplaceAll(data, nil), -1) {
		name := string(m[1])
		if !slices.Contains(all, name) {
			all = append(all, name)
		}
		if len(m[2]) == 0 && !slices.Contains(required, name) {
			required = append(required, name)
		}
	}
	return all, required
}

func listenPort(t *testing.T, listen string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("metrics.listen %q: %v", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("metrics.listen %q: %v", listen, err)
	}
	return host, p
}

func TestSystemdConfig(t *testing.T) {
	const name = "systemd/config.yaml"
	data := readFile(t, name)
	cfg := parseConfig(t, name, data, nil) // every variable has a default

	if cfg.Agent.DataDir != "/var/lib/fileward" {
		t.Errorf("agent.data_dir = %q, want /var/lib/fileward (StateDirectory=fileward)", cfg.Agent.DataDir)
	}
	// The unit's mount namespacing makes "mount" marks blind (README).
	if cfg.Source.Type != "fanotify" || cfg.Source.Fanotify.MarkType != "filesystem" || !slices.Equal(cfg.Source.Fanotify.Marks, []string{"/"}) {
		t.Errorf("source = %+v, want a fanotify filesystem mark on /", cfg.Source)
	}
	for _, p := range []string{"/proc/", "/sys/", "/dev/", "/run/", "/var/lib/fileward/"} {
		if !slices.Contains(cfg.Filters.ExcludePaths, p) {
			t.Errorf("filters.exclude_paths lacks %s", p)
		}
	}
	if cfg.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("metrics.listen = %q, want 127.0.0.1:9464", cfg.Metrics.Listen)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Type != "kafka" {
		t.Fatalf("sinks = %+v, want one kafka sink", cfg.Sinks)
	}

	// The env example must cover exactly the variables the config uses, and
	// its values must reach the config through the loader.
	env := parseEnvFile(t, "systemd/fileward.env.example")
	all, _ := envRefs(data)
	for _, v := range all {
		if _, ok := env[v]; !ok {
			t.Errorf("%s uses ${%s}, which fileward.env.example does not document", name, v)
		}
	}
	for k := range env {
		if !slices.Contains(all, k) {
			t.Errorf("fileward.env.example sets %s, which %s never uses", k, name)
		}
	}
	withEnv := parseConfig(t, name, data, env)
	k := withEnv.Sinks[0].Kafka
	if want := env["FILEWARD_KAFKA_BROKER"]; !slices.Equal(k.Brokers, []string{want}) {
		t.Errorf("brokers with the env example = %v, want [%s]", k.Brokers, want)
	}
	if k.SASL.Mechanism != env["FILEWARD_KAFKA_SASL_MECHANISM"] || k.SASL.Password.Value() != env["FILEWARD_KAFKA_PASSWORD"] {
		t.Errorf("sasl with the env example = %+v, not the example's values", k.SASL)
	}
	// TLS is on by default and an unquoted ${VAR} turns it off as a boolean.
	if !cfg.Sinks[0].Kafka.TLS.Enabled {
		t.Error("kafka TLS must default to on in the production config")
	}
	env["FILEWARD_KAFKA_TLS"] = "false"
	// SASL without TLS is refused (allow_insecure_credentials is not set).
	if _, err := config.Parse(name, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil ||
		!strings.Contains(err.Error(), "allow_insecure_credentials") {
		t.Errorf("SASL with FILEWARD_KAFKA_TLS=false: %v, want refused", err)
	}
	env["FILEWARD_KAFKA_SASL_MECHANISM"] = ""
	if parseConfig(t, name, data, env).Sinks[0].Kafka.TLS.Enabled {
		t.Error("FILEWARD_KAFKA_TLS=false did not turn TLS off")
	}
}

func parseEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Errorf("%s:%d: not KEY=value: %q", name, n, line)
			continue
		}
		env[k] = v
	}
	return env
}

// ---- systemd unit ----

// unitFile is a parsed systemd unit: section → directive → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: directive outside a section", name, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: not Key=Value: %q", name, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s is set %d times, want once", section, key, len(v))
	}
	return v[0]
}

func TestSystemdUnit(t *testing.T) {
	const name = "systemd/fileward.service"
	u := parseUnit(t, name)
	cfg := parseConfig(t, "systemd/config.yaml", readFile(t, "systemd/config.yaml"), nil)
	svc := "Service"

	const bin, conf = "/usr/local/bin/fileward", "/etc/fileward/config.yaml"
	if got, want := u.one(t, svc, "ExecStart"), bin+" run -c "+conf; got != want {
		t.Errorf("ExecStart = %q, want %q", got, want)
	}
	if got, want := u.one(t, svc, "ExecStartPre"), bin+" check-config -c "+conf; got != want {
		t.Errorf("ExecStartPre = %q, want %q", got, want)
	}
	for k, want := range map[string]string{
		"User": "root", "Restart": "on-failure", "KillSignal": "SIGTERM",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
		"PrivateTmp": "yes", "StateDirectory": "fileward", "RestartPreventExitStatus": "2",
	} {
		if got := u.one(t, svc, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// The state directory is data_dir, and it is writable.
	if dir := "/var/lib/" + u.one(t, svc, "StateDirectory"); dir != cfg.Agent.DataDir {
		t.Errorf("StateDirectory gives %s, config data_dir is %s", dir, cfg.Agent.DataDir)
	}
	rw := strings.Fields(u.one(t, svc, "ReadWritePaths"))
	for _, p := range []string{cfg.Agent.DataDir, "/var/log/fileward"} {
		if !slices.Contains(rw, p) {
			t.Errorf("ReadWritePaths %v lacks %s", rw, p)
		}
	}
	// systemd must not SIGKILL a shutdown the agent is allowed to take.
	stop, err := time.ParseDuration(u.one(t, svc, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if min := cfg.Agent.ShutdownTimeout.D() + 10*time.Second; stop < min {
		t.Errorf("TimeoutStopSec %v is below shutdown_timeout %v plus 10s margin", stop, cfg.Agent.ShutdownTimeout)
	}
	caps := strings.Fields(u.one(t, svc, "CapabilityBoundingSet"))
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet %v lacks %s", caps, c)
		}
	}
	if slices.ContainsFunc(caps, func(c string) bool { return strings.HasPrefix(c, "~") }) {
		t.Errorf("CapabilityBoundingSet %v must be an allow-list", caps)
	}
	// Settings that would silently break capture or enrichment.
	for _, k := range []string{"ProtectProc", "ProcSubset", "PrivateUsers", "DynamicUser", "PrivateNetwork"} {
		if _, set := u[svc][k]; set {
			t.Errorf("%s is set: it breaks fanotify or /proc enrichment", k)
		}
	}
	if f := u.one(t, svc, "SystemCallFilter"); !strings.HasPrefix(f, "~") || strings.Contains(f, "@privileged") {
		t.Errorf("SystemCallFilter %q must be a deny-list that keeps @privileged (fanotify_init, open_by_handle_at)", f)
	}
	if n, err := strconv.Atoi(u.one(t, svc, "LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE = %v, want at least 65536", u[svc]["LimitNOFILE"])
	}
	for _, k := range []string{"MemoryMax", "CPUWeight", "Nice", "RestartSec"} {
		u.one(t, svc, k)
	}
	if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy = %q", got)
	}

	t.Run("systemd-analyze", func(t *testing.T) {
		sa := testtool.Need(t, "systemd-analyze", "systemd")
		// verify wants the binary to exist: point it at one that does.
		unit := strings.ReplaceAll(string(readFile(t, name)), bin, "/bin/true")
		p := filepath.Join(t.TempDir(), "fileward.service")
		if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", p).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// ---- Kubernetes ----

// The structs below mirror the parts of the Kubernetes API these manifests
// use. They are decoded with KnownFields, so a misspelt or misplaced field
// fails here instead of being dropped by the API server.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type typeMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
	HostPID                       bool              `yaml:"hostPID"`
	HostNetwork                   bool              `yaml:"hostNetwork"`
	TerminationGracePeriodSeconds *int64            `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []toleration      `yaml:"tolerations"`
	SecurityContext               *podSecurity      `yaml:"securityContext"`
	Containers                    []container       `yaml:"containers"`
	Volumes                       []volume          `yaml:"volumes"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	PriorityClassName             string            `yaml:"priorityClassName"`
}

type toleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
	Value    string `yaml:"value"`
	Effect   string `yaml:"effect"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type podSecurity struct {
	RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
	RunAsUser      *int64          `yaml:"runAsUser"`
	RunAsGroup     *int64          `yaml:"runAsGroup"`
	FSGroup        *int64          `yaml:"fsGroup"`
	SeccompProfile *seccompProfile `yaml:"seccompProfile"`
}

type containerSecurity struct {
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	Privileged               *bool  `yaml:"privileged"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile *seccompProfile `yaml:"seccompProfile"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []envVar `yaml:"env"`
	EnvFrom         []struct {
		SecretRef *struct {
			Name     string `yaml:"name"`
			Optional bool   `yaml:"optional"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	ReadinessProbe  *probe             `yaml:"readinessProbe"`
	LivenessProbe   *probe             `yaml:"livenessProbe"`
	Resources       resources          `yaml:"resources"`
	SecurityContext *containerSecurity `yaml:"securityContext"`
	VolumeMounts    []volumeMount      `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port string `yaml:"port"`
	} `yaml:"tcpSocket"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type resources struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

type volumeMount struct {
	Name             string `yaml:"name"`
	MountPath        string `yaml:"mountPath"`
	ReadOnly         bool   `yaml:"readOnly"`
	MountPropagation string `yaml:"mountPropagation"`
	SubPath          string `yaml:"subPath"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	HostPath *struct {
		Path string `yaml:"path"`
		Type string `yaml:"type"`
	} `yaml:"hostPath"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
}

type workload struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas       *int          `yaml:"replicas"`
		Selector       labelSelector `yaml:"selector"`
		UpdateStrategy *struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
		Strategy *struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type configMap struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta        `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type simpleObject struct {
	typeMeta                     `yaml:",inline"`
	Metadata                     objectMeta `yaml:"metadata"`
	AutomountServiceAccountToken *bool      `yaml:"automountServiceAccountToken"`
}

// manifests holds every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	workloads       map[string]*workload  // kind/name
	configMaps      map[string]*configMap // name
	serviceAccounts map[string]bool
	namespaces      map[string]bool
	files           []string
	scaling         map[string]*yaml.Node // kind/name: the collector's PodDisruptionBudget and ScaledObject
}

func strictDecode(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{workloads: map[string]*workload{}, configMaps: map[string]*configMap{}, serviceAccounts: map[string]bool{}, namespaces: map[string]bool{}, scaling: map[string]*yaml.Node{}}
	for _, f := range ownedFiles(t, ".yaml") {
		if !strings.HasPrefix(f, "kubernetes/") || f == "kubernetes/kustomization.yaml" ||
			strings.HasPrefix(f, "kubernetes/monitoring/") { // TestPodMonitors
			continue
		}
		m.files = append(m.files, path.Base(f))
		docs, err := yamlDocs(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range docs {
			var tm typeMeta
			if err := docs[i].Decode(&tm); err != nil {
				t.Fatalf("%s doc %d: %v", f, i+1, err)
			}
			where := fmt.Sprintf("%s doc %d (%s)", f, i+1, tm.Kind)
			var err error
			switch tm.Kind {
			case "PodDisruptionBudget", "ScaledObject": // TestKubernetesCollectorScaling
				o := &simpleObject{}
				if err = docs[i].Decode(o); err == nil {
					m.scaling[tm.Kind+"/"+o.Metadata.Name] = &docs[i]
				}
			case "DaemonSet", "Deployment":
				w := &workload{}
				if err = strictDecode(&docs[i], w); err == nil {
					m.workloads[tm.Kind+"/"+w.Metadata.Name] = w
				}
			case "ConfigMap":
				c := &configMap{}
				if err = strictDecode(&docs[i], c); err == nil {
					m.configMaps[c.Metadata.Name] = c
				}
			case "ServiceAccount", "Namespace":
				o := &simpleObject{}
				if err = strictDecode(&docs[i], o); err == nil {
					if tm.Kind == "Namespace" {
						m.namespaces[o.Metadata.Name] = true
					} else {
						m.serviceAccounts[o.Metadata.Name] = true
					}
				}
			default:
				t.Errorf("%s: kind this test does not know; add it to the test", where)
			}
			if err != nil {
				t.Errorf("%s: %v", where, err)
			}
			if want := map[string]string{"DaemonSet": "apps/v1", "Deployment": "apps/v1"}[tm.Kind]; want != "" && tm.APIVersion != want {
				t.Errorf("%s: apiVersion %q, want %q", where, tm.APIVersion, want)
			}
		}
	}
	return m
}

// podConfig finds the ConfigMap-backed agent config a pod mounts, checks that
// the container's -c flag names it, and loads it with the container's env.
func podConfig(t *testing.T, m *manifests, w *workload, c *container) (*config.Config, []byte) {
	t.Helper()
	args := append(slices.Clone(c.Command), c.Args...)
	i := slices.Index(args, "-c")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%s: container %s has no -c FILE in %v", w.Metadata.Name, c.Name, args)
	}
	cfgPath := args[i+1]
	var cm *configMap
	for _, vm := range c.VolumeMounts {
		if path.Dir(cfgPath) != vm.MountPath {
			continue
		}
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm = m.configMaps[v.ConfigMap.Name]
			}
		}
	}
	if cm == nil {
		t.Fatalf("%s: %s is not in a mounted ConfigMap of this file set", w.Metadata.Name, cfgPath)
	}
	data, ok := cm.Data[path.Base(cfgPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Metadata.Name, path.Base(cfgPath))
	}
	// Variables without a default must come from the container's env.
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = "value-of-" + strings.ToLower(e.Name)
	}
	_, required := envRefs([]byte(data))
	for _, v := range required {
		if _, ok := env[v]; !ok {
			t.Errorf("ConfigMap %s needs ${%s}, which container %s does not set", cm.Metadata.Name, v, c.Name)
		}
	}
	return parseConfig(t, "configmap "+cm.Metadata.Name, []byte(data), env), []byte(data)
}

func quantityMi(t *testing.T, q string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(q, "Mi"))
	if err != nil || !strings.HasSuffix(q, "Mi") {
		t.Fatalf("quantity %q: want a whole number of Mi", q)
	}
	return n
}

// checkPod holds what both workloads share: labels, probes, ports, mounts,
// service account, grace period.
func checkPod(t *testing.T, m *manifests, w *workload, cfg *config.Config) *container {
	t.Helper()
	name := w.Metadata.Name
	spec := &w.Spec.Template.Spec
	for k, v := range w.Spec.Selector.MatchLabels {
		if w.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template's labels", name, k, v)
		}
	}
	if len(w.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("%s: empty selector", name)
	}
	if w.Metadata.Namespace != "fileward" || !m.namespaces[w.Metadata.Namespace] {
		t.Errorf("%s: namespace %q is not the one namespace.yaml creates", name, w.Metadata.Namespace)
	}
	if !m.serviceAccounts[spec.ServiceAccountName] {
		t.Errorf("%s: serviceAccountName %q has no ServiceAccount", name, spec.ServiceAccountName)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < cfg.Agent.ShutdownTimeout.D()+10*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed shutdown_timeout %v by 10s", name, cfg.Agent.ShutdownTimeout)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", name, len(spec.Containers))
	}
	c := &spec.Containers[0]
	if c.Image != "fileward" {
		t.Errorf("%s: image %q, want the placeholder \"fileward\" that kustomization.yaml rewrites", name, c.Image)
	}
	// Every mount names a volume, and every volume is mounted.
	for _, vm := range c.VolumeMounts {
		if !slices.ContainsFunc(spec.Volumes, func(v volume) bool { return v.Name == vm.Name }) {
			t.Errorf("%s: volumeMount %s has no volume", name, vm.Name)
		}
	}
	for _, v := range spec.Volumes {
		if !slices.ContainsFunc(c.VolumeMounts, func(vm volumeMount) bool { return vm.Name == v.Name }) {
			t.Errorf("%s: volume %s is never mounted", name, v.Name)
		}
		if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("%s: volume %s uses ConfigMap %s, which is not defined", name, v.Name, v.ConfigMap.Name)
		}
	}
	// Probes and Prometheus reach metrics.listen on the pod IP.
	host, port := listenPort(t, cfg.Metrics.Listen)
	if host != "0.0.0.0" {
		t.Errorf("%s: metrics.listen %q must bind 0.0.0.0 for the kubelet's probes", name, cfg.Metrics.Listen)
	}
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("%s: no containerPort %d (metrics.listen)", name, port)
	}
	if a := w.Spec.Template.Metadata.Annotations["prometheus.io/port"]; a != strconv.Itoa(port) {
		t.Errorf("%s: prometheus.io/port %q, metrics.listen port is %d", name, a, port)
	}
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" || rp.HTTPGet.Port != portName {
		t.Errorf("%s: readinessProbe must GET /healthz on port %q", name, portName)
	}
	// /healthz answers 503 while a sink backs off; a liveness probe on it
	// would restart the agent for every Kafka outage.
	if lp == nil || lp.TCPSocket == nil || lp.TCPSocket.Port != portName || lp.HTTPGet != nil {
		t.Errorf("%s: livenessProbe must be a tcpSocket probe on port %q", name, portName)
	}
	// The data dir is a volume, so the root filesystem can stay read-only.
	if !slices.ContainsFunc(c.VolumeMounts, func(vm volumeMount) bool { return vm.MountPath == cfg.Agent.DataDir && !vm.ReadOnly }) {
		t.Errorf("%s: data_dir %s is not a writable volume mount", name, cfg.Agent.DataDir)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", name)
	}
	if sc != nil && (sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"})) {
		t.Errorf("%s: capabilities must drop ALL", name)
	}
	if lim, ok := c.Resources.Limits["memory"]; !ok {
		t.Errorf("%s: no memory limit", name)
	} else if gml := envValue(c, "GOMEMLIMIT"); gml == "" || quantityMi(t, strings.Replace(gml, "MiB", "Mi", 1)) >= quantityMi(t, lim) {
		t.Errorf("%s: GOMEMLIMIT %q must be set below the memory limit %s", name, gml, lim)
	}
	return c
}

func envValue(c *container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestKubernetesAgent(t *testing.T) {
	m := loadManifests(t)
	w := m.workloads["DaemonSet/fileward-agent"]
	if w == nil {
		t.Fatal("no DaemonSet fileward-agent")
	}
	spec := &w.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	cfg, _ := podConfig(t, m, w, &spec.Containers[0])
	c := checkPod(t, m, w, cfg)

	if !spec.HostPID {
		t.Error("hostPID must be true: fanotify reports host PIDs")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q, want system-node-critical: the agent is evicted last", spec.PriorityClassName)
	}
	if !slices.Equal(append(slices.Clone(c.Command), c.Args...), []string{"fileward", "run", "-c", "/etc/fileward/config.yaml"}) {
		t.Errorf("command+args = %v %v, want fileward run -c /etc/fileward/config.yaml", c.Command, c.Args)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl toleration) bool { return tl.Operator == "Exists" && tl.Key == "" && tl.Effect == "" }) {
		t.Error("tolerations must include {operator: Exists} to run on every node")
	}
	if lim := c.Resources.Limits["memory"]; lim != "256Mi" {
		t.Errorf("memory limit %q, want 256Mi", lim)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no capabilities")
	}
	// Exactly what fanotify and enrichment need (README, "Privileges").
	if add := slices.Sorted(slices.Values(sc.Capabilities.Add)); !slices.Equal(add, []string{"DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE"}) {
		t.Errorf("capabilities.add = %v, want exactly SYS_ADMIN, DAC_READ_SEARCH, SYS_PTRACE", add)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: true grants every capability and device; add the three capabilities instead")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("the agent must run as UID 0")
	}

	// The mark is on the host root, mounted with HostToContainer propagation.
	var hostRoot *volumeMount
	for i, vm := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.HostPath != nil && v.HostPath.Path == "/" {
				hostRoot = &c.VolumeMounts[i]
			}
		}
	}
	if hostRoot == nil {
		t.Fatal("the host's / is not mounted")
	}
	if !hostRoot.ReadOnly || hostRoot.MountPropagation != "HostToContainer" {
		t.Errorf("host root mount %+v: want readOnly and mountPropagation HostToContainer", *hostRoot)
	}
	if cfg.Source.Type != "fanotify" || cfg.Source.Fanotify.MarkType != "filesystem" || !slices.Equal(cfg.Source.Fanotify.Marks, []string{hostRoot.MountPath}) {
		t.Errorf("source %+v: want a fanotify filesystem mark on %s", cfg.Source, hostRoot.MountPath)
	}
	// Both path forms are excluded (see README, "Kubernetes: paths").
	for _, p := range []string{"/proc/", "/sys/", "/dev/", "/var/lib/fileward/"} {
		for _, form := range []string{p, hostRoot.MountPath + p} {
			if !slices.Contains(cfg.Filters.ExcludePaths, form) {
				t.Errorf("filters.exclude_paths lacks %s", form)
			}
		}
	}
	// Identity files come from the host, read-only.
	for _, f := range []string{"/etc/machine-id", "/etc/passwd", "/etc/group"} {
		ok := false
		for _, vm := range c.VolumeMounts {
			for _, v := range spec.Volumes {
				if vm.MountPath == f && v.Name == vm.Name && v.HostPath != nil && v.HostPath.Path == f && vm.ReadOnly {
					ok = true
				}
			}
		}
		if !ok {
			t.Errorf("%s must be the host's, mounted read-only from a hostPath", f)
		}
	}
	// The spool is on the node.
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != cfg.Agent.DataDir {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && (v.HostPath == nil || v.HostPath.Path != cfg.Agent.DataDir) {
				t.Errorf("data_dir %s must be the node's %s (hostPath), got volume %+v", cfg.Agent.DataDir, cfg.Agent.DataDir, v)
			}
		}
	}
	if cfg.Agent.Name != "value-of-node_name" {
		t.Errorf("agent.name = %q, want the node name from ${NODE_NAME}", cfg.Agent.Name)
	}
	if !slices.ContainsFunc(c.Env, func(e envVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Error("NODE_NAME must come from fieldRef spec.nodeName")
	}
}

func TestKubernetesCollector(t *testing.T) {
	m := loadManifests(t)
	w := m.workloads["Deployment/fileward-collector"]
	if w == nil {
		t.Fatal("no Deployment fileward-collector")
	}
	spec := &w.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	cfg, _ := podConfig(t, m, w, &spec.Containers[0])
	if err := cfg.ValidateCollector(); err != nil {
		t.Errorf("collector config:\n%v", err)
	}
	c := checkPod(t, m, w, cfg)
	// The image's entrypoint is "fileward collect": only the flags are given.
	if len(c.Command) != 0 || !slices.Equal(c.Args, []string{"-c", "/etc/fileward/config.yaml"}) {
		t.Errorf("command %v args %v: want no command and args [-c /etc/fileward/config.yaml]", c.Command, c.Args)
	}
	ps := spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Error("the collector must run as non-root (runAsNonRoot: true, runAsUser != 0)")
	}
	if spec.HostPID || spec.HostNetwork {
		t.Error("the collector needs no host namespaces")
	}
	if dl := cfg.Collector.DeadLetter; !strings.HasPrefix(dl, cfg.Agent.DataDir+"/") {
		t.Errorf("collector.dead_letter %s is outside the writable data_dir %s", dl, cfg.Agent.DataDir)
	}
	if !slices.ContainsFunc(c.Env, func(e envVar) bool {
		return e.Name == "ELASTICSEARCH_API_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}) {
		t.Error("ELASTICSEARCH_API_KEY must come from a Secret")
	}
	if cfg.Collector.Kafka.GroupID == "" || cfg.Collector.Elasticsearch.DataStream != "logs-fileward.file-default" {
		t.Errorf("collector kafka/elasticsearch = %+v / %+v", cfg.Collector.Kafka, cfg.Collector.Elasticsearch)
	}
}

func TestKustomization(t *testing.T) {
	m := loadManifests(t)
	var k struct {
		typeMeta  `yaml:",inline"`
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
		Labels []struct {
			Pairs map[string]string `yaml:"pairs"`
		} `yaml:"labels"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "kubernetes/kustomization.yaml")))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" || k.Namespace != "fileward" {
		t.Errorf("kind %q namespace %q", k.Kind, k.Namespace)
	}
	slices.Sort(k.Resources)
	files := slices.Sorted(slices.Values(m.files))
	if !slices.Equal(k.Resources, files) {
		t.Errorf("resources %v, want every manifest in deploy/kubernetes: %v", k.Resources, files)
	}
	if len(k.Images) != 1 || k.Images[0].Name != "fileward" || k.Images[0].NewName == "" || k.Images[0].NewTag == "" {
		t.Errorf("images %+v: want one entry rewriting \"fileward\"", k.Images)
	}

	t.Run("kubectl kustomize", func(t *testing.T) {
		kc := testtool.Need(t, "kubectl", "kubernetes-client")
		out, err := exec.Command(kc, "kustomize", "kubernetes").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
			}
			t.Fatal(err)
		}
		docs, err := yamlDocs(out)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("image: %s:%s", k.Images[0].NewName, k.Images[0].NewTag)
		if n := bytes.Count(out, []byte(want)); n != len(m.workloads) {
			t.Errorf("rendered output has %q %d times, want %d (one per workload)", want, n, len(m.workloads))
		}
		if len(docs) < len(m.workloads)+len(m.configMaps)+len(m.serviceAccounts)+len(m.namespaces) {
			t.Errorf("rendered %d objects, fewer than the manifests hold", len(docs))
		}
	})
}

// ---- dashboards ----

type savedObject struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Attributes json.RawMessage `json:"attributes"`
	References []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"references"`
	CoreMigrationVersion string `json:"coreMigrationVersion"`
	TypeMigrationVersion string `json:"typeMigrationVersion"`
	Managed              bool   `json:"managed"`
}

type lensColumn struct {
	Label         string `json:"label"`
	DataType      string `json:"dataType"`
	OperationType string `json:"operationType"`
	SourceField   string `json:"sourceField"`
	IsBucketed    bool   `json:"isBucketed"`
	Params        struct {
		OrderBy *struct {
			Type     string `json:"type"`
			ColumnID string `json:"columnId"`
		} `json:"orderBy"`
	} `json:"params"`
}

func loadSavedObjects(t *testing.T) []savedObject {
	t.Helper()
	const name = "dashboards/fileward-overview.ndjson"
	var objs []savedObject
	for i, line := range bytes.Split(bytes.TrimRight(readFile(t, name), "\n"), []byte("\n")) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var o savedObject
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("%s:%d: %v", name, i+1, err)
		}
		objs = append(objs, o)
	}
	return objs
}

func TestKibanaSavedObjects(t *testing.T) {
	objs := loadSavedObjects(t)
	mappings, err := template.Mappings()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]savedObject{}
	for _, o := range objs {
		if o.ID == "" || o.Type == "" || len(o.Attributes) == 0 {
			t.Errorf("object %+v lacks id, type or attributes", o)
		}
		if _, dup := byID[o.ID]; dup {
			t.Errorf("duplicate id %s", o.ID)
		}
		byID[o.ID] = o
		if o.CoreMigrationVersion == "" || o.TypeMigrationVersion == "" {
			t.Errorf("%s: set coreMigrationVersion and typeMigrationVersion so Kibana migrates from the right version", o.ID)
		}
	}
	// Every reference resolves inside the file, with the right type.
	for _, o := range objs {
		for _, r := range o.References {
			if target, ok := byID[r.ID]; !ok || target.Type != r.Type {
				t.Errorf("%s: reference %s (%s %s) does not resolve in the file", o.ID, r.Name, r.Type, r.ID)
			}
		}
	}

	count := map[string]int{}
	for _, o := range objs {
		count[o.Type]++
		switch o.Type {
		case "index-pattern":
			checkDataView(t, o)
		case "lens":
			checkLens(t, o, mappings)
		case "dashboard":
			checkDashboard(t, o, byID)
		default:
			t.Errorf("%s: unexpected type %s", o.ID, o.Type)
		}
	}
	if count["index-pattern"] != 1 || count["dashboard"] != 1 || count["lens"] < 5 {
		t.Errorf("object counts %v: want one data view, one dashboard, at least five Lens visualizations", count)
	}

	// The panels the deployment promises exist, by what they show.
	want := map[string]bool{
		"date_histogram/terms:event.action/count":                           false,
		"terms:process.executable/count":                                    false,
		"terms:file.path/count":                                             false,
		"date_histogram/terms:fileward.lost.reason/sum:fileward.lost.count": false,
		"date_histogram/terms:host.name/count":                              false,
		"terms:host.name/max:fileward.lost.total.ring_full/max:fileward.lost.total.kernel_overflow/max:fileward.lost.total.seq_gap/max:fileward.lost.total.source_restart/max:fileward.lost.total.spool_full/max:fileward.lost.total.rejected/max:fileward.lost.total.malformed/max:fileward.lost.total.corrupt": false,
	}
	for _, o := range objs {
		if o.Type == "lens" {
			sig := lensSignature(t, o)
			if _, ok := want[sig]; ok {
				want[sig] = true
			}
		}
	}
	for sig, found := range want {
		if !found {
			t.Errorf("no Lens visualization shows %s", sig)
		}
	}
}

func checkDataView(t *testing.T, o savedObject) {
	t.Helper()
	var a struct {
		Title         string `json:"title"`
		TimeFieldName string `json:"timeFieldName"`
		Fields        string `json:"fields"`
	}
	if err := json.Unmarshal(o.Attributes, &a); err != nil {
		t.Fatalf("%s: %v", o.ID, err)
	}
	if a.Title != "logs-fileward.*" || a.TimeFieldName != "@timestamp" {
		t.Errorf("data view %s: title %q time field %q", o.ID, a.Title, a.TimeFieldName)
	}
	// The pattern must match the data stream the sinks write.
	ds := config.DefaultElasticsearch().DataStream
	if ok, _ := path.Match(a.Title, ds); !ok {
		t.Errorf("data view %q does not match the default data stream %q", a.Title, ds)
	}
	if !json.Valid([]byte(a.Fields)) {
		t.Errorf("data view %s: fields is not JSON text", o.ID)
	}
}

type lensAttrs struct {
	Title             string `json:"title"`
	VisualizationType string `json:"visualizationType"`
	State             struct {
		DatasourceStates struct {
			FormBased struct {
				Layers map[string]struct {
					Columns     map[string]lensColumn `json:"columns"`
					ColumnOrder []string              `json:"columnOrder"`
				} `json:"layers"`
			} `json:"formBased"`
		} `json:"datasourceStates"`
		Query struct {
			Language string `json:"language"`
			Query    string `json:"query"`
		} `json:"query"`
		Visualization json.RawMessage `json:"visualization"`
	} `json:"state"`
}

func decodeLens(t *testing.T, o savedObject) lensAttrs {
	t.Helper()
	var a lensAttrs
	if err := json.Unmarshal(o.Attributes, &a); err != nil {
		t.Fatalf("%s: %v", o.ID, err)
	}
	return a
}

// lensSignature describes a single-layer Lens visualization by its columns in
// order, e.g. "date_histogram/terms:event.action/count".
func lensSignature(t *testing.T, o savedObject) string {
	t.Helper()
	a := decodeLens(t, o)
	var parts []string
	for _, l := range a.State.DatasourceStates.FormBased.Layers {
		for _, id := range l.ColumnOrder {
			c := l.Columns[id]
			switch c.OperationType {
			case "date_histogram", "count":
				parts = append(parts, c.OperationType)
			default:
				parts = append(parts, c.OperationType+":"+c.SourceField)
			}
		}
	}
	return strings.Join(parts, "/")
}

// accessorRe finds the column ids a Lens visualization state refers to.
var accessorRe = regexp.MustCompile(`"(?:xAccessor|splitAccessor|metricAccessor|columnId|accessor)":"([^"]+)"|"accessors":\[([^\]]*)\]`)

func checkLens(t *testing.T, o savedObject, mappings map[string]string) {
	t.Helper()
	a := decodeLens(t, o)
	layers := a.State.DatasourceStates.FormBased.Layers
	if a.Title == "" || len(layers) == 0 {
		t.Fatalf("%s: no title or no formBased layer", o.ID)
	}
	if !slices.Contains([]string{"lnsXY", "lnsDatatable", "lnsMetric"}, a.VisualizationType) {
		t.Errorf("%s: visualizationType %q", o.ID, a.VisualizationType)
	}
	if a.State.Query.Language != "kuery" {
		t.Errorf("%s: query language %q", o.ID, a.State.Query.Language)
	}
	for id, l := range layers {
		ref := "indexpattern-datasource-layer-" + id
		if !slices.ContainsFunc(o.References, func(r struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Type string `json:"type"`
		}) bool {
			return r.Name == ref && r.Type == "index-pattern"
		}) {
			t.Errorf("%s: no reference %s to the data view", o.ID, ref)
		}
		if len(l.ColumnOrder) != len(l.Columns) {
			t.Errorf("%s: columnOrder %v does not list the %d columns", o.ID, l.ColumnOrder, len(l.Columns))
		}
		for _, cid := range l.ColumnOrder {
			c, ok := l.Columns[cid]
			if !ok {
				t.Errorf("%s: columnOrder names missing column %s", o.ID, cid)
				continue
			}
			checkColumn(t, o.ID, cid, c, l.Columns, mappings)
		}
		// Whatever the visualization draws must be a column of the layer.
		for _, m := range accessorRe.FindAllStringSubmatch(string(a.State.Visualization), -1) {
			ids := []string{m[1]}
			if m[1] == "" {
				ids = strings.Split(strings.ReplaceAll(m[2], `"`, ""), ",")
			}
			for _, cid := range ids {
				if _, ok := l.Columns[cid]; !ok {
					t.Errorf("%s: visualization refers to column %q, which the layer lacks", o.ID, cid)
				}
			}
		}
	}
}

func checkColumn(t *testing.T, obj, id string, c lensColumn, cols map[string]lensColumn, mappings map[string]string) {
	t.Helper()
	where := obj + " column " + id
	if c.OperationType == "count" {
		if c.SourceField != "___records___" || c.IsBucketed {
			t.Errorf("%s: count must use ___records___ and not be bucketed", where)
		}
		return
	}
	typ, ok := mappings[c.SourceField]
	if !ok {
		t.Errorf("%s: field %q is not in the index template (schema/template)", where, c.SourceField)
		return
	}
	switch c.OperationType {
	case "date_histogram":
		if (typ != "date" && typ != "date_nanos") || !c.IsBucketed || c.DataType != "date" {
			t.Errorf("%s: date_histogram on %s (%s)", where, c.SourceField, typ)
		}
	case "terms":
		if typ != "keyword" || !c.IsBucketed || c.DataType != "string" {
			t.Errorf("%s: terms on %s (%s) needs a keyword field", where, c.SourceField, typ)
		}
		if ob := c.Params.OrderBy; ob == nil || ob.Type != "column" {
			t.Errorf("%s: terms must be ordered by a metric column", where)
		} else if oc, ok := cols[ob.ColumnID]; !ok || oc.IsBucketed {
			t.Errorf("%s: orderBy column %q is not a metric of this layer", where, ob.ColumnID)
		}
	case "sum", "max", "min", "average":
		if !slices.Contains([]string{"long", "integer", "short", "byte", "double", "float", "scaled_float", "unsigned_long"}, typ) || c.IsBucketed {
			t.Errorf("%s: %s on %s (%s) needs a numeric field", where, c.OperationType, c.SourceField, typ)
		}
	default:
		t.Errorf("%s: operation %s is not checked by this test; add it", where, c.OperationType)
	}
}

func checkDashboard(t *testing.T, o savedObject, byID map[string]savedObject) {
	t.Helper()
	var a struct {
		Title                 string `json:"title"`
		PanelsJSON            string `json:"panelsJSON"`
		OptionsJSON           string `json:"optionsJSON"`
		KibanaSavedObjectMeta struct {
			SearchSourceJSON string `json:"searchSourceJSON"`
		} `json:"kibanaSavedObjectMeta"`
	}
	if err := json.Unmarshal(o.Attributes, &a); err != nil {
		t.Fatalf("%s: %v", o.ID, err)
	}
	var panels []struct {
		Type         string `json:"type"`
		PanelIndex   string `json:"panelIndex"`
		PanelRefName string `json:"panelRefName"`
		GridData     struct {
			X, Y, W, H int
			I          string
		} `json:"gridData"`
	}
	if err := json.Unmarshal([]byte(a.PanelsJSON), &panels); err != nil {
		t.Fatalf("%s: panelsJSON: %v", o.ID, err)
	}
	for _, s := range []string{a.OptionsJSON, a.KibanaSavedObjectMeta.SearchSourceJSON} {
		if !json.Valid([]byte(s)) {
			t.Errorf("%s: %q is not JSON text", o.ID, s)
		}
	}
	used := map[string]bool{}
	for _, p := range panels {
		// Kibana 8 names a panel's reference "<panelIndex>:<panelRefName>".
		name := p.PanelIndex + ":" + p.PanelRefName
		found := false
		for _, r := range o.References {
			if r.Name == name {
				found = true
				used[r.ID] = true
				if byID[r.ID].Type != p.Type {
					t.Errorf("%s: panel %s is %s but its reference is %s", o.ID, p.PanelIndex, p.Type, byID[r.ID].Type)
				}
			}
		}
		if !found {
			t.Errorf("%s: panel %s has no reference named %s", o.ID, p.PanelIndex, name)
		}
		g := p.GridData
		if g.I != p.PanelIndex || g.X < 0 || g.W < 1 || g.X+g.W > 48 || g.H < 1 {
			t.Errorf("%s: panel %s gridData %+v outside the 48-column grid", o.ID, p.PanelIndex, g)
		}
	}
	if len(o.References) != len(panels) {
		t.Errorf("%s: %d references for %d panels", o.ID, len(o.References), len(panels))
	}
	for id, obj := range byID {
		if obj.Type == "lens" && !used[id] {
			t.Errorf("Lens visualization %s is not on the dashboard", id)
		}
	}
}

// ---- Prometheus alerts ----

func TestPrometheusAlerts(t *testing.T) {
	const name = "dashboards/prometheus-alerts.yaml"
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, name)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	metricRe := regexp.MustCompile(`fileward_[a-z_]+`)
	seen := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: alert, expr and annotations.summary are required", r)
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			for _, m := range metricRe.FindAllString(r.Expr, -1) {
				if !slices.Contains(contractMetrics, m) {
					t.Errorf("%s: metric %s is not a metric the agent exports", r.Alert, m)
				}
				seen[m] = true
			}
		}
	}
	for _, m := range []string{"fileward_events_dropped_total", "fileward_sink_lag_events", "fileward_spool_bytes"} {
		if !seen[m] {
			t.Errorf("no alert uses %s", m)
		}
	}
	if !slices.ContainsFunc(f.Groups[0].Rules, func(r struct {
		Alert       string            `yaml:"alert"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}) bool {
		return strings.Contains(r.Expr, "up{")
	}) {
		t.Error("no agent-down alert on up")
	}

	t.Run("promtool", func(t *testing.T) {
		pt := testtool.Need(t, "promtool", "prometheus")
		if out, err := exec.Command(pt, "check", "rules", name).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
		// The unit tests feed series to every alert and expect it to fire
		// (or stay silent) with the labels and annotations it promises.
		cmd := exec.Command(pt, "test", "rules", "prometheus-alerts.test.yaml")
		cmd.Dir = "dashboards"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool test rules: %v\n%s", err, out)
		}
	})
}
