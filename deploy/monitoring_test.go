package deploy

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/fileward/fileward/internal/testtool"
)

// podMonitor mirrors the parts of monitoring.coreos.com/v1 PodMonitor the
// manifests use, decoded strictly.
type podMonitor struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port        string `yaml:"port"`
			Path        string `yaml:"path"`
			Interval    string `yaml:"interval"`
			Relabelings []struct {
				Action       string   `yaml:"action"`
				SourceLabels []string `yaml:"sourceLabels"`
				TargetLabel  string   `yaml:"targetLabel"`
				Replacement  string   `yaml:"replacement"`
			} `yaml:"relabelings"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

// TestPodMonitors: each workload has a PodMonitor that selects exactly its
// pods, scrapes a container port of that name serving /metrics, and sets the
// job label the alerting rules match.
func TestPodMonitors(t *testing.T) {
	m := loadManifests(t)
	docs, err := yamlDocs(readFile(t, "kubernetes/monitoring/podmonitors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pms := map[string]*podMonitor{}
	for i := range docs {
		pm := &podMonitor{}
		if err := strictDecode(&docs[i], pm); err != nil {
			t.Fatalf("podmonitors.yaml doc %d: %v", i+1, err)
		}
		if pm.APIVersion != "monitoring.coreos.com/v1" || pm.Kind != "PodMonitor" {
			t.Errorf("doc %d: %s %s", i+1, pm.APIVersion, pm.Kind)
		}
		pms[pm.Metadata.Name] = pm
	}
	alerts := string(readFile(t, "dashboards/prometheus-alerts.yaml"))
	jobRe := regexp.MustCompile(`job=~"([^"]+)"`)
	for name, wl := range map[string]string{"fileward-agent": "DaemonSet/fileward-agent", "fileward-collector": "Deployment/fileward-collector"} {
		pm, w := pms[name], m.workloads[wl]
		if pm == nil || w == nil {
			t.Errorf("no PodMonitor %s or no %s", name, wl)
			continue
		}
		pod := w.Spec.Template.Metadata.Labels
		for k, v := range pm.Spec.Selector.MatchLabels {
			if pod[k] != v {
				t.Errorf("PodMonitor %s selects %s=%s; the %s pods have %q", name, k, v, wl, pod[k])
			}
		}
		for other, ow := range map[string]string{"fileward-agent": "DaemonSet/fileward-agent", "fileward-collector": "Deployment/fileward-collector"} {
			if other == name {
				continue
			}
			matches := true
			for k, v := range pm.Spec.Selector.MatchLabels {
				matches = matches && m.workloads[ow].Spec.Template.Metadata.Labels[k] == v
			}
			if matches {
				t.Errorf("PodMonitor %s also selects the %s pods", name, ow)
			}
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("PodMonitor %s: %d endpoints", name, len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		c := w.Spec.Template.Spec.Containers[0]
		named := false
		for _, p := range c.Ports {
			named = named || p.Name == ep.Port
		}
		if !named {
			t.Errorf("PodMonitor %s scrapes port %q, which %s's container does not name", name, ep.Port, wl)
		}
		if ep.Path != "/metrics" {
			t.Errorf("PodMonitor %s path %q", name, ep.Path)
		}
		job := ""
		for _, r := range ep.Relabelings {
			if r.TargetLabel == "job" && r.Action == "replace" && len(r.SourceLabels) == 0 {
				job = r.Replacement
			}
		}
		if job != name {
			t.Errorf("PodMonitor %s sets job %q, want %q", name, job, name)
		}
		// Every job matcher of the alerts that is about this component
		// accepts this job, and the operator's default (namespace/name).
		for _, mt := range jobRe.FindAllStringSubmatch(alerts, -1) {
			if !strings.Contains(mt[1], strings.TrimPrefix(name, "fileward-")) {
				continue
			}
			re := regexp.MustCompile("^(?:" + mt[1] + ")$")
			for _, j := range []string{job, "fileward/" + name} {
				if !re.MatchString(j) {
					t.Errorf("alert matcher job=~%q does not match job %q", mt[1], j)
				}
			}
		}
	}
	for _, forbidden := range []string{`job=~"fileward-agent|fileward-collector"`, `job="fileward-agent"}`} {
		if strings.Contains(alerts, forbidden) {
			t.Errorf("alerts still match %s", forbidden)
		}
	}

	t.Run("kubectl kustomize", func(t *testing.T) {
		kc := testtool.Need(t, "kubectl", "kubernetes-client")
		out, err := exec.Command(kc, "kustomize", "kubernetes/monitoring").Output()
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
		if len(docs) != 2 {
			t.Fatalf("rendered %d objects, want 2 PodMonitors", len(docs))
		}
		for i := range docs {
			pm := &podMonitor{}
			if err := strictDecode(&docs[i], pm); err != nil {
				t.Errorf("rendered doc %d: %v", i+1, err)
			}
			if pm.Metadata.Namespace != "fileward" || pm.Metadata.Labels["app.kubernetes.io/part-of"] != "fileward" {
				t.Errorf("rendered %s: namespace %q labels %v", pm.Metadata.Name, pm.Metadata.Namespace, pm.Metadata.Labels)
			}
		}
		if !bytes.Contains(out, []byte("replacement: fileward-agent")) {
			t.Error("rendered output lost the job relabeling")
		}
	})
}
