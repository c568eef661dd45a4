package packaging

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

// k8sObject holds the fields of the example's objects that the tests
// check; the decoder ignores the others.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	HostNetwork     bool   `yaml:"hostNetwork"`
	DNSPolicy       string `yaml:"dnsPolicy"`
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
		RunAsGroup   *int  `yaml:"runAsGroup"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name     string `yaml:"name"`
		HostPath struct {
			Path string `yaml:"path"`
		} `yaml:"hostPath"`
	} `yaml:"volumes"`
}

func loadObjects(t *testing.T, path string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(mustRead(t, path)))
	dec.SetStrict(false)
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		objs = append(objs, o)
	}
}

func TestDaemonSet(t *testing.T) {
	repo := repoRoot(t)
	objs := loadObjects(t, filepath.Join(repo, "deploy/kubernetes/daemonset.yaml"))
	var ds *k8sObject
	namespaces := map[string]map[string]string{}
	for i, o := range objs {
		switch o.Kind {
		case "DaemonSet":
			ds = &objs[i]
		case "Namespace":
			namespaces[o.Metadata.Name] = o.Metadata.Labels
		}
	}
	if ds == nil || ds.APIVersion != "apps/v1" {
		t.Fatalf("no apps/v1 DaemonSet in %v", objs)
	}
	if labels, ok := namespaces[ds.Metadata.Namespace]; !ok || labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace %q: %v; want it defined here with the privileged Pod Security level (hostNetwork, hostPath)", ds.Metadata.Namespace, labels)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not a label of the pods", k, v)
		}
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.DNSPolicy != "ClusterFirstWithHostNet" {
		t.Errorf("hostNetwork %v, dnsPolicy %q: the events reach the host's network namespace only", pod.HostNetwork, pod.DNSPolicy)
	}
	sc := pod.SecurityContext
	uid, gid, _ := strings.Cut(dockerUser, ":")
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || strconv.Itoa(*sc.RunAsUser) != uid ||
		sc.RunAsGroup == nil || strconv.Itoa(*sc.RunAsGroup) != gid {
		t.Errorf("pod securityContext %+v: want runAsNonRoot as %s, the image's user", sc, dockerUser)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" {
		t.Error("no image")
	}
	csc := c.SecurityContext
	if !slices.Equal(csc.Capabilities.Add, []string{"NET_ADMIN"}) || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities add %v drop %v, want NET_ADMIN only", csc.Capabilities.Add, csc.Capabilities.Drop)
	}
	if csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation: false sets no_new_privs, which voids the binary's file capability")
	}
	if !csc.ReadOnlyRootFilesystem {
		t.Error("the root file system should be read-only: the exporter writes nothing")
	}

	// /proc of the host, read-only, and the exporter told where it is.
	var procVolume string
	for _, v := range pod.Volumes {
		if v.HostPath.Path == "/proc" {
			procVolume = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == procVolume && m.MountPath == "/host/proc" && m.ReadOnly {
			mounted = true
		}
	}
	if procVolume == "" || !mounted || !slices.Contains(c.Args, "--path.procfs=/host/proc") {
		t.Errorf("want the host's /proc read-only at /host/proc and --path.procfs=/host/proc: volumes %+v, mounts %+v, args %q",
			pod.Volumes, c.VolumeMounts, c.Args)
	}

	// One port everywhere: the flag, the container port, the annotation
	// and the exporter's default.
	port := exporterPort(t)
	ann := ds.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %s, path /metrics", ann, port)
	}
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port || !slices.Contains(c.Args, "--web.listen-address=:"+port) {
		t.Errorf("ports %+v, args %q: want %s", c.Ports, c.Args, port)
	}

	// Every argument is a flag of kfw_exporter.
	if out, err := exec.Command(exporterBin, append(slices.Clone(c.Args), "--help")...).CombinedOutput(); err != nil {
		t.Errorf("kfw_exporter %s --help: %v\n%s", strings.Join(c.Args, " "), err, out)
	}
}
