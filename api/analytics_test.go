package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// analyticsRoutes are the routes under /v1/analytics in the route table.
func (e *apiEnv) analyticsRoutes() []api.RouteInfo {
	var out []api.RouteInfo
	for _, r := range e.server.RouteTable() {
		if strings.HasPrefix(r.Path, "/v1/analytics/") {
			out = append(out, r)
		}
	}
	if len(out) != 3 {
		e.t.Fatalf("%d analytics routes, want census, observations and medications", len(out))
	}
	return out
}

// projectAnalytics applies the tenant's committed events to the analytics
// tables once (the api tests run no projector) and waits until the
// replica has them.
func (e *apiEnv) projectAnalytics(tenant chartstream.TenantID) {
	e.t.Helper()
	want := e.eventCount(tenant)
	var events []chartstream.Event
	eventually(e.t, 10*time.Second, "ReadAll returns every event of the tenant", func() bool {
		var err error
		events, _, err = e.store.ReadAll(testkit.Context(e.t), eventstore.Filter{Tenant: tenant}, eventstore.Cursor{}, 1000)
		return err == nil && len(events) >= want
	})
	testkit.MustApplyAnalytics(e.t, tenant, events)
	testkit.WaitReplica(e.t)
}

// An analyst reads aggregates from the replica, each answer saying its lag;
// small cells are null and named.
func TestAnalyticsAnswerFromTheReplicaWithItsLag(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.projectAnalytics(c.tenant)
	analyst := e.token(c.tenant, chartstream.RoleAnalyst)
	for _, r := range e.analyticsRoutes() {
		got := e.do(http.MethodGet, r.Path, analyst, nil).want(t, http.StatusOK)
		if lag, err := strconv.ParseInt(got.Header.Get(api.HeaderReplicaLag), 10, 64); err != nil || lag < 0 {
			t.Errorf("%s: %s %q, want milliseconds", r.Path, api.HeaderReplicaLag, got.Header.Get(api.HeaderReplicaLag))
		}
		if got.Body["min_cell"] != 11.0 {
			t.Errorf("%s: min_cell %v, want 11", r.Path, got.Body["min_cell"])
		}
	}
	// The chart's one prescription today is a small cell.
	meds := e.do(http.MethodGet, "/v1/analytics/medications", analyst, nil).want(t, http.StatusOK)
	if !strings.Contains(string(meds.Raw), `"orders":null,"suppressed":["orders"]`) {
		t.Errorf("one order at min cell 11: %s, want it suppressed", meds.Raw)
	}
	one := newAPIEnvWith(t, withMinCell(t, 1))
	meds = one.do(http.MethodGet, "/v1/analytics/medications", one.token(c.tenant, chartstream.RoleAnalyst), nil).want(t, http.StatusOK)
	if !strings.Contains(string(meds.Raw), `"code":"197361","orders":1}`) {
		t.Errorf("one order at min cell 1: %s, want it shown", meds.Raw)
	}
}

// Bad input is 400 naming the parameter, before the replica is asked.
func TestAnalyticsBadInputIs400(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	_, analyst := e.newTenant(chartstream.RoleAnalyst)
	long := strings.Repeat("x", 201)
	for _, tc := range []struct{ query, field string }{
		{"/v1/analytics/census?from=2026-13-01", "from"},
		{"/v1/analytics/census?to=yesterday", "to"},
		{"/v1/analytics/census?from=2026-02-01&to=2026-01-01", "from"},
		{"/v1/analytics/census?from=2020-01-01&to=2026-01-01", "from"},
		{"/v1/analytics/census?location=" + long, "location"},
		{"/v1/analytics/census?ward=ICU", "ward"},
		{"/v1/analytics/census?Ward=ICU", "?"},
		{"/v1/analytics/observations?code=8867-4&code=8310-5", "code"},
		{"/v1/analytics/observations?code=%208867-4", "code"},
		{"/v1/analytics/observations?location=ICU", "location"},
		{"/v1/analytics/medications?code=197361", "code"},
		{"/v1/analytics/medications?from=2026-01-01&from=2026-01-02", "from"},
	} {
		e.do(http.MethodGet, tc.query, analyst, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, tc.field)
	}
}

// With the replica gone (a proxy refusing it), not configured, or not a
// replica at all, the analytics answer 503 with Retry-After; the primary is
// never read instead.
func TestAnalyticsAreUnavailableWithoutTheReplica(t *testing.T) {
	t.Parallel()
	proxy, url := testkit.MustPGProxy(t, "DATABASE_REPLICA_URL")
	pool, err := postgres.Connect(testkit.Context(t), postgres.Config{URL: url, Lazy: true, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	envs := map[string]*apiEnv{
		"replica gone":  newAPIEnvWith(t, withAnalytics(mustAnalyticsReader(t, pool, 11))),
		"no replica":    newAPIEnvWith(t, withAnalytics(nil)),
		"not a replica": newAPIEnvWith(t, withAnalytics(mustAnalyticsReader(t, testkit.MustPool(t, "DATABASE_ANALYTICS_URL"), 11))),
	}
	e := envs["replica gone"]
	tenant, analyst := e.newTenant(chartstream.RoleAnalyst)
	e.do(http.MethodGet, "/v1/analytics/census", analyst, nil).want(t, http.StatusOK)
	proxy.Refuse(true)
	for name, env := range envs {
		tok := env.token(tenant, chartstream.RoleAnalyst)
		for _, r := range env.analyticsRoutes() {
			got := env.do(http.MethodGet, r.Path, tok, nil).wantProblem(t, http.StatusServiceUnavailable, chartstream.EUNAVAILABLE)
			if got.Header.Get("Retry-After") == "" {
				t.Errorf("%s, %s: 503 without Retry-After", name, r.Path)
			}
		}
	}
}

// Analytics are for analysts only; clinicians, nurses, auditors and
// administrators are refused them.
func TestAnalyticsAreForAnalystsOnly(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant := testkit.MustTenant(t)
	for _, role := range []chartstream.Role{chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor, chartstream.RoleTenantAdmin} {
		for _, r := range e.analyticsRoutes() {
			e.do(http.MethodGet, r.Path, e.token(tenant, role), nil).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN)
		}
	}
}
