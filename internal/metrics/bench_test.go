package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/metrics"
)

// BenchmarkRequest is what metrics add to a request: the API's series and
// the tenant's, for an opted-in tenant and for one among "other".
func BenchmarkRequest(b *testing.B) {
	optedIn := chartstream.NewTenantID()
	m, err := metrics.New(quiet(), metrics.Config{TenantLabels: []chartstream.TenantID{optedIn}, TopTenants: 10})
	if err != nil {
		b.Fatal(err)
	}
	for name, tenant := range map[string]chartstream.TenantID{"opted-in": optedIn, "other": chartstream.NewTenantID()} {
		b.Run(name, func(b *testing.B) {
			p := api.RequestParams{Route: "/v1/patients/:id/observations", Method: "POST", Status: 201, Duration: 3 * time.Millisecond,
				Tenant: tenant, Tier: chartstream.TierEnterprise}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.Request(p)
				}
			})
		})
	}
}

// BenchmarkWritten is what metrics add to an event store write.
func BenchmarkWritten(b *testing.B) {
	m, err := metrics.New(quiet(), metrics.Config{})
	if err != nil {
		b.Fatal(err)
	}
	p := eventstore.WrittenParams{Duration: time.Millisecond, Events: 1}
	b.ReportAllocs()
	for b.Loop() {
		m.Written(p)
	}
}

// BenchmarkAPIRequest is a request through the API's middleware (request
// id, log line, route) to /healthz: without observers, with the metrics,
// and with the metrics and a sampling tracer.
func BenchmarkAPIRequest(b *testing.B) {
	m, err := metrics.New(quiet(), metrics.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		deps api.Deps
	}{
		{"off", api.Deps{Logger: quiet()}},
		{"metrics", api.Deps{Logger: quiet(), Observer: m}},
		{"metrics+traces", api.Deps{Logger: quiet(), Observer: m, TracerProvider: sdktrace.NewTracerProvider()}},
	} {
		s, err := api.NewServer(c.deps, api.Config{})
		if err != nil {
			b.Fatal(err)
		}
		h := s.Handler()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
			}
		})
	}
}
