package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	s, logs := newTestServer(t,
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
	if r.Checks["redis"] != "unavailable" {
		t.Errorf("redis check %q, want it named unavailable", r.Checks["redis"])
	}
	// The reason is for operators, in the log; /readyz needs no token.
	if strings.Contains(rec.Body.String(), "refused") || strings.Contains(rec.Body.String(), "127.0.0.1") {
		t.Errorf("/readyz shows the dependency's error text: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the reason is not logged: %s", logs.String())
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

// However often /readyz is called, the dependencies are asked at most once
// per readyTTL: it needs no token, so it must not be a lever on the database.
func TestReadyzIsCached(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	s, _ := newTestServer(t, ReadinessCheck{Name: "postgres", Check: func(context.Context) error { calls.Add(1); return nil }})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if rec := serve(s, http.MethodGet, "/readyz"); rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("50 concurrent /readyz ran the check %d times; want 1", n)
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
