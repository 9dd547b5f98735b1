package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/metrics/metricstest"
	"github.com/chartstream/chartstream/internal/testkit"
)

// metricsToken is the tests' METRICS_TOKEN.
const metricsToken = "metrics-token-for-the-tests"

// mintToken signs a clinician's dev token for tenant with m's dev key.
func mintToken(t *testing.T, m *Main, tenant chartstream.TenantID) string {
	t.Helper()
	key, err := auth.LoadDevKey(m.Config.Auth.DevKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.NewMinter(key).Mint(auth.MintParams{Tenant: tenant, Subject: "dr-test", Roles: []chartstream.Role{chartstream.RoleClinician},
		TTL: time.Hour, Issuer: m.Config.Auth.Issuer, Audience: m.Config.Auth.Audience})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// sendJSON sends a request with a bearer token and an optional JSON body
// and returns the status and body.
func sendJSON(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var h []string
	if token != "" {
		h = append(h, "Authorization", "Bearer "+token)
	}
	if body == nil {
		resp, raw := do(t, method, url, h...)
		return resp.StatusCode, raw
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(testkit.Context(t), method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// PHI the metrics test sends in bodies, queries and URLs; no label may
// carry any of it.
var testPHI = []string{"Jane", "Doe", "1970-01-01", "Elm"}

// TestMetricsAfterClinicalLoad runs the real process (API and workers)
// with metrics on, sends a clinical load with PHI in bodies, queries and
// odd URLs, a tenant over its rate limit and requests no route answers,
// then scrapes /metrics on its own listener and on the API's (with the
// token): every family the metrics package declares is there, every label
// value is from its finite set, and none carries PHI.
func TestMetricsAfterClinicalLoad(t *testing.T) {
	t.Parallel()
	m := newTestMain(t, true, true, "")
	tenant := m.Config.Projector.Tenants[0]
	limited := testkit.MustTenant(t)
	m.Config.Metrics = MetricsConfig{Addr: "127.0.0.1:0", Token: metricsToken, TenantLabels: tenant.String(), SampleInterval: time.Second}
	m.Config.RateOverrides = limited.String() + "=1"
	base := startMain(t, m)
	token := mintToken(t, m, tenant)

	var patients []string
	for i := range 3 {
		status, raw := sendJSON(t, http.MethodPost, base+"/v1/patients", token, map[string]any{
			"mrn": "MET-" + chartstream.NewTenantID().String()[:8], "name": map[string]any{"family": "Doe", "given": []string{"Jane"}},
			"birth_date": "1970-01-01", "sex": "female", "contact": map[string]any{"email": fmt.Sprintf("jane.doe%d@elm.example", i)},
		})
		if status != http.StatusCreated {
			t.Fatalf("register: %d %s", status, raw)
		}
		var res chartstream.CommandResult
		decodeJSON(t, raw, &res)
		patients = append(patients, res.ID.String())
	}
	for _, p := range patients {
		if status, raw := sendJSON(t, http.MethodPost, base+"/v1/patients/"+p+"/observations", token, map[string]any{
			"code": "8867-4", "system": patient.LOINC, "value": 72, "unit": "/min", "effective_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		}); status != http.StatusCreated {
			t.Fatalf("observe: %d %s", status, raw)
		}
		if status, raw := sendJSON(t, http.MethodPost, base+"/v1/patients/"+p+"/medication-orders", token, map[string]any{
			"medication": map[string]any{"code": "197361", "display": "Amlodipine 5 MG Oral Tablet", "system": patient.RxNorm},
			"dose":       "5 mg", "route": "oral", "frequency": "daily",
		}); status != http.StatusCreated {
			t.Fatalf("prescribe: %d %s", status, raw)
		}
		sendJSON(t, http.MethodGet, base+"/v1/patients/"+p, token, nil)
	}
	for _, path := range []string{"/v1/patients?name=Jane%20Doe&birth_date=1970-01-01", "/fhir/R4/Patient?name=Jane&birthdate=1970-01-01",
		"/v1/patients/Jane-Doe-1970-01-01", "/v1/patients/" + patients[0] + "/Jane%20Doe", "/Jane%20Doe/1970-01-01/Elm", "/v1/../../etc/passwd%20Jane"} {
		sendJSON(t, http.MethodGet, base+path, token, nil)
	}
	sendJSON(t, "JANEDOE", base+"/v1/patients", token, nil)
	sendJSON(t, http.MethodGet, base+"/v1/patients/"+patients[0], "", nil) // 401
	limitedToken := mintToken(t, m, limited)
	rejected := false
	for range 10 {
		status, _ := sendJSON(t, http.MethodGet, base+"/v1/patients?mrn=X", limitedToken, nil)
		rejected = rejected || status == http.StatusTooManyRequests
	}
	if !rejected {
		t.Fatal("the limited tenant was never refused")
	}

	metricsURL := "http://" + m.MetricsAddr().String() + "/metrics"
	var fams metricstest.Families
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = metricstest.MustScrape(t, metricsURL, "")
		applied := fams.Values("chartstream_projector_applied_events_total", "tenant")
		lagged := fams.Values("chartstream_projection_lag_events", "tenant")
		if len(applied) > 0 && len(lagged) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no projection applied or lag sampled within 30s: applied %v, lag %v", applied, lagged)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range m.metrics.Families() {
		if fams[name] == nil {
			t.Errorf("after a clinical load, /metrics has no %s", name)
		}
	}
	metricstest.Check(t, fams, metricstest.Labels(m.server.RoutePatterns(), []string{tenant.String()}, projectionNames()), testPHI...)
	if got := fams.Values("chartstream_rate_limit_rejections_total", "tenant"); strings.Join(got, ",") != "other" {
		t.Errorf("rate-limit rejections by tenant %v, want only other (the limited tenant is not opted in)", got)
	}
	if got := fams.Values("chartstream_tenant_http_requests_total", "tenant"); !strings.Contains(strings.Join(got, ","), tenant.String()) {
		t.Errorf("tenant requests by tenant %v, want the opted-in tenant %s", got, tenant)
	}
	if got := fams.Values("chartstream_db_pool_max_connections", "pool"); strings.Join(got, ",") != "app,relay" {
		t.Errorf("pools %v, want app and relay", got)
	}

	// The API's listener serves the same exposition to the token only.
	if resp, _ := do(t, http.MethodGet, base+"/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics on the API without the token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodGet, base+"/metrics", "Authorization", "Bearer not-the-metrics-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics on the API with another token: %d, want 401", resp.StatusCode)
	}
	if api := metricstest.MustScrape(t, base+"/metrics", metricsToken); api["chartstream_http_requests_total"] == nil {
		t.Error("/metrics on the API with the token has no chartstream_http_requests_total")
	}
}

// TestTelemetrySettings: bad metrics and tracing settings are refused with
// one line naming the variable; tracing is on only with an endpoint and not
// when the standard variables turn it off.
func TestTelemetrySettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		metrics  MetricsConfig
		endpoint string
		want     string
	}{
		{MetricsConfig{Addr: "localhost"}, "", "METRICS_ADDR must be host:port"},
		{MetricsConfig{Token: "short"}, "", "METRICS_TOKEN must have at least 16 characters"},
		{MetricsConfig{TenantLabels: "hospital-a"}, "", "METRICS_TENANT_LABELS must be tenant ids"},
		{MetricsConfig{TopTenants: 101}, "", "top tenants"},
		{MetricsConfig{SampleInterval: time.Millisecond}, "", "METRICS_SAMPLE_INTERVAL must be at least 1s"},
		{MetricsConfig{}, "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL"},
	} {
		c := configFromEnv(t)
		c.Auth.AllowDevKey = true
		c.Metrics, c.OTLPEndpoint = tt.metrics, tt.endpoint
		if err := c.Validate(true, true); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v, %q: %v, want %q", tt.metrics, tt.endpoint, err, tt.want)
		}
	}
	c := configFromEnv(t)
	c.Auth.AllowDevKey = true
	c.Metrics = MetricsConfig{Addr: "127.0.0.1:0", Token: metricsToken, TenantLabels: chartstream.NewTenantID().String() + ", " + chartstream.NewTenantID().String(), TopTenants: 5}
	if err := c.Validate(true, true); err != nil {
		t.Errorf("valid metrics settings refused: %v", err)
	}
	if !(MetricsConfig{Token: metricsToken}).on() || (MetricsConfig{TopTenants: 10}).on() {
		t.Error("metrics must be on with a listener or a token, and only then")
	}
}

// Tracing is off without an endpoint, on with one, and off again when the
// standard variables say so. It sets the environment: not parallel.
func TestTracingConfigured(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	if tracingConfigured(Config{}) {
		t.Error("tracing on without an endpoint")
	}
	on := Config{OTLPEndpoint: "http://127.0.0.1:4318"}
	if !tracingConfigured(on) {
		t.Error("tracing off with an endpoint")
	}
	tp, err := newTracerProvider(context.Background(), on)
	if err != nil || tp == nil {
		t.Fatalf("tracer provider: %v, %v", tp, err)
	}
	_ = tp.Shutdown(context.Background())
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if tracingConfigured(on) {
		t.Error("tracing on with OTEL_SDK_DISABLED=true")
	}
}
