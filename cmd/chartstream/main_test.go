package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// End-to-end tests: the real Main on port 0 against the PostgreSQL, Redis
// and NATS of the local stack, spoken to over HTTP.

// configFromEnv reads the process configuration the way serve does: through
// the flags' environment bindings.
func configFromEnv(t *testing.T) Config {
	t.Helper()
	var c Config
	cmd := &cobra.Command{}
	c.flags(cmd.Flags())
	if err := applyEnv(cmd); err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestMain returns a Main configured from the environment, listening on a
// free port, with NATS at natsURL (empty: embedded, storing in a temp dir).
func newTestMain(t *testing.T, apiOn, workers bool, natsURL string) *Main {
	t.Helper()
	cfg := configFromEnv(t)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NATSURL = natsURL
	cfg.NATSStoreDir = t.TempDir()
	// The dev environment has a dev key; tests, like make run, allow it.
	cfg.Auth.AllowDevKey = true
	if workers {
		isolateWorkers(t, &cfg)
	}
	return &Main{Config: cfg, API: apiOn, Workers: workers, Logger: logging.New(t.Output(), slog.LevelWarn)}
}

// isolateWorkers gives a test's relay and projector names, a stream and
// subjects of their own, starting at the event store's head: they publish
// and project only what commits during the test, and never contend with
// another test's (or make run's) workers for a lease.
func isolateWorkers(t *testing.T, cfg *Config) {
	t.Helper()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	cfg.Relay.Name, cfg.Relay.Stream, cfg.Relay.SubjectPrefix = "test-"+id, "TEST_"+strings.ToUpper(id), "t"+id
	cfg.Projector.Consumer = "projections-" + id
	// The relay publishes every tenant's events, other packages' tests'
	// too; projecting those (sealed under their own keys) would move
	// their tenants' checkpoints. The test projects one tenant of its own.
	cfg.Projector.Tenants = []chartstream.TenantID{testkit.MustTenant(t)}
	relay := testkit.MustPool(t, "DATABASE_RELAY_URL")
	var head eventstore.Cursor
	err := relay.QueryRow(testkit.Context(t), `SELECT coalesce(max(txid::text::bigint), 0), coalesce(max(position), 0) FROM events
		WHERE txid < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&head.TxID, &head.Position)
	if err != nil {
		t.Fatal(err)
	}
	if err := workers.SaveCheckpoint(testkit.Context(t), relay, cfg.Relay.Name, head); err != nil {
		t.Fatal(err)
	}
}

// openMain opens m and closes it when the test ends.
func openMain(t *testing.T, m *Main) {
	t.Helper()
	t.Cleanup(m.Close)
	if err := m.Open(testkit.Context(t)); err != nil {
		t.Fatalf("open: %v", err)
	}
}

// serveMain runs m and returns its base URL and stop, which cancels Run's
// context and returns Run's result. The test's end stops m too.
func serveMain(t *testing.T, m *Main) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return within 30s of cancellation")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return "http://" + m.Addr().String(), stop
}

func startMain(t *testing.T, m *Main) string {
	t.Helper()
	openMain(t, m)
	base, _ := serveMain(t, m)
	return base
}

// do sends a request with optional headers (name, value pairs) and returns
// the response with its body read.
func do(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testkit.Context(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
}

// wantReady asserts /readyz answers 200 with the postgres and redis checks
// ok, and exactly the named informational fields. NATS is informational:
// with NATS down the API keeps committing and /readyz stays 200.
func wantReady(t *testing.T, base string, info ...string) {
	t.Helper()
	resp, body := do(t, http.MethodGet, base+"/readyz")
	var r struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
		Info   map[string]any    `json:"info"`
	}
	decodeJSON(t, body, &r)
	got := slices.Sorted(maps.Keys(r.Checks))
	if resp.StatusCode != http.StatusOK || r.Status != "ok" || !slices.Equal(got, []string{"postgres", "redis"}) {
		t.Errorf("/readyz: %d %s, want 200 ok with checks postgres and redis", resp.StatusCode, body)
	}
	if gotInfo := slices.Sorted(maps.Keys(r.Info)); !slices.Equal(gotInfo, info) {
		t.Errorf("/readyz info %v, want %v", gotInfo, info)
	}
	if nats, ok := r.Info["nats"]; ok && nats != "ok" {
		t.Errorf("/readyz: nats is %v, want ok", nats)
	}
	for name, result := range r.Checks {
		if result != "ok" {
			t.Errorf("/readyz: check %s is %q, want ok", name, result)
		}
	}
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestMainEndToEnd(t *testing.T) {
	t.Parallel()
	base := startMain(t, newTestMain(t, true, true, ""))

	t.Run("healthz", func(t *testing.T) {
		t.Parallel()
		resp, body := do(t, http.MethodGet, base+"/healthz")
		var h map[string]string
		decodeJSON(t, body, &h)
		if resp.StatusCode != http.StatusOK || h["status"] != "ok" {
			t.Errorf("/healthz: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		t.Parallel()
		wantReady(t, base, "event_store_horizon_lag", "nats", "relay_lag")
	})
	t.Run("every response has a request id", func(t *testing.T) {
		t.Parallel()
		seen := map[string]bool{}
		for _, tc := range []struct{ method, path string }{
			{http.MethodGet, "/healthz"}, {http.MethodGet, "/readyz"},
			{http.MethodGet, "/no/such/route"}, {http.MethodDelete, "/healthz"},
		} {
			resp, _ := do(t, tc.method, base+tc.path)
			id := resp.Header.Get(echo.HeaderXRequestID)
			if !generatedID.MatchString(id) || seen[id] {
				t.Errorf("%s %s: X-Request-ID %q, want a fresh generated id", tc.method, tc.path, id)
			}
			seen[id] = true
		}
	})
	t.Run("caller request id", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			sent string
			echo bool
		}{
			{"req-42_a.B", true},
			{strings.Repeat("a", 64), true},
			{strings.Repeat("a", 65), false},
			{"has spaces in it", false},
			{"semi;colon", false},
			{"ünïcode", false},
		} {
			resp, _ := do(t, http.MethodGet, base+"/healthz", echo.HeaderXRequestID, tc.sent)
			got := resp.Header.Get(echo.HeaderXRequestID)
			if tc.echo && got != tc.sent {
				t.Errorf("sent X-Request-ID %q, got %q back, want it echoed", tc.sent, got)
			}
			if !tc.echo && !generatedID.MatchString(got) {
				t.Errorf("sent X-Request-ID %q, got %q back, want a fresh generated id", tc.sent, got)
			}
		}
	})
	for _, tc := range []struct {
		name, method, path, id string
		want                   api.Problem
	}{
		{"unknown route is a 404 problem", http.MethodGet, "/no/such/route", "trace-404", api.Problem{
			Type: "urn:chartstream:problem:not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "Not Found"}},
		{"wrong method is a 405 problem", http.MethodPost, "/healthz", "trace-405", api.Problem{
			Type: "urn:chartstream:problem:method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed, Detail: "Method Not Allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, tc.method, base+tc.path, echo.HeaderXRequestID, tc.id)
			tc.want.Instance, tc.want.RequestID = tc.path, tc.id
			wantProblem(t, resp, body, tc.want)
			if allow := resp.Header.Get(echo.HeaderAllow); tc.want.Status == http.StatusMethodNotAllowed && !strings.Contains(allow, http.MethodGet) {
				t.Errorf("Allow %q, want it to list GET", allow)
			}
		})
	}
}

// wantProblem asserts resp is the problem+json rendering of want.
func wantProblem(t *testing.T, resp *http.Response, body []byte, want api.Problem) {
	t.Helper()
	if resp.StatusCode != want.Status {
		t.Errorf("status %d, want %d", resp.StatusCode, want.Status)
	}
	if ct := resp.Header.Get(echo.HeaderContentType); ct != api.ProblemContentType {
		t.Errorf("Content-Type %q, want %q", ct, api.ProblemContentType)
	}
	if id := resp.Header.Get(echo.HeaderXRequestID); id != want.RequestID {
		t.Errorf("X-Request-ID %q, want %q", id, want.RequestID)
	}
	var got api.Problem
	decodeJSON(t, body, &got)
	if got.Type != want.Type || got.Title != want.Title || got.Status != want.Status ||
		got.Detail != want.Detail || got.Instance != want.Instance || got.RequestID != want.RequestID || got.Errors != nil {
		t.Errorf("problem %+v, want %+v", got, want)
	}
}

func TestMainReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		apiOn, works bool
		natsURL      func(t *testing.T) string
		info         []string
	}{
		{"all with embedded NATS", true, true, func(*testing.T) string { return "" }, []string{"event_store_horizon_lag", "nats", "relay_lag"}},
		{"serve with external NATS", true, false, func(t *testing.T) string { return testkit.Env(t, "NATS_URL") }, []string{"nats"}},
		{"all with external NATS", true, true, func(t *testing.T) string { return testkit.Env(t, "NATS_URL") }, []string{"event_store_horizon_lag", "nats", "relay_lag"}},
		// The API alone does not need NATS unless told where it is.
		{"serve without NATS", true, false, func(*testing.T) string { return "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newTestMain(t, tt.apiOn, tt.works, tt.natsURL(t))
			wantReady(t, startMain(t, m), tt.info...)
			if (m.nats != nil) != slices.Contains(tt.info, "nats") {
				t.Errorf("NATS connection %v, want one only when nats is reported", m.nats)
			}
		})
	}
}

func TestMainWorkersOnlyServesNoHTTP(t *testing.T) {
	t.Parallel()
	m := newTestMain(t, false, true, "")
	openMain(t, m)
	if m.Addr() != nil {
		t.Errorf("workers-only Main listens on %v", m.Addr())
	}
	ctx, cancel := context.WithCancel(testkit.Context(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before cancellation", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

// Cancelling Run's context stops new connections but lets a request in
// flight finish, and Run then returns nil.
func TestMainGracefulShutdown(t *testing.T) {
	t.Parallel()
	m := newTestMain(t, true, true, "")
	openMain(t, m)
	// A test-only route, added before serving, that holds its request until
	// the test releases it.
	started, release := make(chan struct{}), make(chan struct{})
	m.server.Handler().(*echo.Echo).GET("/test/slow", func(c echo.Context) error {
		close(started)
		select {
		case <-release:
		case <-c.Request().Context().Done():
			return c.Request().Context().Err()
		}
		return c.String(http.StatusOK, "finished")
	})
	base, stop := serveMain(t, m)

	type result struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/test/slow")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request never reached its handler")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// Shutdown closes the listener first: wait until new connections are
	// refused, so the release below happens while draining.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", m.Addr().String(), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 10s after cancellation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a request was in flight", err)
	case r := <-inFlight:
		t.Fatalf("in-flight request ended before release: %+v", r)
	default:
	}

	close(release)
	select {
	case r := <-inFlight:
		if r.err != nil || r.status != http.StatusOK || r.body != "finished" {
			t.Errorf("in-flight request: %+v, want 200 finished", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v, want nil after a graceful shutdown", err)
	}
}

func TestMainOpenFailureNamesTheDependency(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	m := newTestMain(t, true, false, "")
	m.Config.RedisURL = "redis://:hunter2@" + closed + "/0"
	t.Cleanup(m.Close) // Close after a failed Open must release what Open acquired.
	err = m.Open(testkit.Context(t))
	if err == nil || !strings.Contains(err.Error(), "Redis") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open with Redis down: %v, want an error naming Redis without its password", err)
	}
}
