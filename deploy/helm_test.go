package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helm is the helm binary that deploy/local/stack.sh builds from its Go
// module (HELM_BIN, written to .local/env), else one on PATH. Without one
// the helm tests skip, except in CI, where they fail.
func helm(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("HELM_BIN"); bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	if bin, err := exec.LookPath("helm"); err == nil {
		return bin
	}
	if p := filepath.Join(root(t), ".local", "bin", "helm"); fileExists(p) {
		return p
	}
	if onCI() {
		t.Fatal("no helm: make up (or deploy/local/stack.sh tools) builds it into .local/bin")
	}
	t.Skip("no helm: run make deploy-check, or deploy/local/stack.sh tools")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func chartDir(t *testing.T) string { return filepath.Join(root(t), "deploy", "helm", "chartstream") }

func productionValues(t *testing.T) string {
	return filepath.Join(root(t), "deploy", "helm", "values-production.yaml")
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) name() string { return str(o, "metadata", "name") }

// render runs helm template with args and returns the objects.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "cs", chartDir(t), "--namespace", "chartstream"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template %v renders invalid YAML: %v", args, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

// get walks nested maps by keys.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			if o, isObj := v.(object); isObj {
				m = o
			} else {
				return nil
			}
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string { s, _ := get(v, keys...).(string); return s }

func list(v any, keys ...string) []any { l, _ := get(v, keys...).([]any); return l }

func find(objs []object, kind, suffix string) object {
	for _, o := range objs {
		if o.kind() == kind && strings.HasSuffix(o.name(), suffix) {
			return o
		}
	}
	return nil
}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"-f", productionValues(t)}} {
		out, err := exec.Command(helm(t), append([]string{"lint", "--strict", chartDir(t)}, args...)...).CombinedOutput()
		if err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
}

// The default and the production values render every object the issue
// names; the production values add the ServiceMonitor, and an Ingress (for
// clusters with an ingress controller) renders when enabled.
func TestHelmObjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		extra []string
	}{
		{"default", nil, nil},
		{"production", []string{"-f", productionValues(t)}, []string{"ServiceMonitor/cs-chartstream", "ConfigMap/cs-chartstream-dashboards", "PrometheusRule/cs-chartstream"}},
		{"ingress", []string{"--set", "ingress.enabled=true,ingress.className=alb,serviceMonitor.enabled=true"}, []string{"Ingress/cs-chartstream", "ServiceMonitor/cs-chartstream"}},
	} {
		objs := render(t, tc.args...)
		var got []string
		for _, o := range objs {
			got = append(got, o.kind()+"/"+o.name())
			if o.kind() == "Secret" {
				t.Errorf("%s: the chart renders Secret %s: secrets are only referred to", tc.name, o.name())
			}
		}
		want := []string{"Deployment/cs-chartstream-serve", "Deployment/cs-chartstream-work", "Job/cs-chartstream-migrate",
			"HorizontalPodAutoscaler/cs-chartstream-serve", "PodDisruptionBudget/cs-chartstream-serve", "PodDisruptionBudget/cs-chartstream-work",
			"NetworkPolicy/cs-chartstream-serve", "NetworkPolicy/cs-chartstream-work", "Service/cs-chartstream-serve"}
		for _, w := range append(want, tc.extra...) {
			if !slices.Contains(got, w) {
				t.Errorf("%s: no %s in %v", tc.name, w, got)
			}
		}
		if tc.extra == nil && (find(objs, "ServiceMonitor", "") != nil || find(objs, "PrometheusRule", "") != nil || find(objs, "ConfigMap", "-dashboards") != nil) {
			t.Errorf("%s: monitoring objects rendered without being enabled", tc.name)
		}
		hooks := str(find(objs, "Job", "-migrate"), "metadata", "annotations", "helm.sh/hook")
		if !strings.Contains(hooks, "pre-install") || !strings.Contains(hooks, "pre-upgrade") {
			t.Errorf("%s: the migration Job's hooks are %q", tc.name, hooks)
		}
		hpa := find(objs, "HorizontalPodAutoscaler", "-serve")
		if str(hpa, "spec", "scaleTargetRef", "name") != "cs-chartstream-serve" || str(list(hpa, "spec", "metrics")[0], "resource", "name") != "cpu" {
			t.Errorf("%s: the HPA does not scale serve on CPU: %v", tc.name, hpa["spec"])
		}
		if ing := find(objs, "Ingress", ""); ing != nil && str(ing, "spec", "ingressClassName") != "alb" {
			t.Errorf("%s: Ingress class %q, want alb", tc.name, str(ing, "spec", "ingressClassName"))
		}
	}
}

// The chart ships the very dashboards and alert rules the compose stack
// loads (files/), byte for byte and rule for rule.
func TestHelmShipsTheDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	objs := render(t, "-f", productionValues(t))
	files, err := filepath.Glob(filepath.Join(chartDir(t), "files", "dashboards", "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards %v (%v), want the overview and the tenant's", files, err)
	}
	cm := find(objs, "ConfigMap", "-dashboards")
	if str(cm, "metadata", "labels", "grafana_dashboard") != "1" {
		t.Errorf("dashboards ConfigMap labels %v, want grafana_dashboard: \"1\" for Grafana's sidecar", get(cm, "metadata", "labels"))
	}
	data, _ := get(cm, "data").(object) // yaml decodes nested maps as the outer type
	if len(data) != len(files) {
		t.Errorf("the ConfigMap holds %d dashboards, the chart's files %d", len(data), len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := data[filepath.Base(f)].(string); got != string(raw) {
			t.Errorf("the ConfigMap's %s differs from the file (%d bytes, want %d)", filepath.Base(f), len(got), len(raw))
		}
	}
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "files", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules object // decoded as the rendered objects are
	if err := yaml.Unmarshal(raw, &rules); err != nil || len(list(rules, "groups")) == 0 {
		t.Fatalf("alerts.yml: %d groups (%v)", len(list(rules, "groups")), err)
	}
	rule := find(objs, "PrometheusRule", "")
	if got, want := list(rule, "spec", "groups"), list(rules, "groups"); !reflect.DeepEqual(got, want) {
		t.Errorf("the PrometheusRule's groups differ from alerts.yml:\n%v\nwant\n%v", got, want)
	}
	if str(rule, "metadata", "labels", "release") != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v, want the operator's release label", get(rule, "metadata", "labels"))
	}
}

var credentialsInURL = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)

// secretSettings are given only as X_FILE, from a mounted Secret.
var secretSettings = []string{"DATABASE_URL", "DATABASE_ADMIN_URL", "DATABASE_RELAY_URL", "DATABASE_SESSION_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "NATS_PASSWORD"}

// Every container: non-root, read-only root, no capabilities, resources
// bounded; settings that chartstream reads, secrets only by reference;
// serve probed on /healthz and /readyz.
func TestHelmPods(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"-f", productionValues(t)}} {
		for _, o := range render(t, args...) {
			if o.kind() != "Deployment" && o.kind() != "Job" {
				continue
			}
			pod := get(o, "spec", "template", "spec")
			where := o.kind() + "/" + o.name()
			if get(pod, "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: pod securityContext.runAsNonRoot is not true", where)
			}
			mounts := map[string]bool{}
			for _, c := range append(list(pod, "containers"), list(pod, "initContainers")...) {
				cname := where + " container " + str(c, "name")
				sc := get(c, "securityContext")
				if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false || get(sc, "runAsNonRoot") != true ||
					!slices.Contains(list(sc, "capabilities", "drop"), any("ALL")) {
					t.Errorf("%s: securityContext %v", cname, sc)
				}
				for _, kind := range []string{"requests", "limits"} {
					for _, res := range []string{"cpu", "memory"} {
						if get(c, "resources", kind, res) == nil {
							t.Errorf("%s: no resources.%s.%s", cname, kind, res)
						}
					}
				}
				for _, m := range list(c, "volumeMounts") {
					mounts[str(m, "mountPath")] = true
				}
			}
			for _, c := range list(pod, "containers") {
				cname := where + " container " + str(c, "name")
				var names []string
				for _, e := range list(c, "env") {
					name, value := str(e, "name"), str(e, "value")
					names = append(names, name)
					if slices.Contains(secretSettings, name) || credentialsInURL.MatchString(value) {
						t.Errorf("%s: %s is given in the clear; secrets go by reference (X_FILE)", cname, name)
					}
					if strings.HasSuffix(name, "_FILE") && !underAny(value, mounts) {
						t.Errorf("%s: %s=%s is in no mounted volume", cname, name, value)
					}
				}
				args := list(c, "args")
				checkSettings(t, cname, []string{args[0].(string)}, names)
				if args[0] == "serve" {
					if str(c, "livenessProbe", "httpGet", "path") != "/healthz" || str(c, "readinessProbe", "httpGet", "path") != "/readyz" {
						t.Errorf("%s: probes %v / %v, want /healthz and /readyz", cname, get(c, "livenessProbe"), get(c, "readinessProbe"))
					}
				}
			}
		}
	}
}

func underAny(path string, dirs map[string]bool) bool {
	for d := range dirs {
		if strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// The NetworkPolicy: the API's port only from the load balancer, metrics
// only from the monitoring, work takes no other traffic, and egress only
// to DNS and the services' ports.
func TestHelmNetworkPolicy(t *testing.T) {
	t.Parallel()
	allowedEgress := map[int]bool{53: true, 5432: true, 6379: true, 4222: true, 443: true}
	for _, args := range [][]string{nil, {"-f", productionValues(t)}} {
		objs := render(t, args...)
		for _, component := range []string{"serve", "work"} {
			np := find(objs, "NetworkPolicy", "-"+component)
			if np == nil {
				t.Fatalf("no NetworkPolicy for %s", component)
			}
			types := list(np, "spec", "policyTypes")
			if !slices.Contains(types, any("Ingress")) || !slices.Contains(types, any("Egress")) {
				t.Errorf("%s: policyTypes %v", component, types)
			}
			var ports []string
			for _, rule := range list(np, "spec", "ingress") {
				if len(list(rule, "from")) == 0 {
					t.Errorf("%s: an ingress rule from anywhere: %v", component, rule)
				}
				for _, p := range list(rule, "ports") {
					ports = append(ports, str(p, "port"))
				}
			}
			want := []string{"metrics"}
			if component == "serve" {
				want = []string{"http", "metrics"}
			}
			if !slices.Equal(ports, want) {
				t.Errorf("%s: ingress to ports %v, want %v", component, ports, want)
			}
			for _, rule := range list(np, "spec", "egress") {
				if len(list(rule, "ports")) == 0 {
					t.Errorf("%s: an egress rule to every port: %v", component, rule)
				}
				for _, p := range list(rule, "ports") {
					if n, _ := get(p, "port").(int); !allowedEgress[n] {
						t.Errorf("%s: egress to port %v", component, get(p, "port"))
					}
				}
			}
		}
	}
}

// A missing secret reference fails the render with one clear line.
func TestHelmRequiresSecretReferences(t *testing.T) {
	t.Parallel()
	for _, set := range []string{"secrets.existingSecret=", "keyFiles.existingSecret=", "secrets.keys.DATABASE_URL="} {
		out, err := exec.Command(helm(t), "template", "cs", chartDir(t), "--set", set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is required") {
			t.Errorf("helm template --set %s: %v\n%s", set, err, out)
		}
	}
}

// Extra volumes (the RDS CA bundle for sslmode=verify-full) reach every
// chartstream container, the migration's too.
func TestHelmExtraVolumes(t *testing.T) {
	t.Parallel()
	objs := render(t, "--set", "extraVolumes[0].name=rds-ca,extraVolumes[0].configMap.name=rds-ca,"+
		"extraVolumeMounts[0].name=rds-ca,extraVolumeMounts[0].mountPath=/etc/rds-ca,extraVolumeMounts[0].readOnly=true")
	for _, o := range objs {
		if o.kind() != "Deployment" && o.kind() != "Job" {
			continue
		}
		pod := get(o, "spec", "template", "spec")
		if !slices.ContainsFunc(list(pod, "volumes"), func(v any) bool { return str(v, "name") == "rds-ca" }) {
			t.Errorf("%s: no rds-ca volume", o.name())
		}
		for _, c := range list(pod, "containers") {
			if !slices.ContainsFunc(list(c, "volumeMounts"), func(m any) bool { return str(m, "mountPath") == "/etc/rds-ca" }) {
				t.Errorf("%s container %s: no /etc/rds-ca mount", o.name(), str(c, "name"))
			}
		}
	}
}
