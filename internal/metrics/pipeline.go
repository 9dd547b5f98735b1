package metrics

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/workers"
)

// pipelineSeries are the relay's and the projector's series.
type pipelineSeries struct {
	published    prometheus.Counter
	publishDelay prometheus.Histogram
	applied      *prometheus.CounterVec
	applyDelay   prometheus.Histogram
}

// delayBuckets measure commit to JetStream and commit to read model.
var delayBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func (m *Metrics) newPipeline() {
	m.pipelineSeries = pipelineSeries{
		published: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "relay_published_events_total",
			Help: "Events the relay published and JetStream acknowledged."}),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "relay_publish_delay_seconds",
			Help: "Time from an event's recording to JetStream's acknowledgement of it.", Buckets: delayBuckets}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "projector_applied_events_total",
			Help: "Events the projector applied to the read models, by tenant (opted-in and busiest; \"other\" for the rest)."}, []string{"tenant"}),
		applyDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "projector_apply_delay_seconds",
			Help: "Time from an event's recording to its read models' commit.", Buckets: delayBuckets}),
	}
	m.register(m.published, "chartstream_relay_published_events_total")
	m.register(m.publishDelay, "chartstream_relay_publish_delay_seconds")
	m.register(m.applied, "chartstream_projector_applied_events_total")
	m.register(m.applyDelay, "chartstream_projector_apply_delay_seconds")
}

// Published observes an event JetStream acknowledged (workers.PublishedFn).
func (m *Metrics) Published(p workers.PublishedParams) {
	m.published.Inc()
	m.publishDelay.Observe(p.AckedAt.Sub(p.Event.RecordedAt).Seconds())
}

// Applied observes an event the projector applied (workers.AppliedFn).
func (m *Metrics) Applied(e chartstream.Event, at time.Time) {
	m.applied.WithLabelValues(m.tenants.count(e.Tenant, 1)).Inc()
	m.applyDelay.Observe(at.Sub(e.RecordedAt).Seconds())
}

// CountDeadLettered exports the projector's count of events and messages
// set aside since the process started (workers.Projector.DeadLettered).
func (m *Metrics) CountDeadLettered(count func() int64) {
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "dead_lettered_total",
		Help: "Events set aside by a projection and messages refused (unsigned, naming no event) since the process started."},
		func() float64 { return float64(count()) }), "chartstream_dead_lettered_total")
}

// WatchNATS exports the connection's state and reconnections.
func (m *Metrics) WatchNATS(nc *nats.Conn) {
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "nats_connected",
		Help: "1 while the NATS connection is up, 0 while it is down or reconnecting."},
		func() float64 {
			if nc.IsConnected() {
				return 1
			}
			return 0
		}), "chartstream_nats_connected")
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "nats_reconnects_total",
		Help: "Times the NATS connection reconnected since the process started."},
		func() float64 { return float64(nc.Stats().Reconnects) }), "chartstream_nats_reconnects_total")
}

// WatchPools exports each pool's figures (pgxpool.Stat) under its name.
// Call it once, with every pool.
func (m *Metrics) WatchPools(pools map[string]*pgxpool.Pool) {
	m.register(&poolCollector{pools: pools}, poolFamilies...)
}

// SampleRelayLag has Run measure the relay's lag (workers.Relay.Lag).
func (m *Metrics) SampleRelayLag(lag RelayLagFn) { m.lags.relay = lag }

// SampleProjectionLag has Run measure the projections' lag
// (workers.Projector.Lag).
func (m *Metrics) SampleProjectionLag(lag ProjectionLagFn) { m.lags.projections = lag }
