package deploy

import (
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// containerOf is the named container of a Deployment.
func containerOf(objs []object, deployment string) any {
	d := find(objs, "Deployment", "-"+deployment)
	for _, c := range list(d, "spec", "template", "spec", "containers") {
		if str(c, "name") == deployment {
			return c
		}
	}
	return nil
}

// envOf is a container's environment, name to value (valueFrom as "").
func envOf(c any) map[string]string {
	out := map[string]string{}
	for _, e := range list(c, "env") {
		out[str(e, "name")] = str(e, "value")
	}
	return out
}

func named(items []any, name string) bool {
	return slices.ContainsFunc(items, func(v any) bool { return str(v, "name") == name })
}

// With phiKeys.provider local, serve and work copy the master key in an
// init container and read it as PHI_KEY_FILE; with aws-kms (the production
// values) no master key is required, mounted or copied, the pods read the
// KMS settings, and the service account carries the IRSA role.
func TestHelmPHIKeyProvider(t *testing.T) {
	t.Parallel()
	kms := []string{"-f", productionValues(t), "--set", "keyFiles.phiMasterKey="}
	for _, tc := range []struct {
		name  string
		args  []string
		local bool
		env   map[string]string
	}{
		{"local", nil, true, map[string]string{"PHI_KEY_FILE": "/var/run/chartstream/keys/phi-master.key"}},
		{"production", kms, false, map[string]string{"PHI_KEY_PROVIDER": "aws-kms", "AWS_KMS_KEY_ID": "<tenant_keys_kms_key_arn>", "AWS_REGION": "<region>"}},
		{"alias template", append(slices.Clone(kms), "--set", "phiKeys.awsKms.keyId=,phiKeys.awsKms.keyAliasTemplate=alias/cs-{tenant},phiKeys.awsKms.endpoint=https://kms.vpce"),
			false, map[string]string{"PHI_KEY_PROVIDER": "aws-kms", "AWS_KMS_KEY_ALIAS_TEMPLATE": "alias/cs-{tenant}", "AWS_KMS_ENDPOINT": "https://kms.vpce", "AWS_REGION": "<region>"}},
	} {
		objs := render(t, tc.args...)
		for _, component := range []string{"serve", "work"} {
			where := tc.name + ": " + component
			pod := get(find(objs, "Deployment", "-"+component), "spec", "template", "spec")
			env := envOf(containerOf(objs, component))
			for k, v := range tc.env {
				if env[k] != v {
					t.Errorf("%s: %s=%q, want %q", where, k, env[k], v)
				}
			}
			for _, k := range []string{"PHI_KEY_FILE", "PHI_KEY_PROVIDER", "AWS_KMS_KEY_ID", "AWS_KMS_KEY_ALIAS_TEMPLATE", "AWS_REGION", "AWS_KMS_ENDPOINT"} {
				if _, set := env[k]; set && tc.env[k] == "" {
					t.Errorf("%s: %s is set", where, k)
				}
			}
			if got := named(list(pod, "initContainers"), "phi-key"); got != tc.local {
				t.Errorf("%s: the phi-key init container is there: %v, want %v", where, got, tc.local)
			}
			if got := named(list(pod, "volumes"), "keys"); got != tc.local {
				t.Errorf("%s: the master key's memory volume is there: %v, want %v", where, got, tc.local)
			}
		}
		role := str(find(objs, "ServiceAccount", ""), "metadata", "annotations", "eks.amazonaws.com/role-arn")
		if want := map[bool]string{true: "", false: "<chartstream_role_arn>"}[tc.local]; role != want {
			t.Errorf("%s: the service account's IRSA role is %q, want %q", tc.name, role, want)
		}
	}
	for set, want := range map[string]string{
		"phiKeys.provider=vault":                           "phiKeys.provider must be local or aws-kms",
		"phiKeys.provider=aws-kms":                         "phiKeys.awsKms.keyId (or keyAliasTemplate) is required",
		"keyFiles.phiMasterKey=":                           "keyFiles.phiMasterKey is required",
		"phiKeys.awsKms.keyAliasTemplate=alias/x-{tenant}": "set keyId or keyAliasTemplate, not both",
	} {
		args := []string{"template", "cs", chartDir(t), "--set", set}
		if strings.HasPrefix(set, "phiKeys.awsKms") {
			args = append(args, "-f", productionValues(t))
		}
		out, err := exec.Command(helm(t), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("helm template --set %s: %v, want %q\n%s", set, err, want, out)
		}
	}
}

// The worker has a liveness probe whether or not metrics are on: the
// binary asks its own metrics listener, on loopback when metrics are off.
func TestHelmWorkLiveness(t *testing.T) {
	t.Parallel()
	for _, enabled := range []string{"true", "false"} {
		objs := render(t, "--set", "metrics.enabled="+enabled)
		work := containerOf(objs, "work")
		cmd := list(work, "livenessProbe", "exec", "command")
		if len(cmd) < 4 || cmd[0] != "/usr/local/bin/chartstream" || cmd[1] != "healthcheck" || cmd[2] != "--url" {
			t.Fatalf("metrics.enabled=%s: work's liveness probe is %v", enabled, get(work, "livenessProbe"))
		}
		u, err := url.Parse(cmd[3].(string))
		if err != nil {
			t.Fatal(err)
		}
		addr := envOf(work)["METRICS_ADDR"]
		if _, port, _ := strings.Cut(addr, ":"); addr == "" || u.Port() != port || u.Hostname() != "127.0.0.1" {
			t.Errorf("metrics.enabled=%s: the probe asks %s, the worker listens on METRICS_ADDR=%q", enabled, u, addr)
		}
		if enabled == "false" && (!strings.HasPrefix(addr, "127.0.0.1:") || get(work, "ports") != nil || find(objs, "Service", "-work") != nil) {
			t.Errorf("metrics off: the worker's listener is exposed: METRICS_ADDR=%s, ports %v", addr, get(work, "ports"))
		}
	}
}

// transportURL finds URLs in text (values, comments, documentation).
var transportURL = regexp.MustCompile(`\b([a-z]+)://[^\s"'` + "`" + `),]+`)

// plainTransport says what is wrong with u for production, "" if nothing:
// PostgreSQL only with sslmode=verify-full, Redis only as rediss://, NATS
// only as tls://.
func plainTransport(u string) string {
	scheme, _, _ := strings.Cut(u, "://")
	switch scheme {
	case "postgres", "postgresql":
		if !strings.Contains(u, "sslmode=verify-full") {
			return "PostgreSQL without sslmode=verify-full"
		}
	case "redis":
		return "Redis without TLS (rediss://)"
	case "nats":
		return "NATS without TLS (tls://)"
	case "http":
		return "plain HTTP"
	}
	return ""
}

// Production speaks TLS only: the rendered production pods' settings name
// TLS transports (NATS with its CA file mounted, the replica's URL by
// reference), and every URL the production values, the Terraform module's
// Redis URL and the README's cluster and AWS steps give is TLS.
func TestProductionTransportsAreTLS(t *testing.T) {
	t.Parallel()
	objs := render(t, "-f", productionValues(t))
	for _, component := range []string{"serve", "work"} {
		env := envOf(containerOf(objs, component))
		for name, value := range env {
			for _, u := range transportURL.FindAllString(value, -1) {
				if why := plainTransport(u); why != "" {
					t.Errorf("production %s: %s=%s: %s", component, name, value, why)
				}
			}
		}
		for _, u := range strings.Split(env["NATS_URL"], ",") {
			if !strings.HasPrefix(u, "tls://") {
				t.Errorf("production %s: NATS_URL %q is not tls://", component, u)
			}
		}
		if env["NATS_TLS_CA_FILE"] == "" {
			t.Errorf("production %s: no NATS_TLS_CA_FILE", component)
		}
	}
	if _, ok := envOf(containerOf(objs, "serve"))["DATABASE_REPLICA_URL_FILE"]; !ok {
		t.Error("production serve: no DATABASE_REPLICA_URL_FILE: /v1/analytics would answer 503")
	}
	readme := readRel(t, "README.md")
	docs := map[string]string{
		"values-production.yaml": readRel(t, "deploy/helm/values-production.yaml"),
		"elasticache.tf":         readRel(t, "deploy/terraform/aws/elasticache.tf"),
		"README (cluster, AWS)":  section(t, readme, "### Deploy to a Kubernetes cluster", "#### What is checked"),
	}
	for where, text := range docs {
		urls := transportURL.FindAllString(text, -1)
		if len(urls) == 0 {
			t.Errorf("%s names no URL", where)
		}
		for _, u := range urls {
			if why := plainTransport(u); why != "" {
				t.Errorf("%s: %s: %s", where, u, why)
			}
		}
	}
}

// section is the text of s from the line start to the line end (excluded).
func section(t *testing.T, s, start, end string) string {
	t.Helper()
	i := strings.Index(s, "\n"+start+"\n")
	j := strings.Index(s, "\n"+end+"\n")
	if i < 0 || j < i {
		t.Fatalf("no section %q up to %q", start, end)
	}
	return s[i:j]
}

// The production values take the KMS key, its region and the IRSA role
// from the Terraform module's outputs, and the role the module makes is
// the one granted that key.
func TestProductionValuesUseTerraformKMS(t *testing.T) {
	t.Parallel()
	m, _ := parseTerraform(t)
	var values struct {
		ServiceAccount struct {
			RoleArn string `yaml:"roleArn"`
		} `yaml:"serviceAccount"`
		PHIKeys struct {
			Provider string `yaml:"provider"`
			AWSKMS   struct {
				KeyID  string `yaml:"keyId"`
				Region string `yaml:"region"`
			} `yaml:"awsKms"`
		} `yaml:"phiKeys"`
	}
	if err := yaml.Unmarshal([]byte(readRel(t, "deploy/helm/values-production.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	if values.PHIKeys.Provider != "aws-kms" {
		t.Errorf("production phiKeys.provider is %q, want aws-kms", values.PHIKeys.Provider)
	}
	for value, output := range map[string]string{
		values.ServiceAccount.RoleArn: "chartstream_role_arn",
		values.PHIKeys.AWSKMS.KeyID:   "tenant_keys_kms_key_arn",
		values.PHIKeys.AWSKMS.Region:  "region",
	} {
		if value != "<"+output+">" || m.outputs[output] == nil {
			t.Errorf("production value %q: want <%s>, an output of the module", value, output)
		}
	}
	key := string(blockText(t, m.outputs["tenant_keys_kms_key_arn"]))
	role := string(blockText(t, m.outputs["chartstream_role_arn"]))
	grant := string(blockText(t, m.resources["aws_iam_role_policy.chartstream"]))
	if !strings.Contains(key, "aws_kms_key.tenant_keys.arn") || !strings.Contains(role, "aws_iam_role.chartstream.arn") ||
		!regexp.MustCompile(`kms:GenerateDataKey[^]]*kms:Decrypt[^}]*Resource\s*=\s*aws_kms_key\.tenant_keys\.arn`).MatchString(grant) {
		t.Error("the role the outputs name is not the one granted GenerateDataKey and Decrypt on the tenant keys' KMS key")
	}
}
