// Package metrics owns chartstream's Prometheus registry and every
// collector in it. The domain packages know nothing of Prometheus: each
// declares a small hook or observer (api.Observer, eventstore.Observer,
// workers.PublishedFn and AppliedFn, the projector's Lag), and Metrics
// implements them; cmd/chartstream wires the two together.
//
// Every label takes its values from a finite set the code fixes: route
// patterns (never URLs), known methods, status codes, tiers, projection
// and pool names, and tenant ids only of the tenants opted in
// (Config.TenantLabels) or among the busiest few (Config.TopTenants); all
// other tenants share tenant="other". No label ever carries PHI.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
)

// namespace prefixes every series of ours.
const namespace = "chartstream"

// Config configures the metrics.
type Config struct {
	// TenantLabels are the tenants whose per-tenant series carry their
	// own id (METRICS_TENANT_LABELS). Default none.
	TenantLabels []chartstream.TenantID
	// TopTenants is how many more tenants, the busiest by recent traffic
	// (requests in an API process, events applied in a worker process),
	// get their own label, re-ranked every RankInterval. Zero for none;
	// METRICS_TENANT_TOP sets it, 10 unless told.
	TopTenants int
	// RankInterval is how often the busiest tenants are ranked again.
	// Default 1m.
	RankInterval time.Duration
	// SampleInterval is how often the relay's and the projections' lags
	// are measured from the database (METRICS_SAMPLE_INTERVAL).
	// Default 15s.
	SampleInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.RankInterval == 0 {
		c.RankInterval = time.Minute
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = 15 * time.Second
	}
}

// maxTopTenants bounds Config.TopTenants: each labelled tenant costs
// every per-tenant series again.
const maxTopTenants = 100

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.TopTenants < 0 || c.TopTenants > maxTopTenants {
		errs = append(errs, errors.New("metrics: the top tenants given labels of their own must be 0 to 100"))
	}
	if len(c.TenantLabels) > maxTopTenants {
		errs = append(errs, errors.New("metrics: at most 100 tenants may be opted in to labels of their own"))
	}
	if c.RankInterval < 0 || c.SampleInterval < 0 {
		errs = append(errs, errors.New("metrics: intervals must not be negative"))
	}
	return errors.Join(errs...)
}

// Metrics is the registry and its collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	names   []string
	tenants *tenantLabels

	httpSeries
	storeSeries
	pipelineSeries
	lags *lagCollector
}

// New returns the metrics with the process's and Go's runtime collectors
// and every series of ours registered. A nil logger is a wiring bug and
// panics.
func New(log *slog.Logger, cfg Config) (*Metrics, error) {
	if log == nil {
		panic("metrics: New without a logger")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg, log: log, reg: prometheus.NewRegistry(), tenants: newTenantLabels(cfg.TenantLabels, cfg.TopTenants)}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.newHTTP()
	m.newStore()
	m.newPipeline()
	m.lags = &lagCollector{tenants: m.tenants}
	m.register(m.lags, lagFamilies...)
	return m, nil
}

// register registers c, whose families are names.
func (m *Metrics) register(c prometheus.Collector, names ...string) {
	m.reg.MustRegister(c)
	m.names = append(m.names, names...)
}

// Families are the names of every family of ours this package defines
// (prefix chartstream_), whether or not it has samples yet.
func (m *Metrics) Families() []string { return append([]string(nil), m.names...) }

// Handler serves the exposition (Prometheus text, or OpenMetrics when the
// scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Run ranks the busiest tenants every RankInterval and measures the lags
// every SampleInterval (at once first), until ctx ends.
func (m *Metrics) Run(ctx context.Context) {
	m.sample(ctx)
	sample := time.NewTicker(m.cfg.SampleInterval)
	defer sample.Stop()
	rank := time.NewTicker(m.cfg.RankInterval)
	defer rank.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sample.C:
			m.sample(ctx)
		case <-rank.C:
			m.rank()
		}
	}
}

// rank re-ranks the busiest tenants and deletes the series of those that
// lost their own label, so the series stay bounded.
func (m *Metrics) rank() {
	for _, label := range m.tenants.rank() {
		for _, v := range m.perTenant() {
			v.DeletePartialMatch(prometheus.Labels{"tenant": label})
		}
	}
}

// sample measures the lags, logging (by code) what fails.
func (m *Metrics) sample(ctx context.Context) {
	if err := m.lags.sample(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("metrics: lag sample failed", logging.Error(err))
	}
}
