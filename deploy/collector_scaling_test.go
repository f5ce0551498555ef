package deploy

import (
	"maps"
	"strconv"
	"testing"
)

type pdbObject struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		MaxUnavailable any           `yaml:"maxUnavailable"`
		MinAvailable   any           `yaml:"minAvailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type hpaPolicy struct {
	Type          string `yaml:"type"`
	Value         int    `yaml:"value"`
	PeriodSeconds int    `yaml:"periodSeconds"`
}

type hpaRules struct {
	StabilizationWindowSeconds int         `yaml:"stabilizationWindowSeconds"`
	Policies                   []hpaPolicy `yaml:"policies"`
}

type scaledObject struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount int `yaml:"minReplicaCount"`
		MaxReplicaCount int `yaml:"maxReplicaCount"`
		PollingInterval int `yaml:"pollingInterval"`
		CooldownPeriod  int `yaml:"cooldownPeriod"`
		Advanced        struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior struct {
					ScaleUp   hpaRules `yaml:"scaleUp"`
					ScaleDown hpaRules `yaml:"scaleDown"`
				} `yaml:"behavior"`
			} `yaml:"horizontalPodAutoscalerConfig"`
		} `yaml:"advanced"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

// TestKubernetesCollectorScaling: the collector's PodDisruptionBudget and
// its KEDA ScaledObject (the HPA on consumer lag) point at the collector
// Deployment and its consumer group, and are damped against rebalance churn.
func TestKubernetesCollectorScaling(t *testing.T) {
	m := loadManifests(t)
	w := m.workloads["Deployment/fileward-collector"]
	if w == nil {
		t.Fatal("no Deployment fileward-collector")
	}
	podLabels := w.Spec.Template.Metadata.Labels
	selects := func(sel labelSelector) bool {
		if len(sel.MatchLabels) == 0 {
			return false
		}
		for k, v := range sel.MatchLabels {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}

	n := m.scaling["PodDisruptionBudget/fileward-collector"]
	if n == nil {
		t.Fatal("no PodDisruptionBudget fileward-collector")
	}
	var pdb pdbObject
	if err := strictDecode(n, &pdb); err != nil {
		t.Fatalf("PodDisruptionBudget: %v", err)
	}
	if pdb.APIVersion != "policy/v1" || pdb.Metadata.Namespace != "fileward" {
		t.Errorf("PodDisruptionBudget apiVersion %q namespace %q", pdb.APIVersion, pdb.Metadata.Namespace)
	}
	if !selects(pdb.Spec.Selector) || !maps.Equal(pdb.Spec.Selector.MatchLabels, w.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget selects %v, want the collector Deployment's selector %v", pdb.Spec.Selector.MatchLabels, w.Spec.Selector.MatchLabels)
	}
	for name, d := range m.workloads {
		if name == "Deployment/fileward-collector" {
			continue
		}
		other := true
		for k, v := range pdb.Spec.Selector.MatchLabels {
			if d.Spec.Template.Metadata.Labels[k] != v {
				other = false
			}
		}
		if other {
			t.Errorf("PodDisruptionBudget also selects the pods of %s", name)
		}
	}
	// One eviction at a time, and a single replica can still be drained.
	if pdb.Spec.MinAvailable != nil || pdb.Spec.MaxUnavailable != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v minAvailable %v, want maxUnavailable 1 only", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}

	n = m.scaling["ScaledObject/fileward-collector"]
	if n == nil {
		t.Fatal("no ScaledObject fileward-collector")
	}
	var so scaledObject
	if err := strictDecode(n, &so); err != nil {
		t.Fatalf("ScaledObject: %v", err)
	}
	if so.APIVersion != "keda.sh/v1alpha1" || so.Metadata.Namespace != "fileward" {
		t.Errorf("ScaledObject apiVersion %q namespace %q", so.APIVersion, so.Metadata.Namespace)
	}
	ref := so.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != w.Metadata.Name {
		t.Errorf("ScaledObject targets %+v, want the collector Deployment", ref)
	}
	if so.Spec.MinReplicaCount < 1 || so.Spec.MaxReplicaCount < so.Spec.MinReplicaCount {
		t.Errorf("replicas %d..%d: want at least 1 and max >= min", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
	}
	down := so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior.ScaleDown
	if down.StabilizationWindowSeconds < 300 || len(down.Policies) == 0 {
		t.Errorf("scale-down %+v: want a stabilization window of at least 5 minutes and a policy (each removal is a rebalance)", down)
	}
	for _, p := range down.Policies {
		if p.Type != "Pods" || p.Value != 1 {
			t.Errorf("scale-down policy %+v: want one pod at a time", p)
		}
	}

	// The trigger watches the collector's own topic and consumer group, as
	// the collector ConfigMap sets them (with its env defaults).
	spec := &w.Spec.Template.Spec
	cfg, _ := podConfig(t, m, w, &spec.Containers[0])
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v: want one kafka trigger", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	k := cfg.Collector.Kafka
	if md["consumerGroup"] != k.GroupID || md["topic"] != k.Topic || len(k.Brokers) == 0 || md["bootstrapServers"] != k.Brokers[0] {
		t.Errorf("kafka trigger %v, want group %q topic %q brokers %v", md, k.GroupID, k.Topic, k.Brokers)
	}
	if lag, err := strconv.Atoi(md["lagThreshold"]); err != nil || lag <= 0 {
		t.Errorf("lagThreshold %q: want a positive number of messages", md["lagThreshold"])
	}
	// The collector starts an uncommitted partition at its first message.
	if md["offsetResetPolicy"] != "earliest" || md["allowIdleConsumers"] != "false" {
		t.Errorf("offsetResetPolicy %q allowIdleConsumers %q: want earliest and false (no replicas beyond the partition count)", md["offsetResetPolicy"], md["allowIdleConsumers"])
	}
}
