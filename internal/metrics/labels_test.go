package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/metrics"
	"github.com/chartstream/chartstream/internal/metrics/metricstest"
	"github.com/chartstream/chartstream/workers"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustMetrics(t *testing.T, cfg metrics.Config) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(quiet(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// phi is what a hostile or careless client puts where it should not: a
// name, a birth date, an address. None of it may reach a label.
var phi = []string{"Jane", "Doe", "1970-01-01", "Elm Street"}

// TestLabelsStayBounded drives every hook, round after round, with fresh
// tenants and fresh client-controlled text (methods, tiers, reasons, PHI
// among them) over every route and status, and checks that every label
// value is from its finite set, none carries PHI, and the number of series
// stops growing once the busiest tenants have their labels: new input
// makes no new series.
func TestLabelsStayBounded(t *testing.T) {
	t.Parallel()
	optedIn := chartstream.NewTenantID()
	m := mustMetrics(t, metrics.Config{TenantLabels: []chartstream.TenantID{optedIn}, TopTenants: 3})
	routes := []string{"/v1/patients", "/v1/patients/:id", "/healthz", ""}
	statuses := []int{-1, 0, 200, 201, 401, 404, 429, 503, 999, 1000}
	errs := []error{nil, chartstream.Errorf(chartstream.ECONFLICT, "Jane Doe"),
		&chartstream.Error{Code: chartstream.ECONFLICT, Message: "x", Err: chartstream.ErrConcurrentWrite}, errors.New("Elm Street")}
	busy := []chartstream.TenantID{chartstream.NewTenantID(), chartstream.NewTenantID(), chartstream.NewTenantID()}
	series := func() int { return metricstest.MustServe(t, m.Handler()).Series("chartstream_") }
	var first int
	for round := range 4 {
		odd := fmt.Sprintf("Jane Doe %d, 1970-01-01, Elm Street", round)
		methods := []string{"GET", "POST", "get", odd, "PROPFIND"}
		tiers := []chartstream.Tier{chartstream.TierStandard, chartstream.TierEnterprise, "", chartstream.Tier(odd)}
		i := 0
		for _, route := range routes {
			for _, method := range methods {
				for _, status := range statuses {
					for _, tier := range tiers {
						i++
						tenant := chartstream.NewTenantID() // a new tenant each time
						if i%2 == 0 {
							tenant = busy[i%len(busy)]
						}
						m.Request(api.RequestParams{Route: route, Method: method, Status: status, Duration: time.Duration(i) * time.Microsecond, Tenant: tenant, Tier: tier})
						m.RateLimited(api.RateLimitedParams{Tenant: tenant, Tier: tier, Reason: []string{api.LimitRate, api.LimitInFlight, odd}[i%3]})
						m.Written(eventstore.WrittenParams{Duration: time.Millisecond, Events: 1, Err: errs[i%len(errs)]})
						m.GroupSent(eventstore.GroupSentParams{Writes: 1 + i%64})
						m.Applied(chartstream.Event{Tenant: tenant, RecordedAt: time.Now()}, time.Now())
					}
				}
			}
		}
		m.Rank()
		if round == 1 { // the busiest have had their labels for a round
			first = series()
		}
	}
	fams := metricstest.MustServe(t, m.Handler())
	tenants := []string{optedIn.String()}
	for _, b := range busy {
		tenants = append(tenants, b.String())
	}
	metricstest.Check(t, fams, metricstest.Labels(routes[:3], tenants, nil), phi...)
	if got := fams.Values("chartstream_tenant_http_requests_total", "tenant"); len(got) > 4 {
		t.Errorf("%d tenant labels: want at most the 3 busiest and other", len(got))
	}
	if last := series(); last > first {
		t.Errorf("series grew from %d to %d with new input of the same kinds", first, last)
	}
}

// TestTenantLabels: an opted-in tenant keeps its label; the busiest get
// theirs at the next rank and lose them (their series deleted) when others
// become busier; everyone else is "other".
func TestTenantLabels(t *testing.T) {
	t.Parallel()
	optedIn, a, b, quietOne := chartstream.NewTenantID(), chartstream.NewTenantID(), chartstream.NewTenantID(), chartstream.NewTenantID()
	m := mustMetrics(t, metrics.Config{TenantLabels: []chartstream.TenantID{optedIn}, TopTenants: 1})
	send := func(tenant chartstream.TenantID, n int) {
		for range n {
			m.Request(api.RequestParams{Route: "/v1/patients", Method: "GET", Status: 200, Tenant: tenant, Tier: chartstream.TierStandard})
		}
	}
	labels := func() []string {
		return metricstest.MustServe(t, m.Handler()).Values("chartstream_tenant_http_requests_total", "tenant")
	}
	send(optedIn, 1)
	send(a, 10)
	if got, want := labels(), sorted(optedIn.String(), "other"); !equal(got, want) {
		t.Fatalf("before a rank: %v, want %v", got, want)
	}
	m.Rank()
	send(a, 1)
	send(quietOne, 1)
	if got, want := labels(), sorted(optedIn.String(), a.String(), "other"); !equal(got, want) {
		t.Fatalf("after a rank: %v, want %v", got, want)
	}
	send(b, 1000)
	m.Rank()
	if got, want := labels(), sorted(optedIn.String(), "other"); !equal(got, want) {
		t.Fatalf("after b outgrew a: %v, want %v (a's series deleted)", got, want)
	}
	send(b, 1)
	if got, want := labels(), sorted(optedIn.String(), b.String(), "other"); !equal(got, want) {
		t.Fatalf("b's traffic: %v, want %v", got, want)
	}
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestLagsMerge: projection lag keeps an opted-in tenant apart and merges
// the others into "other" (the most events and seconds, the sum set aside).
func TestLagsMerge(t *testing.T) {
	t.Parallel()
	optedIn, x, y := chartstream.NewTenantID(), chartstream.NewTenantID(), chartstream.NewTenantID()
	m := mustMetrics(t, metrics.Config{TenantLabels: []chartstream.TenantID{optedIn}, SampleInterval: time.Hour})
	m.SampleRelayLag(func(context.Context) (workers.RelayLag, error) { return workers.RelayLag{Events: 7, Seconds: 1.5}, nil })
	m.SampleProjectionLag(func(context.Context) ([]workers.ProjectionLag, error) {
		return []workers.ProjectionLag{
			{Tenant: optedIn, Projection: "chart", Events: 1, Seconds: 1},
			{Tenant: x, Projection: "chart", Events: 5, Seconds: 2, SetAside: 1},
			{Tenant: y, Projection: "chart", Events: 3, Seconds: 9, SetAside: 2},
		}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	var fams metricstest.Families
	for time.Now().Before(deadline) {
		if fams = metricstest.MustServe(t, m.Handler()); fams["chartstream_projection_lag_events"] != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := map[string]float64{}
	for _, name := range []string{"chartstream_projection_lag_events", "chartstream_projection_lag_seconds", "chartstream_projection_set_aside_events"} {
		for _, s := range fams[name].GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "tenant" {
					got[name+"/"+lp.GetValue()] = s.GetGauge().GetValue()
				}
			}
		}
	}
	want := map[string]float64{
		"chartstream_projection_lag_events/" + optedIn.String(): 1, "chartstream_projection_lag_events/other": 5,
		"chartstream_projection_lag_seconds/" + optedIn.String(): 1, "chartstream_projection_lag_seconds/other": 9,
		"chartstream_projection_set_aside_events/" + optedIn.String(): 0, "chartstream_projection_set_aside_events/other": 3,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lags %v, want %v", got, want)
	}
	if v := fams["chartstream_relay_lag_events"].GetMetric()[0].GetGauge().GetValue(); v != 7 {
		t.Errorf("relay lag events %v, want 7", v)
	}
}
