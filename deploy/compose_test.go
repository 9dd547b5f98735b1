package deploy

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// loadCompose loads deploy/compose/compose.yaml with the compose-spec
// loader (schema, interpolation, merges), its secrets made by secrets.sh
// in a temporary directory.
func loadCompose(t *testing.T) (*types.Project, string) {
	t.Helper()
	dir := filepath.Join(root(t), "deploy", "compose")
	secrets := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(dir, "secrets.sh"))
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+secrets)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets.sh: %v\n%s", err, out)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithResolvedPaths(true), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p, secrets
}

// isChartstream reports whether the service runs the chartstream image.
func isChartstream(s types.ServiceConfig) bool { return strings.HasPrefix(s.Image, "chartstream:") }

// The compose stack has every piece the issue names, and loads.
func TestComposeServices(t *testing.T) {
	t.Parallel()
	p, _ := loadCompose(t)
	byCommand := map[string][]string{}
	for name, s := range p.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Image != "" && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("service %s: image %s is not pinned to a tag", name, s.Image)
		}
		if isChartstream(s) {
			if s.Build == nil || s.Build.Context != root(t) || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("service %s does not build the repository's Dockerfile: %+v", name, s.Build)
			}
			byCommand[s.Command[0]] = append(byCommand[s.Command[0]], name)
		}
	}
	for command, want := range map[string]int{"serve": 2, "work": 2, "migrate": 1} {
		if got := len(byCommand[command]); got != want {
			t.Errorf("%d services run chartstream %s, want %d (%v)", got, command, want, byCommand[command])
		}
	}
	images := map[string][]string{}
	for name, s := range p.Services {
		base, _, _ := strings.Cut(s.Image, ":")
		images[base] = append(images[base], name)
	}
	for base, want := range map[string]int{"postgres": 3, "redis": 1, "nats": 3, "nginx": 1, "prom/prometheus": 1, "grafana/grafana-oss": 1} {
		if got := len(images[base]); got != want {
			t.Errorf("%d services of %s, want %d (%v)", got, base, want, images[base])
		}
	}
	if s := p.Services["postgres-replica"]; !strings.Contains(readRel(t, "deploy/compose/postgres/replica.sh"), "pg_basebackup") || s.Name == "" {
		t.Error("no replica made by pg_basebackup")
	}
}

// Every setting a chartstream service is given is one its subcommand
// reads, every X_FILE points at a mounted secret or volume, and the
// settings each process requires are there.
func TestComposeChartstreamSettings(t *testing.T) {
	t.Parallel()
	p, _ := loadCompose(t)
	required := map[string][]string{
		"serve":   {"DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "PHI_KEY_FILE", "HTTP_ADDR", "CHECKPOINT_VERIFY_KEY_FILES"},
		"work":    {"DATABASE_URL", "DATABASE_RELAY_URL", "NATS_URL", "PHI_KEY_FILE", "MESSAGE_SIGNING_KEY_FILE", "CHECKPOINT_SIGNING_KEY_FILE", "RELAY_REPLICAS"},
		"migrate": {"DATABASE_ADMIN_URL"},
	}
	for name, s := range p.Services {
		if !isChartstream(s) {
			continue
		}
		command := []string(s.Command)
		if command[0] == "dev" {
			command = command[:2]
		} else {
			command = command[:1]
		}
		checkSettings(t, "compose service "+name, command, slices.Sorted(func(yield func(string) bool) {
			for k := range s.Environment {
				if !yield(k) {
					return
				}
			}
		}))
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			target := sec.Target
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			mounted[target] = true
		}
		for k, v := range s.Environment {
			if !strings.HasSuffix(k, "_FILE") || v == nil {
				continue
			}
			ok := mounted[*v]
			for _, vol := range s.Volumes {
				ok = ok || strings.HasPrefix(*v, vol.Target+"/")
			}
			if !ok {
				t.Errorf("service %s: %s=%s is neither a mounted secret nor in a volume", name, k, *v)
			}
		}
		for _, need := range required[command[0]] {
			_, direct := s.Environment[need]
			_, file := s.Environment[need+"_FILE"]
			if !direct && !file {
				t.Errorf("service %s (chartstream %s) lacks %s", name, command[0], need)
			}
		}
		if command[0] == "work" {
			urls := strings.Split(*s.Environment["NATS_URL"], ",")
			if len(urls) != 3 || *s.Environment["RELAY_REPLICAS"] != "3" {
				t.Errorf("service %s: RELAY_REPLICAS=%s over NATS_URL=%v, want 3 over the 3 nodes", name, *s.Environment["RELAY_REPLICAS"], urls)
			}
			for _, u := range urls {
				host := strings.TrimSuffix(strings.TrimPrefix(u, "nats://"), ":4222")
				if _, ok := p.Services[host]; !ok {
					t.Errorf("service %s: NATS_URL names %s, which is no service", name, host)
				}
			}
		}
	}
}

// Secrets are files that secrets.sh makes; a bind mount's source exists in
// the repository.
func TestComposeFiles(t *testing.T) {
	t.Parallel()
	p, secrets := loadCompose(t)
	for name, sec := range p.Secrets {
		if sec.File == "" {
			t.Errorf("secret %s is not a file", name)
			continue
		}
		made := filepath.Join(secrets, filepath.Base(sec.File))
		if info, err := os.Stat(made); err != nil || info.Size() == 0 {
			t.Errorf("secret %s: secrets.sh makes no %s", name, filepath.Base(sec.File))
		}
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root(t), v.Source)
			if err != nil || strings.HasPrefix(rel, "..") || !exists(t, rel) {
				t.Errorf("service %s mounts %s, which is not in the repository", name, v.Source)
			}
		}
	}
	// secrets.sh never overwrites: a second run changes nothing.
	before := readDir(t, secrets)
	cmd := exec.Command("bash", filepath.Join(root(t), "deploy", "compose", "secrets.sh"))
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+secrets)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets.sh again: %v\n%s", err, out)
	}
	if after := readDir(t, secrets); !maps.Equal(before, after) {
		t.Error("a second secrets.sh changed the secrets")
	}
	// The URLs carry the passwords the database roles get.
	if url := before["database_url"]; !strings.Contains(url, ":"+strings.TrimSpace(before["pg_app_password"])+"@") {
		t.Error("database_url does not carry pg_app_password")
	}
	// The analytics API reads the hot standby as chartstream_analytics.
	replica := "postgres://chartstream_analytics:" + strings.TrimSpace(before["pg_analytics_password"]) + "@postgres-replica:5432/"
	if url := before["database_replica_url"]; !strings.HasPrefix(url, replica) || p.Services["postgres-replica"].Name == "" {
		t.Error("database_replica_url is not chartstream_analytics on the postgres-replica service")
	}
}

// Prometheus scrapes every serve and work process at its METRICS_ADDR and
// loads the alert rules; nginx balances over both APIs.
func TestComposeScrapeAndProxy(t *testing.T) {
	t.Parallel()
	p, _ := loadCompose(t)
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readRel(t, "deploy/compose/prometheus/prometheus.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	nginx := readRel(t, "deploy/compose/nginx/nginx.conf")
	for name, s := range p.Services {
		if !isChartstream(s) || (s.Command[0] != "serve" && s.Command[0] != "work") {
			continue
		}
		addr := s.Environment["METRICS_ADDR"]
		if addr == nil {
			t.Errorf("service %s has no METRICS_ADDR", name)
			continue
		}
		port := (*addr)[strings.LastIndex(*addr, ":")+1:]
		if !targets[name+":"+port] {
			t.Errorf("Prometheus does not scrape %s:%s", name, port)
		}
		if s.Command[0] == "serve" && !regexp.MustCompile(`server\s+`+regexp.QuoteMeta(name)+`:8080\b`).MatchString(nginx) {
			t.Errorf("nginx does not balance to %s:8080", name)
		}
	}
	prom := p.Services["prometheus"]
	for _, rule := range cfg.RuleFiles {
		found := false
		for _, v := range prom.Volumes {
			found = found || v.Target == rule
		}
		if !found {
			t.Errorf("rule file %s is not mounted into prometheus", rule)
		}
	}
}

// Where docker compose exists (not on the CI machine), it agrees.
func TestComposeConfigWithDocker(t *testing.T) {
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Skip("docker compose is not installed; the compose-spec loader checked the file")
	}
	_, secrets := loadCompose(t)
	dir := filepath.Join(root(t), "deploy", "compose")
	// compose reads the secrets from ./secrets: point it at the made ones.
	link := filepath.Join(dir, "secrets")
	if _, err := os.Stat(link); os.IsNotExist(err) {
		if err := os.Symlink(secrets, link); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(link) })
	}
	out, err := exec.Command("docker", "compose", "-f", filepath.Join(dir, "compose.yaml"), "config", "-q").CombinedOutput()
	if err != nil {
		t.Errorf("docker compose config -q: %v\n%s", err, out)
	}
}

func readRel(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}
