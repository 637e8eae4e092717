package deploy_test

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

const (
	chart     = "helm/tokenwatt"
	examples  = chart + "/examples"
	namespace = "llm"
)

// helm returns the helm binary on PATH: a missing one skips the test, or
// fails it when CI is set (.ci/run puts scripts/helm's on PATH).
func helm(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("helm")
	if err == nil {
		return path
	}
	msg := `helm not found on PATH: export PATH="$(scripts/helm):$PATH" builds the pinned Helm (.ci/run does)`
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// A values combination the chart must lint and render: helm arguments
// after the chart (-f FILE, --set K=V).
type combo struct {
	name string
	args []string
	// startDelay is loadgen.startDelay where it is not the default 2m;
	// givenStart says loadgen.startAt is set.
	startDelay time.Duration
	givenStart bool
}

// exampleCombos are the documented example values files, as the README and
// the files' own headers use them. Every file in examples/ must be in one
// (TestExamplesAreRendered).
var exampleCombos = []combo{
	{name: "examples/shared", args: []string{"-f", examples + "/shared.yaml"}},
	{name: "examples/shared+soak", args: []string{"-f", examples + "/shared.yaml", "-f", examples + "/soak.yaml"}},
	{name: "examples/run", args: []string{"-f", examples + "/run.yaml"}, startDelay: 3 * time.Minute},
	{name: "examples/dcgm-exporter", args: []string{"-f", examples + "/dcgm-exporter.yaml"}},
	{name: "examples/remote-write", args: []string{"-f", examples + "/shared.yaml", "-f", examples + "/remote-write.yaml"}},
	{name: "examples/scenario-file", args: []string{"-f", examples + "/scenario-file.yaml"}, givenStart: true},
}

// combos: the defaults, the examples, every mode with every results
// volume, the exporter and the monitoring on and off, and each optional
// value that adds or changes an object.
func combos() []combo {
	cs := []combo{{name: "defaults"}}
	cs = append(cs, exampleCombos...)
	for _, mode := range []string{"none", "job", "soak"} {
		for _, volume := range []string{"emptyDir", "pvc"} {
			for _, exporter := range []bool{true, false} {
				for _, monitoring := range []bool{true, false} {
					set := fmt.Sprintf("loadgen.mode=%s,loadgen.results.volume=%s,energyExporter.enabled=%t,monitoring.enabled=%t",
						mode, volume, exporter, monitoring)
					cs = append(cs, combo{name: set, args: []string{"--set", set}})
				}
			}
		}
	}
	for _, set := range []string{
		"loadgen.mode=job,loadgen.shards=3",
		"loadgen.mode=job,loadgen.shards=1,loadgen.startAt=2026-12-01T12:00:00Z",
		"loadgen.mode=job,loadgen.job.ttlSecondsAfterFinished=600,loadgen.job.activeDeadlineSeconds=7200,loadgen.job.backoffLimit=1",
		"loadgen.mode=job,loadgen.results.volume=pvc,loadgen.results.pvc.existingClaim=results,loadgen.results.pvc.storageClassName=fast",
		"loadgen.mode=soak,loadgen.push.url=http://vm:8428/api/v1/import/prometheus,loadgen.push.interval=5s",
		"loadgen.mode=soak,loadgen.push.urlSecret.name=push,loadgen.push.urlSecret.key=url",
		"loadgen.mode=soak,loadgen.apiKeySecret.name=key,loadgen.apiKeySecret.key=token,loadgen.model=m,loadgen.runId=soak-1",
		"loadgen.mode=job,loadgen.energy=scrape:http://10.0.0.5:9466/metrics,loadgen.gpuSelector=hostname=\"gpu-1\"",
		"loadgen.mode=job,loadgen.podAnnotations.a=b,loadgen.podLabels.team=ml,loadgen.nodeSelector.pool=cpu",
		"monitoring.rules.enabled=false,grafana.dashboards.enabled=false,grafana.datasource.enabled=false",
		"monitoring.scrapeNativeHistograms=false,monitoring.labels.release=kps,monitoring.interval=30s",
		"remoteWrite.enabled=true,remoteWrite.url=http://vminsert:8480/insert/0/prometheus/api/v1/write",
		"energyExporter.source=dcgm,energyExporter.dcgmAddr=dcgm:5555,energyExporter.runtimeClassName=nvidia,energyExporter.priorityClassName=system-node-critical",
		"fullnameOverride=tw,imagePullSecrets[0].name=regcred",
		"nameOverride=watt",
	} {
		cs = append(cs, combo{name: set, args: []string{"--set", set}, givenStart: strings.Contains(set, "loadgen.startAt=")})
	}
	// Unix seconds: a string, as the schema wants (--set would make it a
	// number).
	set := "loadgen.mode=job,loadgen.shards=2"
	cs = append(cs, combo{name: set + ",loadgen.startAt=1764590400", args: []string{"--set", set, "--set-string", "loadgen.startAt=1764590400"}, givenStart: true})
	return cs
}

// TestChartRenders lints and renders every combination, decodes every
// object strictly into its Go type and checks what each must hold.
func TestChartRenders(t *testing.T) {
	bin := helm(t)
	for _, c := range combos() {
		t.Run(c.name, func(t *testing.T) {
			lint := append([]string{"lint", "--strict", "--namespace", namespace, chart}, c.args...)
			if out, err := exec.Command(bin, lint...).CombinedOutput(); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(lint, " "), err, out)
			}
			before := time.Now()
			objs := render(t, bin, "rel", c.args...)
			after := time.Now()
			checkObjects(t, objs)
			checkStartAt(t, c, objs, before, after)
		})
	}
}

// render runs helm template and decodes every object strictly.
func render(t *testing.T, bin, release string, args ...string) []object {
	t.Helper()
	cmd := append([]string{"template", release, chart, "--namespace", namespace}, args...)
	var stderr bytes.Buffer
	c := exec.Command(bin, cmd...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(cmd, " "), err, stderr.Bytes())
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(cmd, " "), err)
	}
	return objs
}

// object is one rendered object, decoded into its Go type.
type object struct {
	kind, name string
	obj        any
}

// newObject returns a pointer to the Go type of apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "monitoring.coreos.com/v1 PodMonitor":
		return &monitoringv1.PodMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	case "monitoring.coreos.com/v1alpha1 PrometheusAgent":
		return &monitoringv1alpha1.PrometheusAgent{}, true
	}
	return nil, false
}

// decodeAll splits helm's output into documents and decodes each into
// its Go type strictly: an unknown field, a field in the wrong case, a
// duplicate key or a wrong type is an error.
func decodeAll(out []byte) ([]object, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue // comments only
		}
		o, err := decodeObject(js)
		if err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		objs = append(objs, o)
	}
}

func decodeObject(js []byte) (object, error) {
	var tm struct {
		metav1.TypeMeta
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return object{}, err
	}
	v, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return object{}, fmt.Errorf("%s %s %s: a kind the test does not know", tm.APIVersion, tm.Kind, tm.Metadata.Name)
	}
	strict, err := sigsjson.UnmarshalStrict(js, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return object{}, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
	}
	if len(strict) > 0 {
		return object{}, fmt.Errorf("%s %s: %v", tm.Kind, tm.Metadata.Name, errors.Join(strict...))
	}
	if tm.Metadata.Name == "" {
		return object{}, fmt.Errorf("%s without a name", tm.Kind)
	}
	if len(tm.Metadata.Name) > 63 {
		return object{}, fmt.Errorf("%s %s: name longer than 63 characters", tm.Kind, tm.Metadata.Name)
	}
	return object{kind: tm.Kind, name: tm.Metadata.Name, obj: v}, nil
}

// pod is a rendered pod template and what owns it.
type pod struct {
	owner string
	meta  metav1.ObjectMeta
	spec  corev1.PodSpec
}

// checkObjects checks what holds across one rendering's objects:
// selectors select their pods, PodMonitors a named port, volumes and
// ConfigMaps and claims referenced exist, the exporter asks for no
// privilege, the Job's shards, the rules and dashboards their sources.
func checkObjects(t *testing.T, objs []object) {
	t.Helper()
	configMaps := map[string]*corev1.ConfigMap{}
	claims := map[string]bool{}
	var pods []pod
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
		case *corev1.PersistentVolumeClaim:
			claims[v.Name] = true
		case *appsv1.DaemonSet:
			checkSelector(t, o, v.Spec.Selector, v.Spec.Template.Labels)
			pods = append(pods, pod{o.kind + " " + o.name, v.Spec.Template.ObjectMeta, v.Spec.Template.Spec})
			checkExporter(t, v)
		case *appsv1.Deployment:
			checkSelector(t, o, v.Spec.Selector, v.Spec.Template.Labels)
			if v.Spec.Replicas == nil || *v.Spec.Replicas != 1 || v.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("%s %s: a soak is one pod, recreated (never two at once)", o.kind, o.name)
			}
			pods = append(pods, pod{o.kind + " " + o.name, v.Spec.Template.ObjectMeta, v.Spec.Template.Spec})
		case *batchv1.Job:
			pods = append(pods, pod{o.kind + " " + o.name, v.Spec.Template.ObjectMeta, v.Spec.Template.Spec})
			checkJob(t, v)
		}
	}
	for _, p := range pods {
		checkPod(t, p, configMaps, claims)
	}
	var rules []*monitoringv1.PrometheusRule
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *monitoringv1.PodMonitor:
			checkPodMonitor(t, v, pods)
		case *monitoringv1.PrometheusRule:
			rules = append(rules, v)
		case *corev1.ConfigMap:
			checkConfigMap(t, v)
		case *rbacv1.RoleBinding:
			if !slices.ContainsFunc(objs, func(r object) bool { return r.kind == v.RoleRef.Kind && r.name == v.RoleRef.Name }) {
				t.Errorf("RoleBinding %s: no %s %s rendered", v.Name, v.RoleRef.Kind, v.RoleRef.Name)
			}
		case *monitoringv1alpha1.PrometheusAgent:
			if !slices.ContainsFunc(objs, func(r object) bool { return r.kind == "ServiceAccount" && r.name == v.Spec.ServiceAccountName }) {
				t.Errorf("PrometheusAgent %s: no ServiceAccount %s rendered", v.Name, v.Spec.ServiceAccountName)
			}
		}
	}
	if len(rules) > 0 {
		checkRules(t, rules)
	}
}

func checkSelector(t *testing.T, o object, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s %s: selector %v does not select its pods %v (%v)", o.kind, o.name, sel, podLabels, err)
	}
}

// existingClaims are the loadgen.results.pvc.existingClaim values of the
// combinations.
var existingClaims = map[string]bool{"results": true, "tokenwatt-results": true}

// checkPod: a pod template mounts no service account token, no host
// namespace or path; its mounts, ConfigMaps and claims exist; its
// containers are unprivileged, request no GPU and have NODE_NAME.
func checkPod(t *testing.T, p pod, configMaps map[string]*corev1.ConfigMap, claims map[string]bool) {
	t.Helper()
	if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not use", p.owner)
	}
	if p.spec.HostPID || p.spec.HostNetwork || p.spec.HostIPC {
		t.Errorf("%s: uses the host's PID, network or IPC namespace", p.owner)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range p.spec.Volumes {
		volumes[v.Name] = v
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", p.owner, v.Name)
		}
		if v.ConfigMap != nil && configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("%s: volume %s: no ConfigMap %s rendered", p.owner, v.Name, v.ConfigMap.Name)
		}
		if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] && !existingClaims[v.PersistentVolumeClaim.ClaimName] {
			t.Errorf("%s: volume %s: no claim %s rendered (nor the existing claim of the combination)", p.owner, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	for _, c := range p.spec.Containers {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("%s: container %s mounts %s, which is no volume", p.owner, c.Name, m.Name)
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || (sc.Privileged != nil && *sc.Privileged) ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: container %s: not unprivileged with every capability dropped: %+v", p.owner, c.Name, sc)
		}
		if _, ok := c.Resources.Requests["nvidia.com/gpu"]; ok {
			t.Errorf("%s: container %s requests a GPU", p.owner, c.Name)
		}
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }) {
			t.Errorf("%s: container %s has no port named metrics", p.owner, c.Name)
		}
		checkNodeName(t, p.owner, c)
	}
}

// checkNodeName: NODE_NAME, the GPUs' hostname label, comes from the
// downward API.
func checkNodeName(t *testing.T, owner string, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" {
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
				t.Errorf("%s: NODE_NAME is not the downward API's spec.nodeName", owner)
			}
			return
		}
	}
	t.Errorf("%s: container %s has no NODE_NAME", owner, c.Name)
}

// checkExporter: the exporter runs on GPU nodes with the device plugin's
// toleration and reads every GPU through the NVIDIA runtime.
func checkExporter(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if spec.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("DaemonSet %s: nodeSelector %v does not choose GPU nodes", ds.Name, spec.NodeSelector)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == "nvidia.com/gpu" }) {
		t.Errorf("DaemonSet %s: does not tolerate the nvidia.com/gpu taint", ds.Name)
	}
	c := spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != "all" || env["NVIDIA_DRIVER_CAPABILITIES"] != "utility" {
		t.Errorf("DaemonSet %s: NVIDIA_VISIBLE_DEVICES/NVIDIA_DRIVER_CAPABILITIES are %q/%q, want all/utility",
			ds.Name, env["NVIDIA_VISIBLE_DEVICES"], env["NVIDIA_DRIVER_CAPABILITIES"])
	}
	if !slices.Contains(c.Args, "--gpus=all") {
		t.Errorf("DaemonSet %s: args %q lack --gpus=all", ds.Name, c.Args)
	}
}

var shardArg = regexp.MustCompile(`^--shard=\$\(JOB_COMPLETION_INDEX\)/([0-9]+)$`)

// checkJob: an Indexed Job of N pods at once, each told its shard of N;
// each shard writes its own directory.
func checkJob(t *testing.T, job *batchv1.Job) {
	t.Helper()
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("Job %s: completionMode is not Indexed", job.Name)
	}
	if job.Spec.Completions == nil || job.Spec.Parallelism == nil || *job.Spec.Completions != *job.Spec.Parallelism {
		t.Fatalf("Job %s: parallelism and completions differ", job.Name)
	}
	n := int(*job.Spec.Completions)
	args := job.Spec.Template.Spec.Containers[0].Args
	shards := 1
	for _, a := range args {
		if m := shardArg.FindStringSubmatch(a); m != nil {
			shards, _ = strconv.Atoi(m[1])
		}
	}
	if shards != n {
		t.Errorf("Job %s: %d pods, but args %q say %d shards", job.Name, n, args, shards)
	}
	if n > 1 && !slices.Contains(args, "--out=/results/shard-$(JOB_COMPLETION_INDEX)") {
		t.Errorf("Job %s: shards share an output directory: %q", job.Name, args)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job %s: restartPolicy %s, want Never (a restarted shard would start late)", job.Name, job.Spec.Template.Spec.RestartPolicy)
	}
}

// checkStartAt: with several shards the Job passes one --start-at, also
// in its annotation; left to the chart, it is helm's time plus
// loadgen.startDelay, in RFC 3339.
func checkStartAt(t *testing.T, c combo, objs []object, before, after time.Time) {
	t.Helper()
	for _, o := range objs {
		job, ok := o.obj.(*batchv1.Job)
		if !ok {
			continue
		}
		var startAt string
		for _, a := range job.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--start-at="); ok {
				startAt = v
			}
		}
		if *job.Spec.Completions > 1 && startAt == "" {
			t.Errorf("Job %s: %d shards without --start-at", job.Name, *job.Spec.Completions)
		}
		if startAt != job.Annotations["tokenwatt.io/start-at"] {
			t.Errorf("Job %s: --start-at=%s, annotation %q", job.Name, startAt, job.Annotations["tokenwatt.io/start-at"])
		}
		if startAt == "" || c.givenStart {
			continue
		}
		at, err := time.Parse(time.RFC3339, startAt)
		if err != nil {
			t.Errorf("Job %s: computed --start-at=%s is not RFC 3339: %v", job.Name, startAt, err)
			continue
		}
		delay := cmp.Or(c.startDelay, 2*time.Minute)
		lo, hi := before.Add(delay).Truncate(time.Second), after.Add(delay)
		if at.Before(lo) || at.After(hi) || at.Location() != time.UTC {
			t.Errorf("Job %s: computed --start-at %s is not helm's time plus %v in UTC (%s..%s)", job.Name, startAt, delay, lo, hi)
		}
	}
}

// checkPodMonitor: a PodMonitor selects rendered pods with a port of the
// name it scrapes.
func checkPodMonitor(t *testing.T, pm *monitoringv1.PodMonitor, pods []pod) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Errorf("PodMonitor %s: selector %v: %v", pm.Name, pm.Spec.Selector, err)
		return
	}
	found := false
	for _, p := range pods {
		if !sel.Matches(labels.Set(p.meta.Labels)) {
			continue
		}
		found = true
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || !slices.ContainsFunc(p.spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool { return cp.Name == *ep.Port }) {
				t.Errorf("PodMonitor %s: %s has no port %v", pm.Name, p.owner, ep.Port)
			}
		}
	}
	if !found {
		t.Errorf("PodMonitor %s selects no rendered pod", pm.Name)
	}
}

// checkRules: the PrometheusRules are prometheus/rules/*.yml, each file's
// groups in one object.
func checkRules(t *testing.T, rules []*monitoringv1.PrometheusRule) {
	t.Helper()
	files, err := filepath.Glob("../prometheus/rules/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	if len(rules) != len(files) {
		t.Errorf("%d PrometheusRules for %d rule files", len(rules), len(files))
	}
	for _, f := range files {
		want := ruleFile(t, f)
		suffix := "-" + strings.ReplaceAll(strings.TrimSuffix(filepath.Base(f), ".yml"), ".", "-")
		i := slices.IndexFunc(rules, func(r *monitoringv1.PrometheusRule) bool { return strings.HasSuffix(r.Name, suffix) })
		if i < 0 {
			t.Errorf("no PrometheusRule for %s", f)
			continue
		}
		if !reflect.DeepEqual(rules[i].Spec, want) {
			t.Errorf("PrometheusRule %s differs from %s (go generate ./deploy copies it into the chart)", rules[i].Name, f)
		}
	}
}

// ruleFile decodes a Prometheus rule file strictly into the Operator's
// PrometheusRuleSpec: a field the Operator does not know fails here too.
func ruleFile(t *testing.T, path string) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	strict, err := sigsjson.UnmarshalStrict(js, &spec, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		t.Fatalf("%s as a PrometheusRule spec: %v", path, err)
	}
	if len(spec.Groups) == 0 {
		t.Fatalf("%s: no groups", path)
	}
	return spec
}

// checkConfigMap: a dashboard ConfigMap holds its grafana/dashboards file
// byte for byte; the datasource is the uid the dashboards query.
func checkConfigMap(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	switch {
	case strings.Contains(cm.Name, "-dashboard-"):
		if len(cm.Data) != 1 {
			t.Errorf("ConfigMap %s: %d keys, want one dashboard", cm.Name, len(cm.Data))
		}
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("ConfigMap %s: not labelled grafana_dashboard: \"1\" for the sidecar: %v", cm.Name, cm.Labels)
		}
		for key, got := range cm.Data {
			want, err := os.ReadFile(filepath.Join("../grafana/dashboards", key))
			if err != nil {
				t.Errorf("ConfigMap %s: %v", cm.Name, err)
			} else if got != string(want) {
				t.Errorf("ConfigMap %s: %s differs from grafana/dashboards/%s (go generate ./deploy copies it into the chart)", cm.Name, key, key)
			}
		}
	case strings.HasSuffix(cm.Name, "-datasource"):
		var ds struct {
			APIVersion  int `json:"apiVersion"`
			Datasources []struct {
				Name, UID, Type, Access, URL string
				Editable                     bool
				JSONData                     map[string]any `json:"jsonData"`
			} `json:"datasources"`
		}
		b := []byte(cm.Data["tokenwatt-datasource.yaml"])
		if err := yaml.UnmarshalStrict(b, &ds); err != nil || len(ds.Datasources) != 1 {
			t.Fatalf("ConfigMap %s: %v\n%s", cm.Name, err, b)
		}
		if d := ds.Datasources[0]; d.UID != "tokenwatt-prometheus" || d.Type != "prometheus" || !strings.HasPrefix(d.URL, "http") {
			t.Errorf("ConfigMap %s: datasource %+v is not the one the dashboards query (uid tokenwatt-prometheus)", cm.Name, d)
		}
		if cm.Labels["grafana_datasource"] != "1" {
			t.Errorf("ConfigMap %s: not labelled grafana_datasource: \"1\" for the sidecar: %v", cm.Name, cm.Labels)
		}
	}
}

// TestChartCopiesEqualSources: the chart's files/ are what go generate
// ./deploy copies, byte for byte, and nothing else.
func TestChartCopiesEqualSources(t *testing.T) {
	for _, c := range []struct{ src, dst string }{
		{"../prometheus/rules/*.yml", chart + "/files/rules"},
		{"../grafana/dashboards/*.json", chart + "/files/dashboards"},
	} {
		srcs, _ := filepath.Glob(c.src)
		dsts, _ := filepath.Glob(filepath.Join(c.dst, "*"))
		if len(srcs) == 0 {
			t.Fatalf("no %s", c.src)
		}
		var srcNames, dstNames []string
		for _, s := range srcs {
			srcNames = append(srcNames, filepath.Base(s))
		}
		for _, d := range dsts {
			dstNames = append(dstNames, filepath.Base(d))
		}
		if !slices.Equal(srcNames, dstNames) {
			t.Errorf("%s holds %v, %s %v: run go generate ./deploy", c.dst, dstNames, c.src, srcNames)
			continue
		}
		for i := range srcs {
			a, _ := os.ReadFile(srcs[i])
			b, _ := os.ReadFile(dsts[i])
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs from %s: run go generate ./deploy", dsts[i], srcs[i])
			}
		}
	}
}

// TestExamplesAreRendered: every example values file is rendered by
// TestChartRenders, its scenario (if any) is a valid scenario, and every
// example the README names exists.
func TestExamplesAreRendered(t *testing.T) {
	files, _ := filepath.Glob(examples + "/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		used := slices.ContainsFunc(exampleCombos, func(c combo) bool { return slices.Contains(c.args, f) })
		if !used {
			t.Errorf("%s is in no combination of TestChartRenders", f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Loadgen struct {
				ScenarioYAML string `json:"scenarioYAML"`
			} `json:"loadgen"`
		}
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if v.Loadgen.ScenarioYAML != "" {
			if _, err := scenario.Decode(strings.NewReader(v.Loadgen.ScenarioYAML), f+" loadgen.scenarioYAML"); err != nil {
				t.Errorf("%v", err)
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`deploy/helm/tokenwatt/examples/[a-z0-9.-]+\.yaml`).FindAllString(string(readme), -1) {
		if _, err := os.Stat("../" + m); err != nil {
			t.Errorf("README.md names %s: %v", m, err)
		}
	}
}

// TestValuesDocumented: values.yaml, values.schema.json and the chart
// README's table list the same keys, and the schema refuses a misspelt one.
func TestValuesDocumented(t *testing.T) {
	b, err := os.ReadFile(chart + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.UnmarshalStrict(b, &values); err != nil {
		t.Fatal(err)
	}
	valueKeys := leafKeys("", values, nil)

	b, err = os.ReadFile(chart + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := yaml.UnmarshalStrict(b, &schema); err != nil {
		t.Fatal(err)
	}
	schemaKeys := schemaLeafKeys("", schema, nil)
	schemaKeys = slices.DeleteFunc(schemaKeys, func(k string) bool { return k == "global" })

	b, err = os.ReadFile(chart + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var tableKeys []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z0-9.]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		tableKeys = append(tableKeys, m[1])
	}
	sort.Strings(valueKeys)
	sort.Strings(schemaKeys)
	sort.Strings(tableKeys)
	if !slices.Equal(valueKeys, schemaKeys) {
		t.Errorf("values.yaml and values.schema.json differ:\nvalues: %v\nschema: %v", valueKeys, schemaKeys)
	}
	if !slices.Equal(valueKeys, tableKeys) {
		t.Errorf("values.yaml and the README table differ:\nvalues: %v\nREADME: %v", valueKeys, tableKeys)
	}

	bin := helm(t)
	for _, set := range []string{"loadgen.shard=4", "energyExporter.enable=false", "loadgen.mode=batch", "loadgen.startDelay=soon"} {
		out, err := exec.Command(bin, "template", "rel", chart, "--set", set).CombinedOutput()
		if err == nil {
			t.Errorf("helm template --set %s rendered; want a values error", set)
		} else if !strings.Contains(string(out), "schema") && !strings.Contains(string(out), "startDelay") {
			t.Errorf("helm template --set %s: %s", set, out)
		}
	}
}

// leafKeys lists the dotted keys of v's leaves: scalars, lists, and maps
// that are empty in values.yaml or free-form (labels, resources...).
func leafKeys(prefix string, v map[string]any, into []string) []string {
	for k, x := range v {
		key := strings.TrimPrefix(prefix+"."+k, ".")
		if m, ok := x.(map[string]any); ok && len(m) > 0 && !freeForm[key] {
			into = leafKeys(key, m, into)
			continue
		}
		into = append(into, key)
	}
	return into
}

// freeForm are the maps whose keys are the user's, not the chart's.
var freeForm = map[string]bool{
	"loadgen.resources": true, "loadgen.podSecurityContext": true, "loadgen.securityContext": true,
	"energyExporter.nodeSelector": true, "energyExporter.resources": true, "energyExporter.podSecurityContext": true,
	"energyExporter.securityContext": true, "grafana.dashboards.annotations": true, "remoteWrite.resources": true,
}

func schemaLeafKeys(prefix string, s map[string]any, into []string) []string {
	props, _ := s["properties"].(map[string]any)
	for k, x := range props {
		key := strings.TrimPrefix(prefix+"."+k, ".")
		sub, _ := x.(map[string]any)
		if _, ok := sub["properties"]; ok {
			into = schemaLeafKeys(key, sub, into)
			continue
		}
		into = append(into, key)
	}
	return into
}
