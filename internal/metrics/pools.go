package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports pgxpool.Stat of each pool, read at each scrape
// (the figures are counters the pool keeps anyway).
type poolCollector struct {
	pools map[string]*pgxpool.Pool
}

func poolDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_db_pool_"+name, help, []string{"pool"}, nil)
}

var (
	poolMax         = poolDesc("max_connections", "Connections the pool may open.")
	poolTotal       = poolDesc("total_connections", "Connections open (idle, in use, being opened).")
	poolAcquired    = poolDesc("acquired_connections", "Connections in use; at max_connections, callers wait.")
	poolIdle        = poolDesc("idle_connections", "Connections open and unused.")
	poolAcquires    = poolDesc("acquires_total", "Connections handed out.")
	poolEmpty       = poolDesc("empty_acquires_total", "Connections handed out after waiting, none being free.")
	poolCanceled    = poolDesc("canceled_acquires_total", "Waits for a connection given up (their context ended).")
	poolWaitSeconds = poolDesc("empty_acquire_wait_seconds_total", "Time spent waiting for a connection, none being free.")
	poolDescs       = []*prometheus.Desc{poolMax, poolTotal, poolAcquired, poolIdle, poolAcquires, poolEmpty, poolCanceled, poolWaitSeconds}
	poolFamilies    = []string{"chartstream_db_pool_max_connections", "chartstream_db_pool_total_connections",
		"chartstream_db_pool_acquired_connections", "chartstream_db_pool_idle_connections", "chartstream_db_pool_acquires_total",
		"chartstream_db_pool_empty_acquires_total", "chartstream_db_pool_canceled_acquires_total", "chartstream_db_pool_empty_acquire_wait_seconds_total"}
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range poolDescs {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, p := range c.pools {
		s := p.Stat()
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		gauge(poolMax, float64(s.MaxConns()))
		gauge(poolTotal, float64(s.TotalConns()))
		gauge(poolAcquired, float64(s.AcquiredConns()))
		gauge(poolIdle, float64(s.IdleConns()))
		counter(poolAcquires, float64(s.AcquireCount()))
		counter(poolEmpty, float64(s.EmptyAcquireCount()))
		counter(poolCanceled, float64(s.CanceledAcquireCount()))
		counter(poolWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
	}
}
