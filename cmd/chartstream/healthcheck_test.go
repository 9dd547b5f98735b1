package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHealthURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{":8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:8080", "http://127.0.0.1:8080/healthz"},
		{"127.0.0.1:18080", "http://127.0.0.1:18080/healthz"},
		{"[::1]:9000", "http://[::1]:9000/healthz"},
		{"api.internal:80", "http://api.internal:80/healthz"},
	}
	for _, tt := range tests {
		got, err := healthURL(tt.addr)
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	if _, err := healthURL("localhost"); err == nil {
		t.Error("healthURL accepted an address without a port")
	}
}

// The health check exits 0 on 2xx and 1 on anything else, including no
// answer; bad input exits 2.
func TestHealthcheckExitCodes(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	t.Setenv("HEALTHCHECK_URL", "")
	t.Setenv("HTTP_ADDR", addr)

	code := func(args ...string) int {
		t.Helper()
		_, err := execute(context.Background(), append([]string{"healthcheck"}, args...)...)
		if err == nil {
			return 0
		}
		var ex exitError
		if !errors.As(err, &ex) {
			t.Fatalf("healthcheck %v: %v is not an exitError", args, err)
		}
		return ex.code
	}
	if got := code(); got != 0 {
		t.Errorf("healthy API from HTTP_ADDR: exit %d, want 0", got)
	}
	status = http.StatusServiceUnavailable
	if got := code(); got != 1 {
		t.Errorf("503: exit %d, want 1", got)
	}
	if got := code("--url", srv.URL+"/elsewhere"); got != 1 {
		t.Errorf("404: exit %d, want 1", got)
	}
	srv.Close()
	if got := code("--url", srv.URL+"/healthz", "--timeout", "1s"); got != 1 {
		t.Errorf("no server: exit %d, want 1", got)
	}
	if got := code("--http-addr", "nohost"); got != 2 {
		t.Errorf("bad HTTP_ADDR: exit %d, want 2", got)
	}
	if got := code("--url", "http://[::1"); got != 2 {
		t.Errorf("malformed URL: exit %d, want 2", got)
	}
}

// X_FILE reads a setting from a file; setting both, or an unreadable or
// empty file, fails with one line naming the variable and never the value.
func TestSettingFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("HTTP_ADDR", "")
	t.Setenv("HEALTHCHECK_URL", "")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()

	t.Setenv("HEALTHCHECK_URL_FILE", write("url", srv.URL+"/healthz\n"))
	if _, err := execute(context.Background(), "healthcheck"); err != nil {
		t.Errorf("URL from its file: %v", err)
	}
	t.Setenv("HEALTHCHECK_URL", "http://secret-in-env")
	_, err := execute(context.Background(), "healthcheck")
	if err == nil || !strings.Contains(err.Error(), "set HEALTHCHECK_URL or HEALTHCHECK_URL_FILE, not both") {
		t.Errorf("both set: %v", err)
	}
	t.Setenv("HEALTHCHECK_URL", "")
	t.Setenv("HEALTHCHECK_URL_FILE", filepath.Join(dir, "absent"))
	if _, err := execute(context.Background(), "healthcheck"); err == nil || !strings.Contains(err.Error(), "invalid HEALTHCHECK_URL_FILE") {
		t.Errorf("unreadable file: %v", err)
	}
	t.Setenv("HEALTHCHECK_URL_FILE", write("empty", "\n"))
	if _, err := execute(context.Background(), "healthcheck"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	t.Setenv("HEALTHCHECK_URL_FILE", "")
	t.Setenv("HEALTHCHECK_TIMEOUT_FILE", write("timeout", "hunter2"))
	_, err = execute(context.Background(), "healthcheck")
	if err == nil || !strings.Contains(err.Error(), "invalid HEALTHCHECK_TIMEOUT") {
		t.Errorf("malformed value from a file: %v", err)
	}
}

// No variable X may have a variable X_FILE of another meaning beside it:
// X_FILE always means "X, read from this file".
func TestNoSettingShadowsItsFileVariant(t *testing.T) {
	t.Parallel()
	names := envVars(newRootCmd())
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	for _, n := range names {
		if set[n+fileSuffix] {
			t.Errorf("%s and %s%s are both settings: %s%s could not read %s from a file", n, n, fileSuffix, n, fileSuffix, n)
		}
	}
}
