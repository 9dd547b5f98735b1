package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// storeSeries are the event store's series (eventstore.Observer).
type storeSeries struct {
	// appendOK, appendConflict and appendError are the append latency
	// histogram curried by outcome once, so observing costs no lookup.
	appendOK, appendConflict, appendError prometheus.Observer
	groupSize                             prometheus.Histogram
	conflicts                             prometheus.Counter
}

func (m *Metrics) newStore() {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "append_duration_seconds",
		Help:    "Time of an event store write from call to outcome (queueing for the group commit included), by outcome: ok, conflict, error.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"outcome"})
	groupSize := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "append_group_size",
		Help: "Writes sharing one transaction of the group commit.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64}})
	conflicts := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "append_conflicts_total",
		Help: "Writes refused because their stream changed meanwhile (concurrency conflicts; the command runner may decide again)."})
	m.storeSeries = storeSeries{appendOK: duration.WithLabelValues("ok"), appendConflict: duration.WithLabelValues("conflict"),
		appendError: duration.WithLabelValues("error"), groupSize: groupSize, conflicts: conflicts}
	m.register(duration, "chartstream_append_duration_seconds")
	m.register(groupSize, "chartstream_append_group_size")
	m.register(conflicts, "chartstream_append_conflicts_total")
}

// Written observes one event store write (eventstore.Observer).
func (m *Metrics) Written(p eventstore.WrittenParams) {
	secs := p.Duration.Seconds()
	switch {
	case p.Err == nil:
		m.appendOK.Observe(secs)
	case chartstream.ErrorCode(p.Err) == chartstream.ECONFLICT:
		m.appendConflict.Observe(secs)
		if errors.Is(p.Err, chartstream.ErrConcurrentWrite) {
			m.conflicts.Inc()
		}
	default:
		m.appendError.Observe(secs)
	}
}

// GroupSent observes one group commit transaction (eventstore.Observer).
func (m *Metrics) GroupSent(p eventstore.GroupSentParams) {
	m.groupSize.Observe(float64(p.Writes))
}
