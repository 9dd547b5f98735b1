package api

import (
	"crypto/subtle"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
)

// Observer hears of every request the server answered and of every
// request it refused over a tenant's limits, for metrics
// (internal/metrics). Its methods run on the request path: they must be
// quick and must not block.
type Observer interface {
	Request(RequestParams)
	RateLimited(RateLimitedParams)
}

// RequestParams describe one answered request. Nothing in them comes from
// the URL or the body but the method, which the observer must bound.
type RequestParams struct {
	// Route is the pattern of the route that answered, such as
	// "/v1/patients/:id", never the URL; "" when no route matched.
	Route  string
	Method string
	Status int
	// Duration is from the request's arrival to its answer.
	Duration time.Duration
	// Tenant and Tier are the authenticated caller's: the zero id and ""
	// before authentication or when it failed.
	Tenant chartstream.TenantID
	Tier   chartstream.Tier
}

// The reasons a tenant's request is refused with 429.
const (
	// LimitRate: the tenant's requests per second (shared in Redis).
	LimitRate = "rate"
	// LimitInFlight: the tenant's requests in flight in this process.
	LimitInFlight = "in_flight"
)

// RateLimitedParams describe one request refused over a limit.
type RateLimitedParams struct {
	Tenant chartstream.TenantID
	Tier   chartstream.Tier
	// Reason is LimitRate or LimitInFlight.
	Reason string
}

type nopObserver struct{}

func (nopObserver) Request(RequestParams)         {}
func (nopObserver) RateLimited(RateLimitedParams) {}

// tracerName is the instrumentation scope of the API's spans.
const tracerName = "github.com/chartstream/chartstream/api"

// traceContext reads a caller's W3C traceparent. Baggage is not read: a
// caller could put anything in it, PHI included.
var traceContext = propagation.TraceContext{}

// knownMethods are the methods a span name or a metric label may carry;
// anything else a client sends is "other".
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// routeOf is the pattern of the route that answers c, or "" when none
// matched. Echo reports the closest registered pattern for an unknown
// path; only patterns the server registered are passed on, so the value
// is one of a fixed set.
func (s *Server) routeOf(c echo.Context) string {
	if p := c.Path(); s.patterns[p] {
		return p
	}
	return ""
}

// startSpan starts the request's server span, continuing the caller's
// trace when it sent a traceparent. Its name and attributes are the
// method, the route pattern and, later, the status: never the URL, whose
// query may hold PHI.
func (s *Server) startSpan(c echo.Context, route string) trace.Span {
	req := c.Request()
	method := req.Method
	if !knownMethods[method] {
		method = "HTTP"
	}
	name := method
	if route != "" {
		name += " " + route
	}
	ctx := traceContext.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
	c.SetRequest(req.WithContext(ctx))
	return span
}

// endSpan records the answer on the request's span.
func endSpan(c echo.Context, span trace.Span) {
	status := c.Response().Status
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if cl, ok := c.Get(callerKey).(caller); ok {
		span.SetAttributes(attribute.String("chartstream.tenant_id", cl.Tenant.String()))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// observe reports an answered request to the observer.
func (s *Server) observe(c echo.Context, route string, start time.Time) {
	p := RequestParams{Route: route, Method: c.Request().Method, Status: c.Response().Status, Duration: time.Since(start)}
	if cl, ok := c.Get(callerKey).(caller); ok {
		p.Tenant, p.Tier = cl.Tenant, cl.Tier
	}
	s.deps.Observer.Request(p)
}

// metrics serves Deps.Metrics to callers with the metrics token
// (Config.MetricsToken), compared in constant time.
func (s *Server) metrics(c echo.Context) error {
	raw, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(raw)), []byte(s.cfg.MetricsToken)) != 1 {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="chartstream-metrics"`)
		return chartstream.Errorf(chartstream.EUNAUTHORIZED, "the metrics token is required")
	}
	s.deps.Metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}

// RoutePatterns are the route patterns the server registered: the values
// RequestParams.Route may take besides "".
func (s *Server) RoutePatterns() []string {
	return slices.Sorted(maps.Keys(s.patterns))
}
