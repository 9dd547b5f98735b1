package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
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
	if natsURL == "" {
		// The embedded server takes no credentials or TLS (the stack's
		// may have some: CS_TLS=1).
		cfg.NATS = messaging.Config{}
	}
	// Plain HTTP, spoken by http.DefaultClient, even on a CS_TLS=1 stack:
	// TestEndToEndOverTLS sets TLS itself.
	cfg.TLSCertFile, cfg.TLSKeyFile = "", ""
	// The dev environment has a dev key; tests, like make run, allow it.
	cfg.Auth.AllowDevKey = true
	// Reads with a consistency token wait for the pipeline: on a loaded
	// machine a parallel test's open transaction can hold the relay's
	// gap-free read back for seconds.
	cfg.ConsistencyWait = 8 * time.Second
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
	// JetStream reserves a stream's MaxBytes on the server's disk: the
	// default 10 GiB per test stream would exhaust a shared server.
	cfg.Relay.MaxBytes = 64 << 20
	if cfg.NATSURL != "" {
		t.Cleanup(func() { deleteStream(t, cfg.NATSURL, cfg.Relay.Stream) })
	}
	cfg.Projector.Consumer = "projections-" + id
	// The relay publishes every tenant's events, other packages' tests'
	// too; projecting those (sealed under their own keys) would move
	// their tenants' checkpoints. The test projects one tenant of its own.
	cfg.Projector.Tenants = []chartstream.TenantID{testkit.MustTenant(t)}
	// The anchor worker signs its own tenant's checkpoints only, on a
	// stream of its own; the de-identifier likewise: a lease, stream and
	// subjects of its own, for the test's tenant.
	cfg.Anchor.Name, cfg.Anchor.Tenants = "test-"+id, cfg.Projector.Tenants
	cfg.Anchor.Stream.Stream, cfg.Anchor.Stream.SubjectPrefix = "TEST_ANCHORS_"+strings.ToUpper(id), "anchors"+id
	cfg.Deid.Name, cfg.Deid.Stream, cfg.Deid.SubjectPrefix = "deid-"+id, cfg.Relay.Stream+"_DEID", "d"+id
	cfg.Deid.Tenants = cfg.Projector.Tenants
	// The analytics projector too: other packages' tests apply their own
	// tenants' analytics.
	cfg.Analytics.Tenants = cfg.Projector.Tenants
	if cfg.NATSURL != "" {
		t.Cleanup(func() {
			deleteStream(t, cfg.NATSURL, cfg.Anchor.Stream.Stream)
			deleteStream(t, cfg.NATSURL, cfg.Deid.Stream)
		})
	}
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
	if err := workers.SaveCheckpoint(testkit.Context(t), relay, "anchor."+cfg.Anchor.Name, head); err != nil {
		t.Fatal(err)
	}
}

// deleteStream removes a test's stream from a shared NATS server, with
// the stack's credentials.
func deleteStream(t *testing.T, url, stream string) {
	var opts []nats.Option
	if creds := os.Getenv("NATS_CREDS_FILE"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Errorf("delete stream %s: %v", stream, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		err = js.DeleteStream(context.Background(), stream)
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("delete stream %s: %v", stream, err)
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
	scheme := "http://"
	if m.Config.TLSCertFile != "" {
		scheme = "https://"
	}
	return scheme + m.Addr().String(), stop
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
	for _, name := range []string{"nats", "analytics_replica"} {
		if v, ok := r.Info[name]; ok && v != "ok" {
			t.Errorf("/readyz: %s is %v, want ok", name, v)
		}
	}
	for name, result := range r.Checks {
		if result != "ok" {
			t.Errorf("/readyz: check %s is %q, want ok", name, result)
		}
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
