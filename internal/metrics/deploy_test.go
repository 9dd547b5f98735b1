package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/metrics"
	"github.com/chartstream/chartstream/internal/metrics/metricstest"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The dashboards and alerts ship beside the code (deploy/); these tests
// hold them to the series the code exports.

// fullExposition is an exposition in which every family of ours has
// samples: every hook called once, a real pool and a real NATS connection
// watched, the lags sampled.
func fullExposition(t *testing.T) (metricstest.Families, *metrics.Metrics) {
	t.Helper()
	m := mustMetrics(t, metrics.Config{SampleInterval: time.Hour})
	tenant := chartstream.NewTenantID()
	m.Request(api.RequestParams{Route: "/v1/patients", Method: "POST", Status: 201, Duration: time.Millisecond, Tenant: tenant, Tier: chartstream.TierPremium})
	m.RateLimited(api.RateLimitedParams{Tenant: tenant, Tier: chartstream.TierPremium, Reason: api.LimitRate})
	m.Written(eventstore.WrittenParams{Duration: time.Millisecond, Events: 1})
	m.GroupSent(eventstore.GroupSentParams{Writes: 2})
	m.Published(workers.PublishedParams{Event: chartstream.Event{Tenant: tenant, RecordedAt: time.Now()}, AckedAt: time.Now()})
	m.Applied(chartstream.Event{Tenant: tenant, RecordedAt: time.Now()}, time.Now())
	m.WatchPools(map[string]*pgxpool.Pool{"app": testkit.MustAppPool(t)})
	m.WatchNATS(testkit.MustNATSServer(t).MustConnect(t))
	m.CountDeadLettered(func() int64 { return 0 })
	m.SampleRelayLag(func(context.Context) (workers.RelayLag, error) { return workers.RelayLag{}, nil })
	m.SampleProjectionLag(func(context.Context) ([]workers.ProjectionLag, error) {
		return []workers.ProjectionLag{{Tenant: tenant, Projection: "chart"}}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }() // samples at once
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := metricstest.MustServe(t, m.Handler())
		if fams["chartstream_projection_lag_events"] != nil || time.Now().After(deadline) {
			return fams, m
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEveryFamilyIsExported: every family the package declares shows in
// the exposition, and every chartstream_ family shown is declared (and so
// checked by the end-to-end test after a clinical load).
func TestEveryFamilyIsExported(t *testing.T) {
	t.Parallel()
	fams, m := fullExposition(t)
	declared := m.Families()
	for _, name := range declared {
		if fams[name] == nil {
			t.Errorf("family %s is declared but not exported", name)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "chartstream_") && !slices.Contains(declared, name) {
			t.Errorf("family %s is exported but not declared", name)
		}
	}
}

// dashboard is the part of Grafana's dashboard JSON model the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
			Query      any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("../../deploy/helm/chartstream/files/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found: %v", err)
	}
	out := make(map[string]dashboard)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// grafanaVars are the dashboard variables an expression may use, replaced
// by values a parser accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "${tenant}", "x", "$tenant", "x")

// rollups must be given a range: MetricsQL (a superset of PromQL) accepts
// them without one, PromQL does not.
var rollups = []string{"rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
	"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "quantile_over_time", "last_over_time"}

// metricNames parses a PromQL expression (with MetricsQL's parser: see the
// commit that added it) and returns the metric names it selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := metricsql.Parse(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		switch e := e.(type) {
		case *metricsql.MetricExpr:
			for _, group := range e.LabelFilterss {
				for _, f := range group {
					if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
						names = append(names, f.Value)
					}
				}
			}
			if len(e.LabelFilterss) == 0 || len(names) == 0 {
				t.Errorf("%s: %q selects series without naming their metric", where, expr)
			}
		case *metricsql.FuncExpr:
			if slices.Contains(rollups, strings.ToLower(e.Name)) {
				for _, arg := range e.Args {
					if r, ok := arg.(*metricsql.RollupExpr); !ok || r.Window == nil {
						t.Errorf("%s: %s() without a range in %q", where, e.Name, expr)
					}
				}
			}
		}
	})
	return names
}

// exported reports whether name is in the exposition, a histogram's
// _bucket, _sum and _count series included.
func exported(fams metricstest.Families, name string) bool {
	if fams[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil {
			return true
		}
	}
	return false
}

// TestDashboardsNameExportedMetrics loads each dashboard in Grafana's JSON
// model and checks that every query parses and names only metrics in the
// exposition; the tenant dashboard has a tenant variable, and every one of
// its panels is filtered by it.
func TestDashboardsNameExportedMetrics(t *testing.T) {
	t.Parallel()
	fams, _ := fullExposition(t)
	dashboards := readDashboards(t)
	for _, want := range []string{"chartstream-overview.json", "chartstream-tenant.json"} {
		if _, ok := dashboards[want]; !ok {
			t.Errorf("dashboard %s is missing", want)
		}
	}
	for file, d := range dashboards {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", file)
		}
		ids := map[int]bool{}
		var walk func(ps []panel)
		queries := 0
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d twice", file, p.ID)
				}
				ids[p.ID] = true
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", file, p.Title)
				}
				for _, tg := range p.Targets {
					queries++
					if file == "chartstream-tenant.json" && !strings.Contains(tg.Expr, `tenant=~"$tenant"`) {
						t.Errorf("%s: panel %q is not filtered by the tenant variable: %s", file, p.Title, tg.Expr)
					}
					for _, name := range metricNames(t, file+": "+p.Title, tg.Expr) {
						if !exported(fams, name) {
							t.Errorf("%s: panel %q names %s, which is not exported", file, p.Title, name)
						}
					}
				}
			}
		}
		walk(d.Panels)
		if queries == 0 {
			t.Errorf("%s has no queries", file)
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`).FindStringSubmatch(v.Definition)
			if m == nil || !exported(fams, m[1]) || fams.Values(m[1], m[2]) == nil {
				t.Errorf("%s: variable %s: %q must be label_values of an exported metric and label", file, v.Name, v.Definition)
			}
		}
	}
	tenant := dashboards["chartstream-tenant.json"]
	if !slices.ContainsFunc(tenant.Templating.List, func(v struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Definition string `json:"definition"`
		Query      any    `json:"query"`
	}) bool {
		return v.Name == "tenant"
	}) {
		t.Error("the tenant dashboard has no tenant variable")
	}
}
