package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/metrics"
)

// MetricsConfig configures the metrics a process exposes.
type MetricsConfig struct {
	// Addr is the metrics listener, serving GET /metrics (METRICS_ADDR).
	// Default none: every process of a host would want the same port
	// (serve, work, the chaos run's four, each test's), so it is chosen
	// per process, and the default exposes nothing.
	Addr string
	// Token, when set, also serves GET /metrics on the API's listener to
	// callers sending it as a bearer token (METRICS_TOKEN, 16 characters
	// at least). Default none.
	Token string
	// TenantLabels are the tenant ids whose series carry their own tenant
	// label (METRICS_TENANT_LABELS, comma-separated). Default none.
	TenantLabels string
	// TopTenants is how many of the busiest other tenants get their own
	// label too (METRICS_TENANT_TOP). Default 10.
	TopTenants int
	// SampleInterval is how often the relay's and projections' lags are
	// measured (METRICS_SAMPLE_INTERVAL). Default 15s.
	SampleInterval time.Duration
}

// on reports whether the process collects metrics: only when something
// exposes them.
func (c MetricsConfig) on() bool { return c.Addr != "" || c.Token != "" }

// config is the metrics package's configuration.
func (c MetricsConfig) config() (metrics.Config, error) {
	cfg := metrics.Config{TopTenants: c.TopTenants, SampleInterval: c.SampleInterval}
	for _, s := range strings.Split(c.TenantLabels, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := chartstream.ParseTenantID(s)
		if err != nil {
			return cfg, errors.New("METRICS_TENANT_LABELS must be tenant ids (UUIDs), comma-separated")
		}
		cfg.TenantLabels = append(cfg.TenantLabels, id)
	}
	return cfg, cfg.Validate()
}

// validate reports every problem with the metrics settings.
func (c MetricsConfig) validate() []error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, errors.New("METRICS_ADDR must be host:port"))
		}
	}
	if c.Token != "" && len(c.Token) < 16 {
		errs = append(errs, errors.New("METRICS_TOKEN must have at least 16 characters"))
	}
	if c.SampleInterval != 0 && c.SampleInterval < time.Second {
		errs = append(errs, errors.New("METRICS_SAMPLE_INTERVAL must be at least 1s"))
	}
	if _, err := c.config(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// tracingConfigured reports whether traces are to be exported: an OTLP
// endpoint is set, and the standard variables do not turn the SDK or the
// trace exporter off.
func tracingConfigured(c Config) bool {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return c.OTLPEndpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// newTracerProvider returns the SDK's tracer provider exporting over
// OTLP/HTTP in batches, or nil when tracing is not configured. The
// exporter reads the standard OTEL_EXPORTER_OTLP_* variables (headers,
// certificates, timeout, compression) and the provider OTEL_TRACES_SAMPLER
// (default: parent-based, always on); service.name is "chartstream" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
func newTracerProvider(ctx context.Context, c Config) (*sdktrace.TracerProvider, error) {
	if !tracingConfigured(c) {
		return nil, nil
	}
	var opts []otlptracehttp.Option
	if c.OTLPEndpoint != "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		// A flag's endpoint is a base URL, as the variable's is.
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimRight(c.OTLPEndpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry exporter: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", "chartstream")), resource.Environment())
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// openTelemetry sets up tracing (unless a TracerProvider was given) and
// the metrics, with their listener, when configured.
func (m *Main) openTelemetry(ctx context.Context) error {
	if m.TracerProvider == nil {
		sdk, err := newTracerProvider(ctx, m.Config)
		if err != nil {
			return err
		}
		if sdk != nil {
			m.sdkTracing, m.TracerProvider = sdk, sdk
		}
	}
	if !m.Config.Metrics.on() {
		return nil
	}
	cfg, err := m.Config.Metrics.config()
	if err != nil {
		return err
	}
	if m.metrics, err = metrics.New(m.Logger, cfg); err != nil {
		return err
	}
	if addr := m.Config.Metrics.Addr; addr != "" {
		if m.metricsLn, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
		}
	}
	return nil
}

// storeConfig is the event store configuration with the process's
// observers: metrics and traces of every write.
func (m *Main) storeConfig() eventstore.Config {
	cfg := m.Config.EventStore
	if m.metrics != nil {
		cfg.Observer = m.metrics
	}
	cfg.TracerProvider = m.TracerProvider
	return cfg
}

// watchResources has the metrics watch the pools and the NATS connection
// Open made, and the workers' lags.
func (m *Main) watchResources() {
	if m.metrics == nil {
		return
	}
	pools := map[string]*pgxpool.Pool{"app": m.pool}
	if m.sessions != m.pool {
		pools["sessions"] = m.sessions
	}
	if m.relayPool != nil {
		pools["relay"] = m.relayPool
	}
	m.metrics.WatchPools(pools)
	if m.nats != nil {
		m.metrics.WatchNATS(m.nats.Conn)
	}
	if m.relay != nil {
		m.metrics.SampleRelayLag(m.relay.Lag)
		m.metrics.SampleProjectionLag(m.projector.Lag)
		m.metrics.CountDeadLettered(m.projector.DeadLettered)
	}
}

// MetricsAddr is the metrics listener's address (useful with port 0), nil
// without one.
func (m *Main) MetricsAddr() net.Addr {
	if m.metricsLn == nil {
		return nil
	}
	return m.metricsLn.Addr()
}

// runTelemetry runs the metrics' sampling and listener, if any, on wg
// until ctx ends.
func (m *Main) runTelemetry(ctx context.Context, wg *sync.WaitGroup) {
	if m.metrics != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.metrics.Run(ctx) }()
	}
	if m.metricsLn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.serveMetrics(ctx) }()
	}
}

// serveMetrics serves the metrics listener until ctx ends.
func (m *Main) serveMetrics(ctx context.Context) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(m.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.Logger.Error("metrics listener failed", "error", err.Error())
	}
}

// closeTelemetry flushes the spans still buffered and closes the metrics
// listener if Run never served it.
func (m *Main) closeTelemetry() {
	if m.sdkTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.sdkTracing.Shutdown(ctx); err != nil {
			m.Logger.Warn("OpenTelemetry: flushing spans failed", "error", err.Error())
		}
	}
	if m.metricsLn != nil {
		_ = m.metricsLn.Close()
	}
}
