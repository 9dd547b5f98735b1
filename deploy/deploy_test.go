package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// root is the repository's root directory.
func root(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

// TestMain removes the chartstream binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// chartstreamBinary builds cmd/chartstream once (the flags of the local
// stack's build, so the build cache serves it) and returns its path.
func chartstreamBinary(tb testing.TB) string {
	tb.Helper()
	binaryOnce.Do(func() {
		if binaryDir, binaryErr = os.MkdirTemp("", "chartstream-deploy-test"); binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "chartstream")
		cmd := exec.Command("go", "build", "-o", binaryPath, "./cmd/chartstream")
		cmd.Dir = root(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = &buildError{out: string(out), err: err}
		}
	})
	if binaryErr != nil {
		tb.Fatalf("build chartstream: %v", binaryErr)
	}
	return binaryPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

var (
	settingsMu    sync.Mutex
	settingsCache = map[string]map[string]bool{}
	envInHelp     = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)
)

// settings are the environment variables `chartstream <subcommand>` reads,
// from its --help (each flag says "(env NAME)").
func settings(tb testing.TB, subcommand ...string) map[string]bool {
	tb.Helper()
	key := strings.Join(subcommand, " ")
	settingsMu.Lock()
	defer settingsMu.Unlock()
	if s, ok := settingsCache[key]; ok {
		return s
	}
	out, err := exec.Command(chartstreamBinary(tb), append(subcommand, "--help")...).CombinedOutput()
	if err != nil {
		tb.Fatalf("chartstream %s --help: %v\n%s", key, err, out)
	}
	s := map[string]bool{}
	for _, m := range envInHelp.FindAllStringSubmatch(string(out), -1) {
		s[m[1]] = true
	}
	if len(s) == 0 {
		tb.Fatalf("chartstream %s --help names no environment variable", key)
	}
	settingsCache[key] = s
	return s
}

// checkSettings fails for every name in env that `chartstream
// <subcommand>` does not read, directly or as NAME_FILE.
func checkSettings(t *testing.T, where string, subcommand []string, env []string) {
	t.Helper()
	known := settings(t, subcommand...)
	for _, name := range env {
		base := name
		if !known[name] && strings.HasSuffix(name, "_FILE") {
			base = strings.TrimSuffix(name, "_FILE")
		}
		switch {
		case known[base]:
		default:
			t.Errorf("%s: chartstream %s reads no setting %s", where, strings.Join(subcommand, " "), name)
		}
	}
}

// exists reports whether the repository path exists.
func exists(t *testing.T, rel string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(root(t), rel))
	return err == nil
}

// onCI reports whether the tests run in CI, where a missing tool is a
// failure rather than a skip.
func onCI() bool { return os.Getenv("CI") != "" }

// CI sets what onCI reads before it runs the tests, and the stack that
// make test brings up builds the helm the helm tests then require.
func TestCISetsCI(t *testing.T) {
	t.Parallel()
	script := readRel(t, ".ci/run")
	set := regexp.MustCompile(`(?m)^export CI=1$`).FindStringIndex(script)
	run := regexp.MustCompile(`(?m)^make test$`).FindStringIndex(script)
	if set == nil || run == nil || set[0] > run[0] {
		t.Error(".ci/run does not export CI=1 before make test: the deploy tests skip what CI must check")
	}
	if !regexp.MustCompile(`(?m)^\s*install_helm$`).MatchString(readRel(t, "deploy/local/stack.sh")) {
		t.Error("deploy/local/stack.sh up does not build helm, which the helm tests require in CI")
	}
}

func TestSettingsFromHelp(t *testing.T) {
	t.Parallel()
	s := settings(t, "serve")
	for _, name := range []string{"DATABASE_URL", "REDIS_URL", "HTTP_ADDR", "PHI_KEY_FILE"} {
		if !s[name] {
			t.Errorf("chartstream serve --help does not name %s", name)
		}
	}
	if settings(t, "migrate")["REDIS_URL"] {
		t.Error("chartstream migrate --help names REDIS_URL: the help parsing mixes subcommands")
	}
}
