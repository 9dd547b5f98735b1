package workers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// Tracing across NATS. The write that recorded an event put its W3C trace
// context in the event's metadata (chartstream.Metadata.TraceParent, in
// the message body, so signed). The relay continues that trace with a
// publish span and puts the span's context in the message's traceparent
// and tracestate headers, which are not signed: they only place the
// projector's span under the relay's, and a forged one can mislabel a
// trace but changes nothing the projector applies. The projector's apply
// span continues the header's context, or the metadata's when the event
// was read from the event store instead. Events recorded without a trace
// get no spans downstream: one root trace per event would bury the rest.

// tracerName is the instrumentation scope of the workers' spans.
const tracerName = "github.com/chartstream/chartstream/workers"

// headerTraceParent is the W3C header the relay sets on every message of
// a traced event.
const headerTraceParent = "traceparent"

var traceContext = propagation.TraceContext{}

// remoteParent is the span context in a traceparent value, ok false when
// there is none.
func remoteParent(traceParent string) (context.Context, bool) {
	if traceParent == "" {
		return nil, false
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{headerTraceParent: traceParent})
	return ctx, trace.SpanContextFromContext(ctx).IsValid()
}

// publishSpan starts the span of publishing e as m, under the write that
// recorded e, and sets its context in m's headers; nil when tracing is off
// or e records no trace.
func (r *Relay) publishSpan(e chartstream.Event, m *nats.Msg) trace.Span {
	if r.tracer == nil {
		return nil
	}
	parent, ok := remoteParent(e.Metadata.TraceParent)
	if !ok {
		return nil
	}
	ctx, span := r.tracer.Start(parent, "relay.publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", r.cfg.Stream),
		attribute.String("messaging.message.id", e.ID.String()),
		attribute.String("chartstream.tenant_id", e.Tenant.String()),
		attribute.String("chartstream.event_type", e.Type),
	))
	traceContext.Inject(ctx, headerCarrier(m.Header))
	return span
}

// headerCarrier sets trace headers under their W3C names as they are:
// NATS headers are case-sensitive, and http.Header (propagation's
// HeaderCarrier) would write Traceparent.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// endSpans ends the spans still open, as failed when err is set.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if s == nil {
			continue
		}
		if err != nil {
			s.SetStatus(codes.Error, chartstream.ErrorCode(err))
		}
		s.End()
	}
}

// traceApplied records an apply span from start to now for each event of
// a committed step that records a trace: under the relay's publish span
// when the event came in a message that carries one, else under the write
// that recorded it.
func (p *Projector) traceApplied(items []*delivery, applied []chartstream.Event, start time.Time) {
	headers := make(map[eventstore.Cursor]string, len(items))
	for _, d := range items {
		if d.traceParent != "" {
			headers[d.cursor] = d.traceParent
		}
	}
	end := time.Now()
	for _, e := range applied {
		parent, ok := remoteParent(headers[eventstore.CursorOf(e)])
		if !ok {
			if parent, ok = remoteParent(e.Metadata.TraceParent); !ok {
				continue
			}
		}
		_, span := p.tracer.Start(parent, "projector.apply", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.consumer.group.name", p.cfg.Consumer),
				attribute.String("chartstream.event_id", e.ID.String()),
				attribute.String("chartstream.tenant_id", e.Tenant.String()),
				attribute.String("chartstream.event_type", e.Type),
			))
		span.End(trace.WithTimestamp(end))
	}
}
