package manifests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// chartValues are the values of the fluent/fluent-bit chart 0.58.x
// (charts/fluent-bit/values.yaml and the keys its templates read). Every
// top-level key of the chart is listed, so a key the chart does not have
// fails to decode; the parts this repository sets are typed, down to the
// Kubernetes API types the chart copies into the pod.
type chartValues struct {
	file                          string                        // where they were read from
	Kind                          string                        `json:"kind"`
	ReplicaCount                  *int32                        `json:"replicaCount"`
	Image                         chartImage                    `json:"image"`
	TestFramework                 *chartTestFramework           `json:"testFramework"`
	ImagePullSecrets              []corev1.LocalObjectReference `json:"imagePullSecrets"`
	NameOverride                  string                        `json:"nameOverride"`
	FullnameOverride              string                        `json:"fullnameOverride"`
	ServiceAccount                *chartServiceAccount          `json:"serviceAccount"`
	RBAC                          *chartRBAC                    `json:"rbac"`
	PodSecurityPolicy             json.RawMessage               `json:"podSecurityPolicy"`
	OpenShift                     json.RawMessage               `json:"openShift"`
	PodSecurityContext            *corev1.PodSecurityContext    `json:"podSecurityContext"`
	HostNetwork                   *bool                         `json:"hostNetwork"`
	DNSPolicy                     corev1.DNSPolicy              `json:"dnsPolicy"`
	DNSConfig                     *corev1.PodDNSConfig          `json:"dnsConfig"`
	HostAliases                   []corev1.HostAlias            `json:"hostAliases"`
	SecurityContext               *corev1.SecurityContext       `json:"securityContext"`
	Service                       json.RawMessage               `json:"service"`
	ServiceMonitor                json.RawMessage               `json:"serviceMonitor"`
	PrometheusRule                json.RawMessage               `json:"prometheusRule"`
	Dashboards                    json.RawMessage               `json:"dashboards"`
	Lifecycle                     *corev1.Lifecycle             `json:"lifecycle"`
	LivenessProbe                 *corev1.Probe                 `json:"livenessProbe"`
	ReadinessProbe                *corev1.Probe                 `json:"readinessProbe"`
	Resources                     *corev1.ResourceRequirements  `json:"resources"`
	Ingress                       json.RawMessage               `json:"ingress"`
	Autoscaling                   *chartAutoscaling             `json:"autoscaling"`
	PodDisruptionBudget           *chartPDB                     `json:"podDisruptionBudget"`
	NodeSelector                  map[string]string             `json:"nodeSelector"`
	Tolerations                   []corev1.Toleration           `json:"tolerations"`
	Affinity                      *corev1.Affinity              `json:"affinity"`
	Labels                        map[string]string             `json:"labels"`
	Annotations                   map[string]string             `json:"annotations"`
	PodAnnotations                map[string]string             `json:"podAnnotations"`
	PodLabels                     map[string]string             `json:"podLabels"`
	MinReadySeconds               *int32                        `json:"minReadySeconds"`
	TerminationGracePeriodSeconds *int64                        `json:"terminationGracePeriodSeconds"`
	PriorityClassName             string                        `json:"priorityClassName"`
	Env                           []corev1.EnvVar               `json:"env"`
	EnvWithTpl                    []corev1.EnvVar               `json:"envWithTpl"`
	EnvFrom                       []corev1.EnvFromSource        `json:"envFrom"`
	ExtraContainers               json.RawMessage               `json:"extraContainers"`
	Flush                         json.Number                   `json:"flush"`
	MetricsPort                   int32                         `json:"metricsPort"`
	ExtraPorts                    []chartPort                   `json:"extraPorts"`
	ExtraVolumes                  []corev1.Volume               `json:"extraVolumes"`
	ExtraVolumeMounts             []corev1.VolumeMount          `json:"extraVolumeMounts"`
	UpdateStrategy                *appsv1.DeploymentStrategy    `json:"updateStrategy"`
	ExistingConfigMap             string                        `json:"existingConfigMap"`
	NetworkPolicy                 json.RawMessage               `json:"networkPolicy"`
	LuaScripts                    map[string]string             `json:"luaScripts"`
	Config                        *chartConfig                  `json:"config"`
	VolumeMounts                  []corev1.VolumeMount          `json:"volumeMounts"`
	DaemonSetVolumes              []corev1.Volume               `json:"daemonSetVolumes"`
	DaemonSetVolumeMounts         []corev1.VolumeMount          `json:"daemonSetVolumeMounts"`
	Command                       []string                      `json:"command"`
	Args                          []string                      `json:"args"`
	InitContainers                json.RawMessage               `json:"initContainers"`
	LogLevel                      string                        `json:"logLevel"`
	HotReload                     json.RawMessage               `json:"hotReload"`
}

type chartImage struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
	PullPolicy string `json:"pullPolicy"`
}

type chartTestFramework struct {
	Enabled   *bool           `json:"enabled"`
	Namespace string          `json:"namespace"`
	Image     json.RawMessage `json:"image"`
}

type chartServiceAccount struct {
	Create                       *bool             `json:"create"`
	Annotations                  map[string]string `json:"annotations"`
	Name                         string            `json:"name"`
	AutomountServiceAccountToken *bool             `json:"automountServiceAccountToken"`
}

type chartRBAC struct {
	Create       *bool `json:"create"`
	NodeAccess   *bool `json:"nodeAccess"`
	EventsAccess *bool `json:"eventsAccess"`
}

type chartAutoscaling struct {
	Enabled                           bool            `json:"enabled"`
	MinReplicas                       *int32          `json:"minReplicas"`
	MaxReplicas                       *int32          `json:"maxReplicas"`
	TargetCPUUtilizationPercentage    *int32          `json:"targetCPUUtilizationPercentage"`
	TargetMemoryUtilizationPercentage *int32          `json:"targetMemoryUtilizationPercentage"`
	CustomRules                       json.RawMessage `json:"customRules"`
	Behavior                          json.RawMessage `json:"behavior"`
	VPA                               *struct {
		Enabled             bool            `json:"enabled"`
		Annotations         json.RawMessage `json:"annotations"`
		ControlledResources json.RawMessage `json:"controlledResources"`
		ControlledValues    json.RawMessage `json:"controlledValues"`
		MaxAllowed          json.RawMessage `json:"maxAllowed"`
		MinAllowed          json.RawMessage `json:"minAllowed"`
		Recommender         json.RawMessage `json:"recommender"`
		UpdatePolicy        json.RawMessage `json:"updatePolicy"`
	} `json:"vpa"`
}

type chartPDB struct {
	Enabled        bool              `json:"enabled"`
	Annotations    map[string]string `json:"annotations"`
	MaxUnavailable json.RawMessage   `json:"maxUnavailable"`
}

type chartPort struct {
	Name          string          `json:"name"`
	Port          int32           `json:"port"`
	ContainerPort int32           `json:"containerPort"`
	Protocol      corev1.Protocol `json:"protocol"`
	NodePort      int32           `json:"nodePort"`
}

type chartConfig struct {
	Service       string            `json:"service"`
	Inputs        string            `json:"inputs"`
	Filters       string            `json:"filters"`
	Outputs       string            `json:"outputs"`
	CustomParsers string            `json:"customParsers"`
	Upstream      map[string]string `json:"upstream"`
	ExtraFiles    map[string]string `json:"extraFiles"`
}

// decodeChartValues decodes values strictly: unknown or duplicated keys and
// keys in the wrong case are errors.
func decodeChartValues(b []byte) (chartValues, error) {
	var v chartValues
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return v, err
	}
	strict, err := kjson.UnmarshalStrict(j, &v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return v, err
	}
	if len(strict) > 0 {
		var msgs []string
		for _, e := range strict {
			msgs = append(msgs, e.Error())
		}
		return v, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return v, nil
}

// Values files: a single exporter, and the DaemonSet with leader election.
const (
	helmValues          = "docker/helm/values.yaml"
	helmDaemonSetValues = "docker/helm/values-daemonset.yaml"
	helmRBAC            = "docker/helm/leader-election-rbac.yaml"
)

func loadHelmValues(t *testing.T, file string) chartValues {
	t.Helper()
	v, err := decodeChartValues(readRepoFile(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	v.file = file
	return v
}

var helmTplRE = regexp.MustCompile(`\{\{-?\s*\.Values\.([A-Za-z0-9_]+)\s*-?\}\}`)

// renderHelmConfig does what the chart's configmap.yaml does with
// config.service, inputs, filters and outputs: it runs them through tpl and
// joins them into fluent-bit.conf. Only {{ .Values.<key> }} is supported.
func renderHelmConfig(t *testing.T, v chartValues) string {
	t.Helper()
	raw := map[string]any{}
	if err := yaml.Unmarshal(readRepoFile(t, v.file), &raw); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, part := range []string{v.Config.Service, v.Config.Inputs, v.Config.Filters, v.Config.Outputs} {
		s := helmTplRE.ReplaceAllStringFunc(part, func(m string) string {
			key := helmTplRE.FindStringSubmatch(m)[1]
			val, ok := raw[key]
			if !ok {
				t.Errorf("%s: the configuration uses .Values.%s, which is not set", v.file, key)
			}
			return scalarString(val)
		})
		if strings.Contains(s, "{{") {
			t.Errorf("%s: only {{ .Values.<key> }} templates are supported by this test: %q", v.file, s)
		}
		out.WriteString(s)
		out.WriteString("\n")
	}
	return out.String()
}

func TestChartValuesDecodingIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown top-level key": "kind: Deployment\nreplicas: 1\n",
		"misspelt nested key":   "extraVolumeMounts:\n  - name: a\n    mountPath: /a\n    readonly: true\n",
		"duplicate key":         "kind: Deployment\nkind: DaemonSet\n",
	} {
		if _, err := decodeChartValues([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestHelmValues(t *testing.T) {
	for _, file := range []string{helmValues, helmDaemonSetValues} {
		t.Run(file, func(t *testing.T) { checkHelmValues(t, loadHelmValues(t, file)) })
	}
}

func checkHelmValues(t *testing.T, v chartValues) {
	img := loadDockerfile(t)
	daemonSet := v.file == helmDaemonSetValues
	switch {
	case daemonSet && v.Kind != "DaemonSet":
		t.Errorf("kind %q: want DaemonSet", v.Kind)
	case !daemonSet && v.Kind != "Deployment":
		t.Errorf("kind %q: must be Deployment (the chart's default DaemonSet runs a pod per node; that needs leader election, values-daemonset.yaml)", v.Kind)
	}
	if !daemonSet && (v.ReplicaCount == nil || *v.ReplicaCount != 1) {
		t.Error("replicaCount must be set to 1")
	}
	if !daemonSet && (v.UpdateStrategy == nil || v.UpdateStrategy.Type != appsv1.RecreateDeploymentStrategyType) {
		t.Error("updateStrategy.type must be Recreate")
	}
	if v.Autoscaling != nil && (v.Autoscaling.Enabled || (v.Autoscaling.VPA != nil && v.Autoscaling.VPA.Enabled)) {
		t.Error("autoscaling must stay disabled (more pods export events again)")
	}
	if v.Image.Repository == "" || v.Image.Tag == "" {
		t.Error("image.repository and image.tag must be set (the chart's default image has no Teleport plugin)")
	}
	checkImage(t, v.file+" image", v.Image.Repository+":"+v.Image.Tag)
	if v.TestFramework == nil || v.TestFramework.Enabled == nil || *v.TestFramework.Enabled {
		t.Error("testFramework.enabled must be false (its pod uses busybox:latest)")
	}
	if v.ExistingConfigMap != "" {
		t.Error("existingConfigMap would ignore the config below")
	}

	psc := v.PodSecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != nonrootUID ||
		psc.FSGroup == nil || *psc.FSGroup != nonrootUID {
		t.Errorf("podSecurityContext must set runAsNonRoot, runAsUser %d and fsGroup %d", nonrootUID, nonrootUID)
	}
	checkContainerSecurity(t, v.file+" securityContext", v.SecurityContext)

	if len(v.Command) > 0 || len(v.Args) > 0 || len(v.VolumeMounts) > 0 {
		t.Error("keep the chart's command, args and volumeMounts: they start Fluent Bit with the rendered fluent-bit.conf")
	}
	// The chart mounts its ConfigMap at /fluent-bit/etc/conf.
	mounts := append([]corev1.VolumeMount{{Name: "config", MountPath: "/fluent-bit/etc/conf", ReadOnly: true}}, v.ExtraVolumeMounts...)
	volumes := map[string]corev1.Volume{}
	for _, vol := range v.ExtraVolumes {
		volumes[vol.Name] = vol
	}
	for _, m := range v.ExtraVolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("extraVolumeMounts %s: no extraVolumes entry of that name", m.Name)
		}
		for _, f := range []string{img.SOPath, img.PluginsFile, "/fluent-bit/bin/fluent-bit", "/fluent-bit/etc/conf/fluent-bit.conf"} {
			if under(f, m.MountPath) {
				t.Errorf("extraVolumeMounts %s at %s hides %s", m.Name, m.MountPath, f)
			}
		}
	}
	mountOf := func(file string) (corev1.VolumeMount, corev1.Volume, bool) {
		var best corev1.VolumeMount
		for _, m := range mounts {
			if under(file, m.MountPath) && len(m.MountPath) > len(best.MountPath) {
				best = m
			}
		}
		return best, volumes[best.Name], best.Name != ""
	}

	if v.Config == nil {
		t.Fatal("config is not set: the chart's default collects container logs")
	}
	sections := parseClassic(t, renderHelmConfig(t, v))
	var service, in *section
	for i, s := range sections {
		switch {
		case s.Name == "service":
			service = &sections[i]
		case s.Name == "input" && strings.EqualFold(get(s, "name"), "teleport"):
			if in != nil {
				t.Error("config.inputs: more than one teleport input")
			}
			in = &sections[i]
		case s.Name == "input":
			t.Errorf("config.inputs: input %q is not expected in the Teleport release", get(s, "name"))
		}
	}
	if service == nil || in == nil {
		t.Fatal("config: want a [SERVICE] section and a teleport [INPUT]")
	}
	checkInputKeys(t, v.file+" config.inputs", *in)
	if got := get(*service, "plugins_file"); got != img.PluginsFile {
		t.Errorf("config.service Plugins_File %q: the image has the plugins file at %s", got, img.PluginsFile)
	}
	for _, k := range []string{"http_server", "health_check"} {
		if !strings.EqualFold(get(*service, k), "on") {
			t.Errorf("config.service: %s must be On (the probes use it)", k)
		}
	}
	if get(*service, "http_port") != fmt.Sprint(v.MetricsPort) {
		t.Errorf("config.service HTTP_Port %q differs from metricsPort %d", get(*service, "http_port"), v.MetricsPort)
	}

	env := map[string]string{}
	fields := map[string]string{}
	for _, e := range v.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if expandEnv(get(*in, "addr"), env) == "" {
		t.Error("the Teleport address is not set (env TELEPORT_ADDR)")
	}
	election := expandEnv(get(*in, "leader_election"), env)
	switch {
	case daemonSet && election != "kubernetes":
		t.Errorf("leader_election is %q: in a DaemonSet every pod would export every event", election)
	case !daemonSet && election != "" && election != "off":
		t.Errorf("leader_election is %q: a single replica needs none", election)
	}
	if daemonSet {
		checkHelmDaemonSet(t, v, fields)
	}
	for _, p := range []struct{ what, file string }{
		{"db", expandEnv(get(*in, "db"), env)},
		{"storage.path", expandEnv(get(*service, "storage.path"), env)},
	} {
		m, vol, ok := mountOf(p.file)
		switch {
		case daemonSet && (!ok || vol.HostPath == nil || m.ReadOnly):
			t.Errorf("%s %s must be on a writable hostPath mount (it comes back with the node)", p.what, p.file)
		case !daemonSet && (!ok || vol.PersistentVolumeClaim == nil || m.ReadOnly):
			t.Errorf("%s %s must be on a writable PersistentVolumeClaim mount (extraVolumes/extraVolumeMounts)", p.what, p.file)
		}
	}
	idFile := expandEnv(get(*in, "identity_file"), env)
	m, vol, ok := mountOf(idFile)
	switch {
	case !ok || vol.Secret == nil:
		t.Errorf("identity_file %s must be on a Secret volume", idFile)
	case !m.ReadOnly:
		t.Errorf("the identity volume %s must be mounted readOnly", m.Name)
	case vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o137 != 0:
		t.Errorf("the identity Secret needs defaultMode 0400 or 0440, got %s", fmtMode(vol.Secret.DefaultMode))
	}

	if v.ReadinessProbe == nil || v.ReadinessProbe.HTTPGet == nil || v.ReadinessProbe.HTTPGet.Path != "/api/v2/health" {
		t.Error("readinessProbe: want httpGet /api/v2/health")
	}
	if v.LivenessProbe == nil || v.LivenessProbe.HTTPGet == nil {
		t.Error("livenessProbe: want an httpGet on Fluent Bit's HTTP server")
	}
	for _, p := range v.ExtraPorts {
		if p.Name == "" || p.Port == 0 || p.ContainerPort == 0 || p.Protocol == "" {
			t.Errorf("extraPorts %+v: the chart needs name, port, containerPort and protocol", p)
		}
	}
}

// checkHelmDaemonSet checks what leader election needs from the chart: the
// candidate's name from the downward API, a service account with its token,
// bound by leader-election-rbac.yaml to the Role the Kubernetes manifests
// ship (the chart 0.58.x has no value for extra objects), and an init
// container that hands the hostPath to Fluent Bit's user.
func checkHelmDaemonSet(t *testing.T, v chartValues, fields map[string]string) {
	t.Helper()
	if fields["POD_NAME"] != "metadata.name" || fields["NODE_NAME"] != "spec.nodeName" {
		t.Error("env: POD_NAME and NODE_NAME must come from the downward API (metadata.name, spec.nodeName)")
	}
	sa := v.ServiceAccount
	if sa == nil || sa.Create == nil || !*sa.Create || sa.Name == "" || (sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken) {
		t.Fatal("serviceAccount: create one with a fixed name and its token mounted (the Lease is written with it)")
	}
	var inits []corev1.Container
	if err := json.Unmarshal(v.InitContainers, &inits); err != nil || findContainer(inits, isDataOwner) == nil {
		t.Errorf("initContainers: want one that chowns the hostPath to %d:%d with CHOWN only (%v)", nonrootUID, nonrootUID, err)
	}
	objs, err := decodeStrict(helmRBAC, readRepoFile(t, helmRBAC))
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *rbacv1.Role:
			role = x
		case *rbacv1.RoleBinding:
			binding = x
		default:
			t.Errorf("%s: only a Role and a RoleBinding belong here", o)
		}
	}
	if role == nil || binding == nil {
		t.Fatalf("%s: want a Role and a RoleBinding", helmRBAC)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != sa.Name || binding.RoleRef.Name != role.Name {
		t.Errorf("%s: the RoleBinding must bind Role %s to the chart's service account %s only", helmRBAC, role.Name, sa.Name)
	}
	k8s, err := decodeStrict("docker/kubernetes/daemonset/10-rbac.yaml", readRepoFile(t, "docker/kubernetes/daemonset/10-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range k8s {
		if r, ok := o.Obj.(*rbacv1.Role); ok && fmt.Sprint(r.Rules) != fmt.Sprint(role.Rules) {
			t.Errorf("%s: the Role's rules differ from %s (the one tests/kubeapi proves)", helmRBAC, o.File)
		}
	}
}
