package chart_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/edgelink/edgelink/tools/release"
)

const (
	repo       = "../../.."
	chartDir   = repo + "/deploy/helm/edgelink"
	fullValues = chartDir + "/ci/full-values.yaml"
	namespace  = "edge"
	configPath = "/etc/edgelink/edgelink.yaml"
)

// The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
var kubeVersion = &chartutil.KubeVersion{Version: "v1.27.0", Major: "1", Minor: "27"}

func loadValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(file)
	require.NoError(t, err)
	return v.AsMap()
}

// TestLint is helm lint --strict: no error and no warning, for the default
// values and for every option set.
func TestLint(t *testing.T) {
	for _, tc := range []struct{ name, values string }{{"default", ""}, {"full", fullValues}} {
		t.Run(tc.name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, loadValues(t, tc.values), namespace, kubeVersion)
			for _, m := range l.Messages {
				t.Logf("%s", m)
			}
			require.NotEmpty(t, l.Messages, "lint ran no rule")
			require.Less(t, l.HighestSeverity, support.WarningSev, "helm lint found problems")
		})
	}
}

// manifests is what the chart rendered, each object decoded strictly into
// its Kubernetes API type.
type manifests struct {
	order       []string // kind/name, as rendered
	notes       string
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	accounts    map[string]*corev1.ServiceAccount
	budgets     map[string]*policyv1.PodDisruptionBudget
	monitors    map[string]*monitoringv1.ServiceMonitor
}

// render is helm template: the chart with values, as release "site" in
// namespace "edge".
func render(t *testing.T, values map[string]any) *manifests {
	t.Helper()
	ch, err := loader.Load(chartDir)
	require.NoError(t, err)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "site", Namespace: namespace, IsInstall: true, Revision: 1}, caps)
	require.NoError(t, err)
	files, err := engine.Render(ch, vals)
	require.NoError(t, err)

	m := &manifests{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		accounts:    map[string]*corev1.ServiceAccount{},
		budgets:     map[string]*policyv1.PodDisruptionBudget{},
		monitors:    map[string]*monitoringv1.ServiceMonitor{},
	}
	for _, file := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(file, "NOTES.txt") {
			m.notes = files[file]
			continue
		}
		docs := releaseutil.SplitManifests(files[file])
		for _, key := range slices.SortedFunc(maps.Keys(docs), func(a, b string) int {
			return manifestIndex(a) - manifestIndex(b)
		}) {
			doc := docs[key]
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var head metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal([]byte(doc), &head), "%s: %s", file, doc)
			var obj interface{ GetName() string }
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				obj = decode(t, file, doc, m.deployments, &appsv1.Deployment{})
			case "v1 Service":
				obj = decode(t, file, doc, m.services, &corev1.Service{})
			case "v1 ConfigMap":
				obj = decode(t, file, doc, m.configMaps, &corev1.ConfigMap{})
			case "v1 Secret":
				obj = decode(t, file, doc, m.secrets, &corev1.Secret{})
			case "v1 ServiceAccount":
				obj = decode(t, file, doc, m.accounts, &corev1.ServiceAccount{})
			case "policy/v1 PodDisruptionBudget":
				obj = decode(t, file, doc, m.budgets, &policyv1.PodDisruptionBudget{})
			case "monitoring.coreos.com/v1 ServiceMonitor":
				obj = decode(t, file, doc, m.monitors, &monitoringv1.ServiceMonitor{})
			default:
				t.Fatalf("%s renders %s %s, which this test does not know: add it", file, head.APIVersion, head.Kind)
			}
			m.order = append(m.order, head.Kind+"/"+obj.GetName())
		}
	}
	return m
}

func manifestIndex(key string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "manifest-"))
	return n
}

// decode unmarshals doc into obj strictly (an unknown or duplicate field is
// an error) and files it under its name.
func decode[T interface{ GetName() string }](t *testing.T, file, doc string, into map[string]T, obj T) T {
	t.Helper()
	require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s does not decode strictly:\n%s", file, doc)
	name := obj.GetName()
	require.NotEmpty(t, name, "%s: an object without a name:\n%s", file, doc)
	require.NotContains(t, into, name, "%s: two objects of one kind named %s", file, name)
	into[name] = obj
	return obj
}

// component is what the chart makes for the agent or the fleet service.
type component struct {
	name    string // agent or fleet
	args    []string
	port    int32
	https   bool
	replica int32
}

func TestDefaultValues(t *testing.T) {
	m := render(t, map[string]any{})
	require.ElementsMatch(t, []string{
		"ServiceAccount/site-edgelink",
		"Deployment/site-edgelink-agent",
		"ConfigMap/site-edgelink-agent",
		"Service/site-edgelink-agent",
		"PodDisruptionBudget/site-edgelink-agent",
	}, m.order, "the default objects")
	agent := component{name: "agent", args: []string{"run", "-c", configPath}, port: 9644, replica: 2}
	d := checkComponent(t, m, "site-edgelink", agent,
		[]string{"CLOUD_USER=edgelink-test", "CLOUD_PASSWORD=not-a-password"})

	// Without affinity of their own, the replicas prefer different nodes.
	pod := d.Spec.Template
	require.NotNil(t, pod.Spec.Affinity)
	require.NotNil(t, pod.Spec.Affinity.PodAntiAffinity)
	terms := pod.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	require.Len(t, terms, 1)
	require.Equal(t, "kubernetes.io/hostname", terms[0].PodAffinityTerm.TopologyKey)
	require.True(t, matches(t, terms[0].PodAffinityTerm.LabelSelector, pod.Labels), "the anti-affinity does not select the agent's own pods")

	c := d.Spec.Template.Spec.Containers[0]
	require.Equal(t, "edgelink:0.1.0", c.Image, "the image's tag defaults to the chart's appVersion")
	require.Empty(t, c.EnvFrom, "no secret configured, none referenced")
	require.NotContains(t, d.Spec.Template.Annotations, "checksum/secret")
	require.Contains(t, m.notes, "No secretEnv, existingSecret, env or envFrom is set")
}

func TestFullValues(t *testing.T) {
	m := render(t, loadValues(t, fullValues))
	require.ElementsMatch(t, []string{
		"ServiceAccount/edgelink-berlin-sa",
		"Secret/edgelink-berlin",
		"Deployment/edgelink-berlin-agent",
		"ConfigMap/edgelink-berlin-agent",
		"Service/edgelink-berlin-agent",
		"PodDisruptionBudget/edgelink-berlin-agent",
		"ServiceMonitor/edgelink-berlin-agent",
		"Deployment/edgelink-berlin-fleet",
		"ConfigMap/edgelink-berlin-fleet",
		"Service/edgelink-berlin-fleet",
		"PodDisruptionBudget/edgelink-berlin-fleet",
		"ServiceMonitor/edgelink-berlin-fleet",
	}, m.order, "every object, with everything enabled")

	secret := m.secrets["edgelink-berlin"]
	require.Equal(t, corev1.SecretTypeOpaque, secret.Type)
	require.Equal(t, map[string]string{
		"CLOUD_USER": "edgelink-plant-berlin", "CLOUD_PASSWORD": "not-a-real-password", "EDGELINK_HTTP_TOKEN": "not-a-real-token",
	}, secret.StringData)
	// The configurations must validate with what the Secret holds, and nothing else.
	var env []string
	for k, v := range secret.StringData {
		env = append(env, k+"="+v)
	}
	agent := checkComponent(t, m, "edgelink-berlin", component{name: "agent", args: []string{"run", "-c", configPath}, port: 9700, https: true, replica: 3}, env)
	fleet := checkComponent(t, m, "edgelink-berlin", component{name: "fleet", args: []string{"fleet", "serve", "-c", configPath}, port: 9650, replica: 2}, env)

	for _, d := range []*appsv1.Deployment{agent, fleet} {
		pod := d.Spec.Template
		c := pod.Spec.Containers[0]
		require.Equal(t, "edgelink:v1.2.3", c.Image)
		require.Equal(t, corev1.PullAlways, c.ImagePullPolicy)
		require.Equal(t, []corev1.LocalObjectReference{{Name: "pull-secret"}}, pod.Spec.ImagePullSecrets)
		require.Equal(t, "edge-critical", pod.Spec.PriorityClassName)
		require.Equal(t, "edgelink-berlin-sa", pod.Spec.ServiceAccountName)

		// Secrets as environment: the chart's Secret, the operator's own, and the extra envFrom.
		require.Len(t, c.EnvFrom, 3)
		require.Equal(t, "edgelink-berlin", c.EnvFrom[0].SecretRef.Name)
		require.Equal(t, "edgelink-extra", c.EnvFrom[1].SecretRef.Name)
		require.Equal(t, "edgelink-env", c.EnvFrom[2].ConfigMapRef.Name)
		require.Equal(t, "GOMEMLIMIT", c.Env[0].Name)
		require.Equal(t, "spec.nodeName", c.Env[1].ValueFrom.FieldRef.FieldPath)
		sum := sha256.Sum256([]byte("CLOUD_PASSWORD: not-a-real-password\nCLOUD_USER: edgelink-plant-berlin\nEDGELINK_HTTP_TOKEN: not-a-real-token"))
		require.Equal(t, hex.EncodeToString(sum[:]), pod.Annotations["checksum/secret"], "a changed secret must roll the pods")

		// Secrets as files, read-only, readable by the pod's group only.
		for _, sm := range []struct{ name, secret, path string }{
			{"secret-cloud-ca", "cloud-ca", "/etc/edgelink/cloud-ca"},
			{"secret-http-tls", "edgelink-http-tls", "/etc/edgelink/http-tls"},
			{"secret-fleet-token", "edgelink-fleet-token", "/etc/edgelink/fleet-token"},
		} {
			mount := findMount(t, c, sm.name)
			require.Equal(t, sm.path, mount.MountPath)
			require.True(t, mount.ReadOnly)
			vol := findVolume(t, pod.Spec, sm.name)
			require.NotNil(t, vol.Secret, sm.name)
			require.Equal(t, sm.secret, vol.Secret.SecretName)
			require.Equal(t, int32(0o440), *vol.Secret.DefaultMode)
		}

		// Scheduling as given, in place of the default anti-affinity.
		require.Equal(t, map[string]string{"node-role.kubernetes.io/edge": "true"}, pod.Spec.NodeSelector)
		require.Equal(t, "edge", pod.Spec.Tolerations[0].Key)
		require.NotNil(t, pod.Spec.Affinity.NodeAffinity)
		require.Nil(t, pod.Spec.Affinity.PodAntiAffinity)
		require.Len(t, pod.Spec.TopologySpreadConstraints, 1)
	}
	require.Equal(t, "512Mi", agent.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String())
	require.Equal(t, "1Gi", fleet.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String())
	require.Equal(t, "edge", agent.Spec.Template.Annotations["example.com/team"])
	require.Equal(t, "plant", agent.Spec.Template.Labels["tier"])
	require.Equal(t, corev1.ServiceTypeNodePort, m.services["edgelink-berlin-agent"].Spec.Type)
	require.Equal(t, "edgelink", m.accounts["edgelink-berlin-sa"].Annotations["example.com/purpose"])

	// The ServiceMonitors: one per component, each selecting that
	// component's Service only, scraping /metrics on the http port with the
	// token and the scheme the component serves.
	for _, c := range []struct {
		name   string
		scheme monitoringv1.Scheme
	}{{"agent", monitoringv1.SchemeHTTPS}, {"fleet", monitoringv1.SchemeHTTP}} {
		name := "edgelink-berlin-" + c.name
		sm := m.monitors[name]
		require.NotNil(t, sm, name)
		require.Equal(t, "prometheus", sm.Labels["release"])
		for svcName, svc := range m.services {
			selector, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			require.NoError(t, err)
			require.Equal(t, svcName == name, selector.Matches(labels.Set(svc.Labels)), "ServiceMonitor %s against Service %s", name, svcName)
		}
		require.Len(t, sm.Spec.Endpoints, 1)
		ep := sm.Spec.Endpoints[0]
		require.Equal(t, "http", ep.Port)
		require.Equal(t, "/metrics", ep.Path)
		require.Equal(t, c.scheme, *ep.Scheme)
		require.Equal(t, monitoringv1.Duration("15s"), ep.Interval)
		require.Equal(t, "Bearer", ep.Authorization.Type)
		require.Equal(t, "edgelink-berlin", ep.Authorization.Credentials.Name)
		require.Equal(t, "EDGELINK_HTTP_TOKEN", ep.Authorization.Credentials.Key)
		require.Equal(t, "edgelink-http-tls", ep.TLSConfig.CA.Secret.Name)
	}
	// The PodDisruptionBudgets keep to their own component.
	for pdbName, pdb := range m.budgets {
		for dName, d := range m.deployments {
			require.Equal(t, pdbName == dName, matches(t, pdb.Spec.Selector, d.Spec.Template.Labels), "PodDisruptionBudget %s against the pods of %s", pdbName, dName)
		}
	}
}

// TestConfigChangeRollsPods: a changed configuration changes the pods'
// template (the checksum/config annotation), so the Deployment rolls them;
// an unchanged one leaves it as it was.
func TestConfigChangeRollsPods(t *testing.T) {
	values := func(site string) map[string]any {
		v := loadValues(t, fullValues)
		v["agent"].(map[string]any)["config"].(map[string]any)["site"] = site
		return v
	}
	a := render(t, values("plant-berlin")).deployments["edgelink-berlin-agent"].Spec.Template.Annotations["checksum/config"]
	again := render(t, values("plant-berlin")).deployments["edgelink-berlin-agent"].Spec.Template.Annotations["checksum/config"]
	b := render(t, values("plant-hamburg")).deployments["edgelink-berlin-agent"].Spec.Template.Annotations["checksum/config"]
	require.Len(t, a, 64)
	require.Equal(t, a, again)
	require.NotEqual(t, a, b, "a new site must roll the pods")
}

// TestProbesFollowTLS: with http.tls the probes speak HTTPS; without, HTTP.
func TestProbesFollowTLS(t *testing.T) {
	v := loadValues(t, "")
	require.NoError(t, yaml.Unmarshal([]byte(`{agent: {config: {site: s, clusters: {a: {bootstrap: ["a:9092"]}}, http: {tls: {cert_file: /c, key_file: /k}}}}}`), &v))
	m := render(t, v)
	c := m.deployments["site-edgelink-agent"].Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		require.Equal(t, corev1.URISchemeHTTPS, p.HTTPGet.Scheme)
	}
	cfg := parseConfig(t, m.configMaps["site-edgelink-agent"])
	require.Equal(t, map[string]any{"listen": "0.0.0.0:9644", "tls": map[string]any{"cert_file": "/c", "key_file": "/k"}}, cfg["http"])
}

// checkComponent checks what a component's Deployment, ConfigMap, Service
// and PodDisruptionBudget say together, and that its configuration passes
// edgelink check with env; it returns the Deployment.
func checkComponent(t *testing.T, m *manifests, fullname string, want component, env []string) *appsv1.Deployment {
	t.Helper()
	name := fullname + "-" + want.name
	d := m.deployments[name]
	require.NotNil(t, d, "Deployment %s", name)
	require.Equal(t, want.replica, *d.Spec.Replicas)
	pod := d.Spec.Template
	require.True(t, matches(t, d.Spec.Selector, pod.Labels), "the Deployment's selector does not select its pods")
	require.Equal(t, want.name, pod.Labels["app.kubernetes.io/component"])
	for other, od := range m.deployments {
		if other != name {
			require.False(t, matches(t, d.Spec.Selector, od.Spec.Template.Labels), "Deployment %s selects the pods of %s", name, other)
		}
	}

	// Not root, as the image: its user, no privilege, a read-only root.
	ps := pod.Spec.SecurityContext
	require.NotNil(t, ps)
	require.True(t, *ps.RunAsNonRoot)
	require.Equal(t, int64(release.ImageUID), *ps.RunAsUser, "the image's user")
	require.Equal(t, int64(release.ImageGID), *ps.RunAsGroup)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, ps.SeccompProfile.Type)
	require.False(t, *pod.Spec.AutomountServiceAccountToken, "edgelink never talks to the Kubernetes API")
	require.Contains(t, m.accounts, pod.Spec.ServiceAccountName)
	require.Len(t, pod.Spec.Containers, 1)
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	require.NotNil(t, sc)
	require.True(t, *sc.ReadOnlyRootFilesystem)
	require.False(t, *sc.AllowPrivilegeEscalation)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	require.Equal(t, want.args, c.Args)
	require.Empty(t, c.Command, "the image's entrypoint runs")

	// One port, http, and every probe on it: /healthz while the process
	// serves, /readyz once its links (or the fleet's topics) are read.
	require.Equal(t, []corev1.ContainerPort{{Name: "http", ContainerPort: want.port, Protocol: corev1.ProtocolTCP}}, c.Ports)
	scheme := corev1.URISchemeHTTP
	if want.https {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.StartupProbe, "/healthz"}, {c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		require.NotNil(t, p.probe)
		require.NotNil(t, p.probe.HTTPGet)
		require.Equal(t, p.path, p.probe.HTTPGet.Path)
		require.Equal(t, "http", p.probe.HTTPGet.Port.String())
		require.Equal(t, scheme, p.probe.HTTPGet.Scheme)
	}

	// The configuration: a ConfigMap mounted read-only at the path the
	// container is given, listening where the probes knock.
	mount := findMount(t, c, "config")
	require.Equal(t, configPath, mount.MountPath)
	require.Equal(t, "edgelink.yaml", mount.SubPath)
	require.True(t, mount.ReadOnly)
	vol := findVolume(t, pod.Spec, "config")
	require.NotNil(t, vol.ConfigMap)
	cm := m.configMaps[vol.ConfigMap.Name]
	require.NotNil(t, cm, "ConfigMap %s", vol.ConfigMap.Name)
	cfg := parseConfig(t, cm)
	require.Equal(t, fmt.Sprintf("0.0.0.0:%d", want.port), cfg["http"].(map[string]any)["listen"])
	sum := sha256.Sum256([]byte(cm.Data["edgelink.yaml"]))
	require.Equal(t, hex.EncodeToString(sum[:]), pod.Annotations["checksum/config"], "checksum/config must be the ConfigMap's content")
	checkConfig(t, name, cm.Data["edgelink.yaml"], env)
	// The writable places under a read-only root.
	for _, dir := range []string{"/tmp", release.ImageWorkDir} {
		found := false
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == dir {
				found = true
				require.NotNil(t, findVolume(t, pod.Spec, vm.Name).EmptyDir, dir)
			}
		}
		require.True(t, found, "nothing writable mounted at %s", dir)
	}

	// The Service reaches these pods, on the http port.
	svc := m.services[name]
	require.NotNil(t, svc, "Service %s", name)
	require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)), "the Service does not select the pods")
	require.Len(t, svc.Spec.Ports, 1)
	require.Equal(t, want.port, svc.Spec.Ports[0].Port)
	require.Equal(t, "http", svc.Spec.Ports[0].TargetPort.String())
	require.True(t, svc.Spec.PublishNotReadyAddresses, "an agent whose link is down must still be scraped")

	// A node drain takes one pod at a time, and never waits on one that is
	// not ready.
	pdb := m.budgets[name]
	require.NotNil(t, pdb, "PodDisruptionBudget %s", name)
	require.True(t, matches(t, pdb.Spec.Selector, pod.Labels), "the PodDisruptionBudget does not select the pods")
	require.Equal(t, "1", pdb.Spec.MaxUnavailable.String())
	require.Equal(t, policyv1.AlwaysAllow, *pdb.Spec.UnhealthyPodEvictionPolicy)
	return d
}

func matches(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	require.NotNil(t, sel)
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	require.False(t, s.Empty(), "an empty selector selects everything")
	return s.Matches(labels.Set(set))
}

func findMount(t *testing.T, c corev1.Container, name string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("container %s mounts no volume %s", c.Name, name)
	return corev1.VolumeMount{}
}

func findVolume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

func parseConfig(t *testing.T, cm *corev1.ConfigMap) map[string]any {
	t.Helper()
	require.Equal(t, []string{"edgelink.yaml"}, slices.Sorted(maps.Keys(cm.Data)))
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["edgelink.yaml"]), &cfg))
	return cfg
}

// checkConfig runs edgelink check on a rendered configuration, with env as
// its only environment besides PATH.
func checkConfig(t *testing.T, name, config string, env []string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "edgelink.yaml")
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))
	cmd := exec.CommandContext(t.Context(), edgelink(t), "check", "-c", file)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "edgelink check of %s's configuration:\n%s\n%s", name, out, config)
	require.Contains(t, string(out), ": valid")
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// edgelink is the binary of the release in dist/ for this machine, or one
// built from the tree when there is no release (EDGELINK_DIST moves dist/).
func edgelink(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir := os.Getenv("EDGELINK_DIST")
		if dir == "" {
			dir = filepath.Join(repo, "dist")
		}
		if d, err := release.ReadDist(dir); err == nil {
			a, err := release.HostArch()
			if err != nil {
				binErr = err
				return
			}
			binPath = d.Path(release.BinaryName(d.Version, a))
			return
		} else if os.Getenv("EDGELINK_RELEASE") == "required" {
			binErr = fmt.Errorf("no release in %s (EDGELINK_RELEASE=required): %w", dir, err)
			return
		}
		if binDir, binErr = os.MkdirTemp("", "edgelink-chart-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "edgelink")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/edgelink")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build edgelink: %w\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
