package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// httpSeries are the API's series (api.Observer).
type httpSeries struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	tenantRequests *prometheus.CounterVec
	tenantDuration *prometheus.HistogramVec
	rateLimited    *prometheus.CounterVec
}

// latencyBuckets are the API's latency buckets: 0.2 s is the p95 the
// alerts hold it to.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5}

func (m *Metrics) newHTTP() {
	m.httpSeries = httpSeries{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method, status code and the caller's tenant tier (none before authentication)."},
			[]string{"route", "method", "code", "tier"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help: "Time from a request's arrival to its answer, by route pattern, method and tenant tier.", Buckets: latencyBuckets},
			[]string{"route", "method", "tier"}),
		tenantRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "tenant_http_requests_total",
			Help: "Authenticated HTTP requests answered, by tenant (opted-in and busiest tenants; \"other\" for the rest) and status class."},
			[]string{"tenant", "class"}),
		tenantDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "tenant_http_request_duration_seconds",
			Help: "Time to answer authenticated requests, by tenant (opted-in and busiest; \"other\" for the rest).", Buckets: latencyBuckets},
			[]string{"tenant"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "rate_limit_rejections_total",
			Help: "Requests refused with 429, by tenant, tier and limit (rate: requests per second; in_flight: the per-process bulkhead)."},
			[]string{"tenant", "tier", "reason"}),
	}
	m.register(m.requests, "chartstream_http_requests_total")
	m.register(m.duration, "chartstream_http_request_duration_seconds")
	m.register(m.tenantRequests, "chartstream_tenant_http_requests_total")
	m.register(m.tenantDuration, "chartstream_tenant_http_request_duration_seconds")
	m.register(m.rateLimited, "chartstream_rate_limit_rejections_total")
}

// perTenant are the vectors with a tenant label, whose retired tenants'
// series rank deletes.
func (m *Metrics) perTenant() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.tenantRequests, m.tenantDuration, m.rateLimited, m.applied}
}

// Request counts an answered request (api.Observer).
func (m *Metrics) Request(p api.RequestParams) {
	route := p.Route
	if route == "" {
		route = unmatchedRoute
	}
	method, tier, secs := methodLabel(p.Method), tierLabel(p.Tier), p.Duration.Seconds()
	m.requests.WithLabelValues(route, method, statusLabel(p.Status), tier).Inc()
	m.duration.WithLabelValues(route, method, tier).Observe(secs)
	if !p.Tenant.IsZero() {
		tenant := m.tenants.count(p.Tenant, 1)
		m.tenantRequests.WithLabelValues(tenant, classLabel(p.Status)).Inc()
		m.tenantDuration.WithLabelValues(tenant).Observe(secs)
	}
}

// RateLimited counts a request refused over a limit (api.Observer).
func (m *Metrics) RateLimited(p api.RateLimitedParams) {
	reason := p.Reason
	if reason != api.LimitRate && reason != api.LimitInFlight {
		reason = "other"
	}
	m.rateLimited.WithLabelValues(m.tenants.label(p.Tenant), tierLabel(p.Tier), reason).Inc()
}

// unmatchedRoute is the route label of requests no route answered.
const unmatchedRoute = "unmatched"

// methodLabels are the methods a label may name; others are "other".
var methodLabels = map[string]string{"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE", "OPTIONS": "OPTIONS"}

func methodLabel(m string) string {
	if l, ok := methodLabels[m]; ok {
		return l
	}
	return "other"
}

// statusLabels are the three-digit codes, made once: a label value per
// request would otherwise be formatted (and allocated) per request.
var statusLabels = func() (s [600]string) {
	for code := 100; code < len(s); code++ {
		s[code] = strconv.Itoa(code)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return "other"
}

var classLabels = [...]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classLabel(code int) string {
	if c := code / 100; c >= 1 && c <= 5 {
		return classLabels[c]
	}
	return "other"
}

// tierLabel is a valid tier, or "none" (not authenticated, or not known).
func tierLabel(t chartstream.Tier) string {
	if t.Valid() {
		return string(t)
	}
	return "none"
}
