package eventstore

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
)

// Observer hears what the store's writes do, for metrics
// (internal/metrics). Its methods run on the write path: they must be
// quick and must not block.
type Observer interface {
	// Written is called once per Write (and Append) that got as far as
	// the queue, with its outcome.
	Written(WrittenParams)
	// GroupSent is called once per transaction the group commit sent.
	GroupSent(GroupSentParams)
}

// WrittenParams describe one Write.
type WrittenParams struct {
	// Duration is from the call to its outcome, waiting in the queue
	// included.
	Duration time.Duration
	// Events is how many events the write appended (or would have).
	Events int
	// Err is the write's error, nil on success. An ECONFLICT wrapping
	// chartstream.ErrConcurrentWrite is a concurrency conflict.
	Err error
}

// GroupSentParams describe one transaction of the group commit.
type GroupSentParams struct {
	// Writes is how many Writes shared the transaction.
	Writes int
	// Duration is the transaction's round trip, resolving a lost commit
	// answer included.
	Duration time.Duration
	// Err is the group's error, nil when every write committed.
	Err error
}

// nopObserver is the Observer of a store given none.
type nopObserver struct{}

func (nopObserver) Written(WrittenParams)     {}
func (nopObserver) GroupSent(GroupSentParams) {}

// tracerName is the instrumentation scope of the store's spans.
const tracerName = "github.com/chartstream/chartstream/eventstore"

// traceContext is the W3C format the store records a write's trace in.
var traceContext = propagation.TraceContext{}

// startWrite starts a write's span, when tracing is on, and returns the
// context the write runs in and the traceparent its events record (empty
// when there is no trace). A traceparent is ids and flags only.
func (s *Store) startWrite(ctx context.Context, tenant chartstream.TenantID, events int) (context.Context, trace.Span, string) {
	if s.tracer == nil {
		return ctx, nil, ""
	}
	ctx, span := s.tracer.Start(ctx, "eventstore.write", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("chartstream.tenant_id", tenant.String()), attribute.Int("chartstream.events", events)))
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return ctx, span, carrier.Get("traceparent")
}

// endWrite ends a write's span with its outcome: the error's code, never
// its text (a driver's message can quote values).
func endWrite(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, chartstream.ErrorCode(err))
	}
	span.End()
}
