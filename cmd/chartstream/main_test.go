package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

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
		wantReady(t, base, "analytics_replica", "event_store_horizon_lag", "nats", "relay_lag")
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
			if tc.echo && (got != tc.sent || resp.StatusCode != http.StatusOK) {
				t.Errorf("sent X-Request-ID %q, got %d and %q back, want 200 and it echoed", tc.sent, resp.StatusCode, got)
			}
			// A malformed one is refused, never silently replaced; the
			// refusal carries an id of its own for the log.
			if !tc.echo && (!generatedID.MatchString(got) || resp.StatusCode != http.StatusBadRequest) {
				t.Errorf("sent X-Request-ID %q, got %d and %q back, want 400 and a fresh generated id", tc.sent, resp.StatusCode, got)
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

func TestMainReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		apiOn, works bool
		natsURL      func(t *testing.T) string
		info         []string
	}{
		{"all with embedded NATS", true, true, func(*testing.T) string { return "" }, []string{"analytics_replica", "event_store_horizon_lag", "nats", "relay_lag"}},
		{"serve with external NATS", true, false, func(t *testing.T) string { return testkit.Env(t, "NATS_URL") }, []string{"analytics_replica", "nats"}},
		{"all with external NATS", true, true, func(t *testing.T) string { return testkit.Env(t, "NATS_URL") }, []string{"analytics_replica", "event_store_horizon_lag", "nats", "relay_lag"}},
		// The API alone does not need NATS unless told where it is. The
		// analytics replica is reported (DATABASE_REPLICA_URL is set).
		{"serve without NATS", true, false, func(*testing.T) string { return "" }, []string{"analytics_replica"}},
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
	m := newTestMain(t, false, true, testkit.Env(t, "NATS_URL"))
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

// Workers in several processes must share one JetStream: the relay's lease
// may land in one and the projector's in another. So `work` needs NATS_URL,
// and an embedded NATS server runs only in a single `all`: a second worker
// process of the same relay and projector is refused, whichever starts
// second, with one line saying why.
func TestWorkersRefuseEmbeddedNATSBesideOtherProcesses(t *testing.T) {
	t.Parallel()
	work := newTestMain(t, false, true, "")
	if err := work.Open(testkit.Context(t)); err == nil || !strings.Contains(err.Error(), "NATS_URL is required") {
		t.Errorf("work without NATS_URL: %v, want refused", err)
	}
	work.Close()

	first := newTestMain(t, true, true, "")
	if err := first.Open(testkit.Context(t)); err != nil {
		first.Close()
		t.Fatal(err)
	}
	for _, nats := range []struct{ name, url string }{{"embedded", ""}, {"external", testkit.Env(t, "NATS_URL")}} {
		second := newTestMain(t, true, true, nats.url)
		second.Config.Relay, second.Config.Projector = first.Config.Relay, first.Config.Projector
		err := second.Open(testkit.Context(t))
		second.Close()
		if !errors.Is(err, workers.ErrTopology) || strings.Contains(err.Error(), "\n") {
			t.Errorf("a second all (%s NATS) beside an all with embedded NATS: %v, want one line refusing it", nats.name, err)
		}
	}
	first.Close()
	// Once it is gone, another may start.
	again := newTestMain(t, true, true, "")
	again.Config.Relay, again.Config.Projector = first.Config.Relay, first.Config.Projector
	openMain(t, again)
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
