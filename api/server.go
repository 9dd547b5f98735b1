// Package api is chartstream's HTTP interface (Echo): clinicians' commands
// and queries, health endpoints, and the error mapping to RFC 9457 problem
// details. Handlers translate HTTP to commands and queries; they hold no
// domain logic and never reach into the event store's internals.
package api

import (
	"context"
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
	return errors.Join(errs...)
}

// Deps are the server's collaborators. Logger is required; the clinical
// routes are served only when Events is set, and then every other field but
// Ready and Info is required too.
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
	// Analytics serves /v1/analytics from the hot standby. Optional: without
	// it those routes answer 503 (they never read the primary instead).
	Analytics AnalyticsReader
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
	s := &Server{cfg: cfg, deps: deps, echo: e}
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
	if deps.Commands != nil {
		if err := s.clinicalRoutes(); err != nil {
			return nil, err
		}
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
	if s.deps.Tokens == nil || s.deps.Tenants == nil || s.deps.Revocations == nil || s.deps.Limits == nil || s.deps.Idempotency == nil || s.deps.ReadModels == nil {
		panic("api: clinical routes need Tokens, Tenants, Revocations, Limits, Idempotency and ReadModels")
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
	if s.openAPI, err = openAPIDocument(slices.Concat(s.routes, public, docs)); err != nil {
		return fmt.Errorf("api: openapi document: %w", err)
	}
	s.echo.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.openAPI)
	})
	register(s.echo.Group("/v1", s.authenticate, s.limit), "/v1", s.routes, s.idempotent)
	s.registerFHIR(s.routes, public)
	for _, r := range docs {
		s.echo.Add(r.Method, r.Path, r.Handle)
	}
	return nil
}

// routeTable is every authenticated route: the one list that registers
// handlers, generates the OpenAPI document and drives the generated tests.
func (s *Server) routeTable() []route {
	return slices.Concat(s.patientRoutes(), s.encounterRoutes(), s.medicationOrderRoutes(), s.queryRoutes(), s.analyticsRoutes(), s.fhirRoutes(), s.fhirReadRoutes())
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

// deadline gives every request a deadline of RequestTimeout.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
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

// Serve serves HTTP on ln until ctx is cancelled, then stops accepting,
// drains in-flight requests for up to ShutdownTimeout and returns. Requests
// still running after ShutdownTimeout have their connections closed, and
// Serve returns an error saying draining timed out.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
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
// is sane, a fresh one otherwise), echoes it in the response, and logs one
// line per request with method, route, status and duration — never the body.
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
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.deps.Logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String("method", req.Method),
			slog.String("route", c.Path()),
			slog.Int("status", c.Response().Status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		)
		return nil
	}
}

func (s *Server) logPanic(c echo.Context, err error, stack []byte) error {
	s.deps.Logger.ErrorContext(c.Request().Context(), "panic in handler", "route", c.Path(), logging.Error(err), "stack", string(stack))
	return err
}
