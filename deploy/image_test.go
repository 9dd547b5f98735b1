package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	stage     int // index of the FROM it belongs to
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	stage := -1
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return out
}

// goVersion is go.mod's go directive.
func goVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// The image: a static binary built with the go.mod's Go, on a small
// non-root base, with a health check the binary answers itself.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	ins := parseDockerfile(t, filepath.Join(root(t), "Dockerfile"))
	last := ins[len(ins)-1].stage
	var final []instruction
	var build strings.Builder
	for _, in := range ins {
		if in.stage == last {
			final = append(final, in)
		} else {
			build.WriteString(in.cmd + " " + in.args + "\n")
		}
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "GO_VERSION=") && in.args != "GO_VERSION="+goVersion(t) {
			t.Errorf("Dockerfile %s, go.mod says go %s", in.args, goVersion(t))
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/chartstream"} {
		if !strings.Contains(build.String(), want) {
			t.Errorf("the build stage does not use %s", want)
		}
	}
	find := func(cmd string) (instruction, bool) {
		for _, in := range final {
			if in.cmd == cmd {
				return in, true
			}
		}
		return instruction{}, false
	}
	from, _ := find("FROM")
	if base := strings.Fields(from.args)[0]; base != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static[-a-z0-9]*:nonroot$`).MatchString(base) {
		t.Errorf("final image FROM %s: want distroless static nonroot or scratch", base)
	}
	user, ok := find("USER")
	if !ok || regexp.MustCompile(`^(0|root)(:|$)`).MatchString(user.args) {
		t.Errorf("final image USER %q: want a non-root user", user.args)
	}
	hc, ok := find("HEALTHCHECK")
	if !ok || !strings.Contains(hc.args, `"healthcheck"`) {
		t.Errorf("final image HEALTHCHECK %q: want the binary's healthcheck subcommand", hc.args)
	}
	if ep, _ := find("ENTRYPOINT"); !strings.Contains(ep.args, "/usr/local/bin/chartstream") {
		t.Errorf("ENTRYPOINT %q is not the chartstream binary", ep.args)
	}
	var env []string
	for _, in := range final {
		if in.cmd == "ENV" {
			name, _, _ := strings.Cut(in.args, "=")
			env = append(env, name)
		}
	}
	checkSettings(t, "Dockerfile", []string{"serve"}, env)
	if out, err := exec.Command(chartstreamBinary(t), "healthcheck", "--help").CombinedOutput(); err != nil {
		t.Errorf("chartstream healthcheck --help: %v\n%s", err, out)
	}
}

// The binary builds without cgo: no package it needs is cgo-only, so the
// CGO_ENABLED=0 build of the Dockerfile is static and has no libc to find.
func TestBinaryBuildsWithoutCgo(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{if .Error}}ERROR {{.Error}}{{end}}", "./cmd/chartstream")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("CGO_ENABLED=0 go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " ERROR ") || strings.HasPrefix(line, "runtime/cgo ") {
			t.Errorf("without cgo: %s", line)
		}
	}
}

// The build context carries no local state: no database files, secrets,
// keys or Terraform state.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{".git", ".local", "deploy"} {
		if !lines[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
