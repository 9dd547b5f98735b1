package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func decodeReadiness(t *testing.T, body []byte) readiness {
	t.Helper()
	var r readiness
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return r
}

func ok(context.Context) error { return nil }

func TestReadyzNamesTheFailingDependency(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t,
		ReadinessCheck{Name: "postgres", Check: ok},
		ReadinessCheck{Name: "redis", Check: func(context.Context) error { return errors.New("dial tcp 127.0.0.1:6379: connection refused") }},
	)
	rec := serve(s, http.MethodGet, "/readyz")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	r := decodeReadiness(t, rec.Body.Bytes())
	if r.Status != "unavailable" {
		t.Errorf("status %q, want unavailable", r.Status)
	}
	if !strings.HasPrefix(r.Checks["redis"], "unavailable") || !strings.Contains(r.Checks["redis"], "connection refused") {
		t.Errorf("redis check %q, want it named unavailable with its reason", r.Checks["redis"])
	}
	if r.Checks["postgres"] != "ok" {
		t.Errorf("postgres check %q, want ok", r.Checks["postgres"])
	}
}

func TestReadyzAllOK(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, ReadinessCheck{Name: "postgres", Check: ok}, ReadinessCheck{Name: "redis", Check: ok})
	s.deps.Info = map[string]StatusFn{"relay": func(context.Context) any { return map[string]int{"lag": 3} }}
	rec := serve(s, http.MethodGet, "/readyz")
	r := decodeReadiness(t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || r.Status != "ok" || len(r.Checks) != 2 || r.Checks["postgres"] != "ok" || r.Checks["redis"] != "ok" {
		t.Errorf("got %d %+v, want 200 with both checks ok", rec.Code, r)
	}
	if r.Info["relay"] == nil {
		t.Errorf("info %v lacks relay", r.Info)
	}
}

// A dependency that hangs must not hang /readyz: its check is cut off and
// reported unavailable.
func TestReadyzBoundsAHangingCheck(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, ReadinessCheck{Name: "nats", Check: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	start := time.Now()
	rec := serve(s, http.MethodGet, "/readyz")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %v with a hanging check", d)
	}
	if r := decodeReadiness(t, rec.Body.Bytes()); rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(r.Checks["nats"], "unavailable") {
		t.Errorf("got %d %+v, want 503 naming nats", rec.Code, r)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	// Liveness does not depend on dependencies: a failing check must not
	// fail /healthz.
	s, _ := newTestServer(t, ReadinessCheck{Name: "redis", Check: func(context.Context) error { return errors.New("down") }})
	rec := serve(s, http.MethodGet, "/healthz")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("got %d %s, want 200 ok", rec.Code, rec.Body)
	}
}
