// Package api is chartstream's HTTP interface (Echo): clinicians' commands
// and queries, health endpoints, and the error mapping to RFC 9457 problem
// details. Handlers translate HTTP to commands and queries; they hold no
// domain logic and never reach into the event store's internals.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/logging"
)

// Config configures the HTTP server.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:18080".
	Addr string
	// ShutdownTimeout bounds draining in-flight requests on shutdown.
	// Default 15s.
	ShutdownTimeout time.Duration
	// BodyLimit caps request bodies. Default "1M"; larger bodies get 413.
	BodyLimit string
	// RequestTimeout is every request's deadline: its context is cancelled
	// then, and it answers 503 with Retry-After. The server's write
	// timeout is a few seconds longer, so the answer still gets out.
	// Default 10s.
	RequestTimeout time.Duration
	// ConsistencyWait bounds how long a read with an X-Consistency-Token
	// waits for the read models. Default 2s.
	ConsistencyWait time.Duration
	// TLS, when set, makes the server speak HTTPS only, with these
	// settings (internal/tlsconfig.Server: TLS 1.2 at least). Default nil:
	// plain HTTP, for a TLS-terminating proxy or the loopback dev stack.
	TLS *tls.Config
	// MetricsToken, with Deps.Metrics, serves GET /metrics to callers
	// sending it as a bearer token. Default none: no /metrics here.
	MetricsToken string
	// LongRequestTimeout replaces RequestTimeout for the long routes: an
	// export streams for as long as it takes (a client resumes after
	// the last event it got), a verification reads the whole history.
	// Default 10m.
	LongRequestTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:18080"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.BodyLimit == "" {
		c.BodyLimit = "1M"
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ConsistencyWait == 0 {
		c.ConsistencyWait = 2 * time.Second
	}
	if c.LongRequestTimeout == 0 {
		c.LongRequestTimeout = 10 * time.Minute
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP address %q must be host:port", c.Addr))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout must not be negative"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("request timeout must not be negative"))
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < minMetricsToken {
		errs = append(errs, fmt.Errorf("the metrics token must have at least %d characters", minMetricsToken))
	}
	if c.LongRequestTimeout < 0 {
		errs = append(errs, errors.New("long request timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// minMetricsToken is the shortest metrics token accepted: one that cannot
// be guessed.
const minMetricsToken = 16

// Deps are the server's collaborators. Logger is required; the clinical
// routes are served only when Commands is set, and then every other field
// but Ready, Info, Observer, TracerProvider and Metrics is required too.
type Deps struct {
	Logger *slog.Logger
	// Ready are the dependency checks behind /readyz.
	Ready []ReadinessCheck
	// Info adds informational fields to /readyz.
	Info map[string]StatusFn

	// Commands runs the clinical commands (commands.Commands, decorated).
	Commands    commands.Runner
	Tokens      TokenVerifier
	Tenants     TenantDirectory
	Revocations RevocationList
	Limits      RateLimiter
	Idempotency IdempotencyStore
	// ReadModels is the app role's pool the queries read from.
	ReadModels *pgxpool.Pool
	// Access is the PHI access log, which every PHI read writes.
	Access AccessLog
	// History reads the event store for auditors: exports, patient
	// histories, time travel.
	History HistoryReader
	// Auditor checks a tenant's history against its signed checkpoints
	// (audit.Verifier).
	Auditor Auditor
	// Analytics serves /v1/analytics from the hot standby. Optional: without
	// it those routes answer 503 (they never read the primary instead).
	Analytics AnalyticsReader

	// Observer hears of every request and refusal (metrics). Default
	// none.
	Observer Observer
	// TracerProvider, when set, traces every request, continuing a
	// caller's W3C traceparent. Default none.
	TracerProvider trace.TracerProvider
	// Metrics is the metrics exposition, served on GET /metrics when
	// Config.MetricsToken is set.
	Metrics http.Handler
	// AsyncAPI is the AsyncAPI document of the event streams
	// (internal/asyncapi), served at /asyncapi.json; nil serves none.
	AsyncAPI []byte
}

// Server is the HTTP server.
type Server struct {
	cfg     Config
	deps    Deps
	echo    *echo.Echo
	http    *http.Server
	tenants *tenantCache
	ready   readyCache
	routes  []route
	openAPI []byte
	// patterns are the registered route patterns (see routeOf).
	patterns map[string]bool
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// long are the long routes, "METHOD /path".
	long map[string]bool
}

// NewServer builds the server and its routes. It panics on a nil logger (a
// wiring bug) and returns an error for an invalid configuration.
func NewServer(deps Deps, cfg Config) (*Server, error) {
	if deps.Logger == nil {
		panic("api: NewServer without a logger")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(deps.Logger)
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	s := &Server{cfg: cfg, deps: deps, echo: e}
	if deps.TracerProvider != nil {
		s.tracer = deps.TracerProvider.Tracer(tracerName)
	}
	e.Use(
		s.requestContext,
		s.deadline,
		s.fhirOutcomes, // outside recovery: a panic on a FHIR path is an OperationOutcome too
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}),
		middleware.BodyLimit(cfg.BodyLimit),
		s.checkHeaders,
	)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if deps.Metrics != nil && cfg.MetricsToken != "" {
		e.GET("/metrics", s.metrics)
	}
	if deps.Commands != nil {
		if err := s.clinicalRoutes(); err != nil {
			return nil, err
		}
	}
	s.patterns = make(map[string]bool)
	for _, r := range e.Routes() {
		s.patterns[r.Path] = true
	}
	// A client has 10 s for its headers and the request deadline for the
	// whole request; a slow reader cannot hold a connection past the
	// deadline's margin; an idle keep-alive connection is closed after
	// two minutes.
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// clinicalRoutes registers the authenticated /v1 API, the FHIR R4 reads and
// their OpenAPI document, generated from the same route table.
func (s *Server) clinicalRoutes() error {
	if s.deps.Tokens == nil || s.deps.Tenants == nil || s.deps.Revocations == nil || s.deps.Limits == nil || s.deps.Idempotency == nil ||
		s.deps.ReadModels == nil || s.deps.Access == nil || s.deps.History == nil || s.deps.Auditor == nil {
		panic("api: clinical routes need Tokens, Tenants, Revocations, Limits, Idempotency, ReadModels, Access, History and Auditor")
	}
	s.tenants = &tenantCache{dir: s.deps.Tenants, ttl: 5 * time.Second, m: make(map[chartstream.TenantID]cachedTenant)}
	s.routes = s.routeTable()
	for i := range s.routes {
		if s.routes[i].Request == nil {
			s.routes[i].Handle = refuseBody(s.routes[i].Handle)
		}
		if s.routes[i].Query == nil {
			s.routes[i].Handle = refuseQuery(s.routes[i].Handle)
		}
	}
	var err error
	public, docs := s.fhirPublicRoutes(), s.docRoutes()
	checkPHIDeclared(slices.Concat(s.routes, public, docs))
	s.long = map[string]bool{}
	for _, r := range s.routes {
		if r.Long {
			s.long[r.Method+" "+r.Path] = true
		}
	}
	if s.openAPI, err = openAPIDocument(slices.Concat(s.routes, public, docs)); err != nil {
		return fmt.Errorf("api: openapi document: %w", err)
	}
	s.echo.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.openAPI)
	})
	s.register(s.echo.Group("/v1", s.authenticate, s.limit), "/v1", s.routes)
	s.registerFHIR(s.routes, public)
	for _, r := range docs {
		s.echo.Add(r.Method, r.Path, r.Handle)
	}
	return nil
}

// routeTable is every authenticated route: the one list that registers
// handlers, generates the OpenAPI document and drives the generated tests.
func (s *Server) routeTable() []route {
	return slices.Concat(s.patientRoutes(), s.encounterRoutes(), s.medicationOrderRoutes(), s.queryRoutes(), s.historyRoutes(),
		s.auditRoutes(), s.analyticsRoutes(), s.fhirRoutes(), s.fhirReadRoutes(), s.fhirHistoryRoutes())
}

// refuseBody lets body-less routes take an empty body or {} and nothing
// else, so a client's misplaced fields are reported, not ignored.
func refuseBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := decodeBody(c, &struct{}{}, true); err != nil {
			return err
		}
		return next(c)
	}
}

// deadline gives every request a deadline of RequestTimeout, a long
// route's LongRequestTimeout (and its connection the write deadline to
// match).
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		timeout := s.cfg.RequestTimeout
		if s.long[c.Request().Method+" "+c.Path()] {
			timeout = s.cfg.LongRequestTimeout
			_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(timeout + 5*time.Second))
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// Handler returns the server's http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Listen opens the configured address. Use Serve on the result; splitting
// the two lets callers learn the address of ":0" before serving.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return ln, nil
}

// Serve serves HTTP (HTTPS with Config.TLS) on ln until ctx is cancelled,
// then stops accepting, drains in-flight requests for up to
// ShutdownTimeout and returns. Requests still running after
// ShutdownTimeout have their connections closed, and Serve returns an
// error saying draining timed out.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	if s.cfg.TLS != nil {
		// ServeTLS adds HTTP/2 to a clone of the configuration.
		s.http.TLSConfig = s.cfg.TLS
		go func() { errc <- s.http.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- s.http.Serve(ln) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		// Draining timed out: cut the remaining connections, which cancels
		// their requests' contexts, so handlers stop instead of running on
		// while the caller closes the pools they use.
		_ = s.http.Close()
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// requestContext gives every request an id (the caller's X-Request-ID when it
// is sane, a fresh one otherwise), echoes it in the response, traces it
// (when tracing is on), logs one line per request with method, route,
// status and duration — never the body — and reports it to the observer.
func (s *Server) requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		id := req.Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		ctx := logging.WithRequestID(req.Context(), id)
		c.SetRequest(req.WithContext(ctx))
		route := s.routeOf(c)
		var span trace.Span
		if s.tracer != nil {
			span = s.startSpan(c, route)
		}
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		if span != nil {
			endSpan(c, span)
		}
		s.deps.Logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String("method", req.Method),
			slog.String("route", c.Path()),
			slog.Int("status", c.Response().Status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		)
		s.observe(c, route, start)
		return nil
	}
}

func (s *Server) logPanic(c echo.Context, err error, stack []byte) error {
	s.deps.Logger.ErrorContext(c.Request().Context(), "panic in handler", "route", c.Path(), logging.Error(err), "stack", string(stack))
	return err
}
