package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest document.
type object struct {
	File string
	Obj  runtime.Object
	Kind string
	NS   string
	Name string
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s (%s)", o.Kind, o.NS, o.Name, o.File) }

var strictDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeStrict decodes every document of a YAML stream into the typed
// Kubernetes object its apiVersion and kind name. Unknown, misspelt,
// wrongly cased or duplicated fields are errors.
func decodeStrict(file string, b []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		if isEmptyDoc(doc) {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		meta, ok := obj.(interface {
			GetName() string
			GetNamespace() string
		})
		if !ok {
			return nil, fmt.Errorf("%s: %s has no metadata", file, gvk)
		}
		out = append(out, object{File: file, Obj: obj, Kind: gvk.Kind, NS: meta.GetNamespace(), Name: meta.GetName()})
	}
}

func isEmptyDoc(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

// loadManifests decodes every .yaml file under docker/kubernetes.
func loadManifests(t *testing.T) []object {
	t.Helper()
	dir := repoFile(t, "docker/kubernetes")
	var objs []object
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot(t), p)
		o, err := decodeStrict(filepath.ToSlash(rel), b)
		if err != nil {
			return err
		}
		objs = append(objs, o...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("docker/kubernetes holds no manifests")
	}
	return objs
}

// TestStrictDecoding makes sure the decoder really rejects what a typo
// produces, so that the manifest tests mean something.
func TestStrictDecoding(t *testing.T) {
	bad := map[string]string{
		"unknown field": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replica: 1
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i:1}]}}
`,
		"wrong case": `apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  containers:
    - name: c
      image: i:1
      volumeMounts: [{name: v, mountPath: /v, readonly: true}]
`,
		"duplicate field": `apiVersion: v1
kind: ConfigMap
metadata: {name: x, name: y}
`,
		"unknown kind": `apiVersion: apps/v1
kind: Deploymnet
metadata: {name: x}
`,
	}
	for name, doc := range bad {
		if _, err := decodeStrict(name, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	good := "# comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
	if objs, err := decodeStrict("good", []byte(good)); err != nil || len(objs) != 1 {
		t.Errorf("a valid ConfigMap: %v, %d objects", err, len(objs))
	}
}

var imageTagRE = regexp.MustCompile(`^[a-z0-9./_-]+(:[0-9A-Za-z][0-9A-Za-z._-]*)(@sha256:[0-9a-f]{64})?$`)

// checkImage fails for an image without an explicit tag or with latest.
func checkImage(t *testing.T, where, image string) {
	t.Helper()
	m := imageTagRE.FindStringSubmatch(image)
	if m == nil {
		t.Errorf("%s: image %q has no explicit tag", where, image)
		return
	}
	if tag := strings.TrimPrefix(m[1], ":"); tag == "latest" || strings.HasSuffix(tag, "-latest") {
		t.Errorf("%s: image %q uses a latest tag", where, image)
	}
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t)
	img := loadDockerfile(t)
	cfgText := string(readRepoFile(t, "docker/fluent-bit.yaml"))

	namespaces := map[string]bool{}
	configMaps := map[string]*corev1.ConfigMap{}
	pvcs := map[string]*corev1.PersistentVolumeClaim{}
	var deployments, daemonSets []object
	var services []*corev1.Service
	roles := map[string]*rbacv1.Role{}
	var bindings []*rbacv1.RoleBinding
	for _, o := range objs {
		key := o.NS + "/" + o.Name
		switch v := o.Obj.(type) {
		case *corev1.Namespace:
			namespaces[o.Name] = true
		case *corev1.ConfigMap:
			configMaps[key] = v
		case *corev1.PersistentVolumeClaim:
			pvcs[key] = v
			if len(v.Spec.AccessModes) != 1 || v.Spec.AccessModes[0] != corev1.ReadWriteOnce {
				t.Errorf("%s: want accessModes [ReadWriteOnce] (one pod at a time), got %v", o, v.Spec.AccessModes)
			}
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *appsv1.DaemonSet:
			daemonSets = append(daemonSets, o)
		case *rbacv1.Role:
			roles[key] = v
		case *rbacv1.RoleBinding:
			bindings = append(bindings, v)
		case *corev1.Service:
			services = append(services, v)
		case *corev1.Secret:
			for k, d := range v.StringData {
				if !strings.Contains(d, "PLACEHOLDER") || strings.Contains(d, "-----BEGIN") {
					t.Errorf("%s: key %q must hold only clearly fake placeholder data", o, k)
				}
			}
			if len(v.Data) > 0 {
				t.Errorf("%s: example Secrets use stringData with placeholder text, not data", o)
			}
		case *corev1.ServiceAccount:
		default:
			t.Errorf("%s: kind %s is not expected here (a StatefulSet or another controller would export every event again)", o, o.Kind)
		}
	}
	for _, o := range objs {
		if _, isNS := o.Obj.(*corev1.Namespace); !isNS && !namespaces[o.NS] {
			t.Errorf("%s: namespace %q is not among the manifests", o, o.NS)
		}
	}

	if len(deployments) == 0 {
		t.Fatal("no Deployment under docker/kubernetes")
	}
	for _, o := range deployments {
		if o.NS+"/"+o.Name != deployments[0].NS+"/"+deployments[0].Name {
			t.Errorf("%s and %s: every variant must use the same Deployment name, so applying one replaces the other instead of running two exporters", o, deployments[0])
		}
		t.Run(strings.TrimSuffix(o.File, ".yaml"), func(t *testing.T) {
			checkDeployment(t, o, o.Obj.(*appsv1.Deployment), img, cfgText, configMaps, pvcs, services)
		})
	}
	if len(daemonSets) == 0 {
		t.Fatal("no DaemonSet under docker/kubernetes")
	}
	for _, o := range daemonSets {
		t.Run(strings.TrimSuffix(o.File, ".yaml"), func(t *testing.T) {
			checkDaemonSet(t, o, o.Obj.(*appsv1.DaemonSet), img, cfgText, configMaps, services, roles, bindings)
		})
	}
}

func checkDeployment(t *testing.T, o object, d *appsv1.Deployment, img dockerImage, cfgText string,
	configMaps map[string]*corev1.ConfigMap, pvcs map[string]*corev1.PersistentVolumeClaim, services []*corev1.Service) {
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("%s: replicas must be set to 1", o)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("%s: strategy must be Recreate (the old pod must release the volume and the db first), got %q", o, d.Spec.Strategy.Type)
	}
	env, in, fb, mountOf := checkPod(t, o, d.Spec.Selector, d.Spec.Template, img, cfgText, configMaps, services)
	if env["TELEPORT_LEADER_ELECTION"] != "" {
		t.Errorf("%s: a single replica needs no leader election", o)
	}
	_ = fb
	for _, p := range []struct{ what, file string }{
		{"db", expandEnv(get(in, "db"), env)},
		{"storage.path", expandEnv(scalarString(parseFBYAML(t, []byte(cfgText)).Service["storage.path"]), env)},
	} {
		m, v, ok := mountOf(p.file)
		switch {
		case !ok || v.PersistentVolumeClaim == nil:
			t.Errorf("%s: %s %s is not on a PersistentVolumeClaim", o, p.what, p.file)
		case pvcs[o.NS+"/"+v.PersistentVolumeClaim.ClaimName] == nil:
			t.Errorf("%s: PersistentVolumeClaim %s is not among the manifests", o, v.PersistentVolumeClaim.ClaimName)
		case m.ReadOnly:
			t.Errorf("%s: %s %s is on a read-only mount", o, p.what, p.file)
		}
	}
}

// checkDaemonSet checks the leader-election variant: every node runs a
// candidate, the holder of the Lease exports. Its position is handed over
// through the API; the local db and Fluent Bit's buffer stay on the node
// (hostPath), so a pod that restarts on its node finds both again.
func checkDaemonSet(t *testing.T, o object, d *appsv1.DaemonSet, img dockerImage, cfgText string,
	configMaps map[string]*corev1.ConfigMap, services []*corev1.Service, roles map[string]*rbacv1.Role, bindings []*rbacv1.RoleBinding) {
	env, in, fb, mountOf := checkPod(t, o, d.Spec.Selector, d.Spec.Template, img, cfgText, configMaps, services)
	if got := expandEnv(get(in, "leader_election"), env); got != "kubernetes" {
		t.Errorf("%s: leader_election is %q: every pod would export every event; set TELEPORT_LEADER_ELECTION=kubernetes", o, got)
	}
	fields := map[string]string{}
	for _, e := range fb.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if fields["POD_NAME"] != "metadata.name" || fields["NODE_NAME"] != "spec.nodeName" {
		t.Errorf("%s: POD_NAME and NODE_NAME must come from the downward API (metadata.name, spec.nodeName): they name the candidate", o)
	}
	for _, p := range []struct{ what, file string }{
		{"db", expandEnv(get(in, "db"), env)},
		{"storage.path", expandEnv(scalarString(parseFBYAML(t, []byte(cfgText)).Service["storage.path"]), env)},
	} {
		m, v, ok := mountOf(p.file)
		if !ok || v.HostPath == nil || m.ReadOnly {
			t.Errorf("%s: %s %s must be on a writable hostPath volume (it comes back with the node)", o, p.what, p.file)
			continue
		}
		owner := findContainer(d.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool {
			return isDataOwner(c) && len(c.VolumeMounts) == 1 && c.VolumeMounts[0].Name == m.Name && c.Command[2] == c.VolumeMounts[0].MountPath
		})
		if owner == nil {
			t.Errorf("%s: hostPath volume %s is created owned by root: an init container must chown %d:%d its mount (with CHOWN only)", o, m.Name, nonrootUID, nonrootUID)
		}
	}
	spec := d.Spec.Template.Spec
	if spec.ServiceAccountName == "" || (spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken) {
		t.Fatalf("%s: the pods need a service account with its token mounted (the Lease is written with it)", o)
	}
	// The service account holds exactly the Role the plugin needs.
	var bound []string
	for _, b := range bindings {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == spec.ServiceAccountName && (s.Namespace == o.NS || s.Namespace == "") && b.Namespace == o.NS {
				bound = append(bound, b.RoleRef.Name)
				if b.RoleRef.Kind != "Role" || roles[o.NS+"/"+b.RoleRef.Name] == nil {
					t.Errorf("RoleBinding %s: binds %s %s, not a Role of the manifests", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
				}
			}
		}
	}
	if len(bound) != 1 {
		t.Fatalf("%s: service account %s is bound to %v: want exactly one Role", o, spec.ServiceAccountName, bound)
	}
	want := map[string]string{"coordination.k8s.io/leases": "create,get,update", "/configmaps": "create,get,update"}
	got := map[string]string{}
	for _, r := range roles[o.NS+"/"+bound[0]].Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				verbs := append([]string(nil), r.Verbs...)
				sort.Strings(verbs)
				got[g+"/"+res] = strings.Join(verbs, ",")
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Role %s: rules %v, want exactly %v (tests/kubeapi proves these are enough)", bound[0], got, want)
	}
}

// isDataOwner is the DaemonSet's init container that hands the hostPath
// directory to Fluent Bit's user: root, with CHOWN and nothing else.
func isDataOwner(c corev1.Container) bool {
	sc := c.SecurityContext
	return len(c.Command) == 3 && c.Command[0] == "chown" && c.Command[1] == fmt.Sprintf("%d:%d", nonrootUID, nonrootUID) &&
		sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Add) == 1 && sc.Capabilities.Add[0] == "CHOWN" &&
		contains(capStrings(sc.Capabilities.Drop), "ALL") && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation &&
		sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
}

// checkPod checks what every variant's pod has: labels, security, the
// configuration from the ConfigMap, the identity, the probes. It returns
// the container env, the teleport input's settings, the Fluent Bit
// container and a lookup of the volume a file is on.
func checkPod(t *testing.T, o object, selector *metav1.LabelSelector, pod corev1.PodTemplateSpec, img dockerImage, cfgText string,
	configMaps map[string]*corev1.ConfigMap, services []*corev1.Service) (map[string]string, section, *corev1.Container, func(string) (corev1.VolumeMount, corev1.Volume, bool)) {
	t.Helper()
	if selector == nil {
		t.Fatalf("%s: no selector", o)
	}
	for k, v := range selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod labels", o, k, v)
		}
	}
	for _, s := range services {
		if s.Namespace != o.NS {
			continue
		}
		for k, v := range s.Spec.Selector {
			if pod.Labels[k] != v {
				t.Errorf("Service %s: selector %s=%s does not match the pods of %s", s.Name, k, v, o)
			}
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" && !hasPort(pod.Spec, p.TargetPort.StrVal) {
				t.Errorf("Service %s: targetPort %q is no container port of %s", s.Name, p.TargetPort.StrVal, o)
			}
		}
	}

	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot must be true", o)
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != nonrootUID || psc.FSGroup == nil || *psc.FSGroup != nonrootUID {
		t.Errorf("%s: pod securityContext must set runAsUser and fsGroup %d (the image's user and the owner of its data)", o, nonrootUID)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext.seccompProfile must be RuntimeDefault (restricted Pod Security Standard)", o)
	}
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		where := fmt.Sprintf("%s container %s", o, c.Name)
		checkImage(t, where, c.Image)
		if isDataOwner(c) {
			continue // checked by checkDaemonSet
		}
		checkContainerSecurity(t, where, c.SecurityContext)
	}

	fb := findContainer(pod.Spec.Containers, func(c corev1.Container) bool {
		return len(c.Args) == 2 && c.Args[0] == "-c"
	})
	if fb == nil {
		t.Fatalf("%s: no container runs Fluent Bit with `-c <config>`", o)
	}
	if want := []string{"-c", img.ConfigFile}; strings.Join(fb.Args, " ") != strings.Join(want, " ") {
		t.Errorf("%s: Fluent Bit args %q, want %q (the image's configuration path)", o, fb.Args, want)
	}
	if len(fb.Command) > 0 {
		t.Errorf("%s: keep the image's entrypoint (no command)", o)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	mountOf := func(c *corev1.Container, file string) (corev1.VolumeMount, corev1.Volume, bool) {
		var best corev1.VolumeMount
		for _, m := range c.VolumeMounts {
			if under(file, m.MountPath) && len(m.MountPath) > len(best.MountPath) {
				best = m
			}
		}
		return best, volumes[best.Name], best.Name != ""
	}
	for _, m := range fb.VolumeMounts {
		for _, f := range []string{img.SOPath, img.PluginsFile, "/fluent-bit/bin/fluent-bit"} {
			if under(f, m.MountPath) {
				t.Errorf("%s: volume %s at %s hides the image's %s", o, m.Name, m.MountPath, f)
			}
		}
	}

	// The configuration comes from a ConfigMap identical to docker/fluent-bit.yaml.
	m, v, ok := mountOf(fb, img.ConfigFile)
	if !ok || v.ConfigMap == nil {
		t.Fatalf("%s: %s is not mounted from a ConfigMap", o, img.ConfigFile)
	}
	cm := configMaps[o.NS+"/"+v.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("%s: ConfigMap %s is not among the manifests", o, v.ConfigMap.Name)
	}
	rel := strings.TrimPrefix(img.ConfigFile, strings.TrimSuffix(m.MountPath, "/")+"/")
	if cm.Data[rel] != cfgText {
		t.Errorf("ConfigMap %s key %s differs from docker/fluent-bit.yaml; regenerate it (indent docker/fluent-bit.yaml by 4 spaces under `fluent-bit.yaml: |`)", cm.Name, rel)
	}
	if !m.ReadOnly {
		t.Errorf("%s: the configuration mount must be readOnly", o)
	}

	// Settings as the plugin will see them: the container env over the
	// configuration's defaults.
	env := map[string]string{}
	for _, e := range fb.Env {
		if e.ValueFrom != nil && (e.ValueFrom.FieldRef == nil || !strings.HasSuffix(e.Name, "_NAME")) {
			t.Errorf("%s: env %s: use plain values so the test can resolve them (only POD_NAME and NODE_NAME come from the downward API)", o, e.Name)
		}
		env[e.Name] = e.Value
	}
	cfg := parseFBYAML(t, []byte(cm.Data[rel]))
	in := teleportInput(t, cm.Name, cfg)
	if expandEnv(get(in, "addr"), env) == "" {
		t.Errorf("%s: TELEPORT_ADDR is not set", o)
	}
	// The identity is read-only for Fluent Bit: a Secret, or a memory
	// emptyDir that a tbot sidecar writes.
	idFile := expandEnv(get(in, "identity_file"), env)
	m, v, ok = mountOf(fb, idFile)
	if !ok {
		t.Fatalf("%s: identity_file %s is on no volume", o, idFile)
	}
	if !m.ReadOnly {
		t.Errorf("%s: the identity volume %s must be mounted readOnly in Fluent Bit", o, m.Name)
	}
	switch {
	case v.Secret != nil:
		mode := v.Secret.DefaultMode
		if mode == nil || *mode&0o137 != 0 {
			t.Errorf("%s: the identity Secret needs defaultMode 0400 or 0440 (owner root, group fsGroup), got %v", o, fmtMode(mode))
		}
	case v.EmptyDir != nil:
		checkTbot(t, o, pod.Spec, m, idFile, configMaps)
	default:
		t.Errorf("%s: identity volume %s is neither a Secret nor a tbot emptyDir", o, v.Name)
	}

	// Probes on Fluent Bit's HTTP server.
	port := findPort(*fb, "http")
	if port == nil || port.ContainerPort != 2020 {
		t.Errorf("%s: want a container port named http = 2020 (service.http_port)", o)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		paths []string
	}{
		{"livenessProbe", fb.LivenessProbe, []string{"/", "/api/v2/health", "/api/v1/health"}},
		{"readinessProbe", fb.ReadinessProbe, []string{"/api/v2/health", "/api/v1/health"}},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: %s must be an httpGet on Fluent Bit's HTTP server", o, p.name)
			continue
		}
		if p.probe.HTTPGet.Port.String() != "http" && p.probe.HTTPGet.Port.IntValue() != 2020 {
			t.Errorf("%s: %s port %s is not Fluent Bit's HTTP port", o, p.name, p.probe.HTTPGet.Port.String())
		}
		if !contains(p.paths, p.probe.HTTPGet.Path) {
			t.Errorf("%s: %s path %q: want one of %v", o, p.name, p.probe.HTTPGet.Path, p.paths)
		}
	}
	return env, in, fb, func(file string) (corev1.VolumeMount, corev1.Volume, bool) { return mountOf(fb, file) }
}

func checkContainerSecurity(t *testing.T, where string, sc *corev1.SecurityContext) {
	t.Helper()
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot must be true", where)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("%s: runAsUser 0", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if sc.Capabilities == nil || !contains(capStrings(sc.Capabilities.Drop), "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities must drop ALL and add none", where)
	}
}

// tbotConfig is the part of tbot's configuration the tests read.
type tbotConfig struct {
	Version     string `json:"version"`
	ProxyServer string `json:"proxy_server"`
	AuthServer  string `json:"auth_server"`
	Onboarding  struct {
		JoinMethod string `json:"join_method"`
		Token      string `json:"token"`
	} `json:"onboarding"`
	Storage struct {
		Type string `json:"type"`
	} `json:"storage"`
	Outputs []struct {
		Type        string `json:"type"`
		Destination struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"destination"`
	} `json:"outputs"`
}

var tbotImageRE = regexp.MustCompile(`^public\.ecr\.aws/gravitational/tbot-distroless:\d+\.\d+\.\d+$`)

// checkTbot checks the sidecar variant: tbot writes an identity output into
// the emptyDir Fluent Bit reads the identity from.
func checkTbot(t *testing.T, o object, spec corev1.PodSpec, fbMount corev1.VolumeMount, idFile string, configMaps map[string]*corev1.ConfigMap) {
	t.Helper()
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	tbot := findContainer(all, func(c corev1.Container) bool { return tbotImageRE.MatchString(c.Image) })
	if tbot == nil {
		t.Fatalf("%s: the identity comes from an emptyDir but no tbot container (public.ecr.aws/gravitational/tbot-distroless:X.Y.Z) writes it", o)
	}
	if findContainer(spec.InitContainers, func(c corev1.Container) bool { return c.Name == tbot.Name }) != nil {
		if tbot.RestartPolicy == nil || *tbot.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("%s: tbot as an init container must be a native sidecar (restartPolicy: Always), or Fluent Bit never starts", o)
		}
		if tbot.StartupProbe == nil {
			t.Errorf("%s: give the tbot sidecar a startupProbe so Fluent Bit starts once the identity exists", o)
		}
	}
	var tbotMount *corev1.VolumeMount
	var cfgPath string
	for i, m := range tbot.VolumeMounts {
		if m.Name == fbMount.Name {
			tbotMount = &tbot.VolumeMounts[i]
		}
	}
	if tbotMount == nil || tbotMount.ReadOnly {
		t.Fatalf("%s: tbot must mount volume %s writable", o, fbMount.Name)
	}
	for i, a := range tbot.Args {
		if (a == "-c" || a == "--config") && i+1 < len(tbot.Args) {
			cfgPath = tbot.Args[i+1]
		}
	}
	var cm *corev1.ConfigMap
	var key string
	for _, m := range tbot.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && under(cfgPath, m.MountPath) {
				cm = configMaps[o.NS+"/"+v.ConfigMap.Name]
				key = strings.TrimPrefix(cfgPath, strings.TrimSuffix(m.MountPath, "/")+"/")
			}
		}
	}
	if cm == nil || cm.Data[key] == "" {
		t.Fatalf("%s: tbot's configuration %q is not in a ConfigMap of the manifests", o, cfgPath)
	}
	var tc tbotConfig
	if err := yaml.Unmarshal([]byte(cm.Data[key]), &tc); err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Name, key, err)
	}
	if tc.Version != "v2" || (tc.ProxyServer == "") == (tc.AuthServer == "") || tc.Onboarding.JoinMethod == "" || tc.Onboarding.Token == "" {
		t.Errorf("ConfigMap %s %s: want version v2, one of proxy_server or auth_server, and onboarding join_method and token", cm.Name, key)
	}
	var wrote bool
	for _, out := range tc.Outputs {
		if out.Type == "identity" && out.Destination.Type == "directory" &&
			path.Join(out.Destination.Path, "identity") == idFile && under(out.Destination.Path, tbotMount.MountPath) {
			wrote = true
		}
	}
	if !wrote {
		t.Errorf("ConfigMap %s %s: no identity output writes %s (directory %s in tbot's mount %s)", cm.Name, key, idFile, path.Dir(idFile), tbotMount.MountPath)
	}
	if path.Clean(tbotMount.MountPath) != path.Clean(fbMount.MountPath) {
		t.Errorf("%s: tbot mounts the identity volume at %s, Fluent Bit at %s: use the same path", o, tbotMount.MountPath, fbMount.MountPath)
	}
}

func findContainer(cs []corev1.Container, f func(corev1.Container) bool) *corev1.Container {
	for i := range cs {
		if f(cs[i]) {
			return &cs[i]
		}
	}
	return nil
}

func findPort(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func hasPort(spec corev1.PodSpec, name string) bool {
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if findPort(c, name) != nil {
			return true
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func capStrings(caps []corev1.Capability) []string {
	var out []string
	for _, c := range caps {
		out = append(out, string(c))
	}
	return out
}

func fmtMode(m *int32) string {
	if m == nil {
		return "unset (0644)"
	}
	return fmt.Sprintf("%#o", *m)
}
