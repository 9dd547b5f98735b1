package metrics

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartstream/chartstream/workers"
)

// RelayLagFn measures the relay's lag (workers.Relay.Lag).
type RelayLagFn func(ctx context.Context) (workers.RelayLag, error)

// ProjectionLagFn measures every projection's lag for every tenant
// (workers.Projector.Lag).
type ProjectionLagFn func(ctx context.Context) ([]workers.ProjectionLag, error)

// Lags are measured from the database every SampleInterval, not at each
// scrape: a scrape stays cheap, however many Prometheus servers scrape.
var (
	relayLagEvents = prometheus.NewDesc(namespace+"_relay_lag_events",
		"Committed events the relay has not published yet (counted up to 100,000).", nil, nil)
	relayLagSeconds = prometheus.NewDesc(namespace+"_relay_lag_seconds",
		"Age of the oldest committed event the relay has not published yet.", nil, nil)
	projectionLagEvents = prometheus.NewDesc(namespace+"_projection_lag_events",
		"Events a projection has not applied yet, by projection and tenant (\"other\": the most of the other tenants).",
		[]string{"projection", "tenant"}, nil)
	projectionLagSeconds = prometheus.NewDesc(namespace+"_projection_lag_seconds",
		"Age of the oldest event a projection has not applied yet, by projection and tenant (\"other\": the most of the other tenants).",
		[]string{"projection", "tenant"}, nil)
	projectionSetAside = prometheus.NewDesc(namespace+"_projection_set_aside_events",
		"Events a projection set aside (could not apply) and no rebuild has applied since, by projection and tenant (\"other\": the sum of the other tenants).",
		[]string{"projection", "tenant"}, nil)
)

var lagFamilies = []string{"chartstream_relay_lag_events", "chartstream_relay_lag_seconds", "chartstream_projection_lag_events",
	"chartstream_projection_lag_seconds", "chartstream_projection_set_aside_events"}

// lagCollector exports the last lags measured.
type lagCollector struct {
	tenants     *tenantLabels
	relay       RelayLagFn
	projections ProjectionLagFn

	mu       sync.Mutex
	relayLag *workers.RelayLag
	// byLabel is each projection's lag by tenant label, "other" merged.
	byLabel map[lagKey]workers.ProjectionLag
}

type lagKey struct{ projection, tenant string }

// sample measures the lags and keeps them for the scrapes. A failed
// measure keeps the last one.
func (c *lagCollector) sample(ctx context.Context) error {
	var errs []error
	if c.relay != nil {
		lag, err := c.relay(ctx)
		if err == nil {
			c.mu.Lock()
			c.relayLag = &lag
			c.mu.Unlock()
		}
		errs = append(errs, err)
	}
	if c.projections != nil {
		lags, err := c.projections(ctx)
		if err == nil {
			by := make(map[lagKey]workers.ProjectionLag)
			for _, l := range lags {
				k := lagKey{l.Projection, c.tenants.label(l.Tenant)}
				m := by[k]
				m.Events, m.Seconds, m.SetAside = max(m.Events, l.Events), max(m.Seconds, l.Seconds), m.SetAside+l.SetAside
				by[k] = m
			}
			c.mu.Lock()
			c.byLabel = by
			c.mu.Unlock()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{relayLagEvents, relayLagSeconds, projectionLagEvents, projectionLagSeconds, projectionSetAside} {
		ch <- d
	}
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.relayLag; l != nil {
		ch <- prometheus.MustNewConstMetric(relayLagEvents, prometheus.GaugeValue, float64(l.Events))
		ch <- prometheus.MustNewConstMetric(relayLagSeconds, prometheus.GaugeValue, l.Seconds)
	}
	for k, l := range c.byLabel {
		ch <- prometheus.MustNewConstMetric(projectionLagEvents, prometheus.GaugeValue, float64(l.Events), k.projection, k.tenant)
		ch <- prometheus.MustNewConstMetric(projectionLagSeconds, prometheus.GaugeValue, l.Seconds, k.projection, k.tenant)
		ch <- prometheus.MustNewConstMetric(projectionSetAside, prometheus.GaugeValue, float64(l.SetAside), k.projection, k.tenant)
	}
}
