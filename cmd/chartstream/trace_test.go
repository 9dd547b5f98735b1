package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream/internal/testkit"
)

// runBackground opens m and runs it (without an API) until the test ends.
func runBackground(t *testing.T, m *Main) {
	t.Helper()
	openMain(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancellation")
		}
	})
}

// spanNamed returns the ended span of that name in trace, if any.
func spanNamed(spans []sdktrace.ReadOnlySpan, trace oteltrace.TraceID, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.SpanContext().TraceID() == trace && s.Name() == name {
			return s
		}
	}
	return nil
}

// TestOneCommandOneTrace runs the API and the workers as two processes
// would (two Mains, each with its own tracer provider and in-memory
// recorder, sharing only PostgreSQL and NATS) and sends one command: the
// API's spans (request, command, event store write) and the workers'
// (relay publish, projector apply) form one trace, each span under the one
// before it. The trace crosses from the API to the relay only through the
// event's stored metadata, and from the relay to the projector only
// through the message's headers, beside the relay's signature, which the
// projector checks.
func TestOneCommandOneTrace(t *testing.T) {
	t.Parallel()
	apiSpans, workerSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	apiMain := newTestMain(t, true, false, "")
	apiMain.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(apiSpans))
	workerMain := newTestMain(t, false, true, testkit.Env(t, "NATS_URL"))
	workerMain.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(workerSpans))
	runBackground(t, workerMain)
	base := startMain(t, apiMain)
	tenant := workerMain.Config.Projector.Tenants[0]

	status, raw := sendJSON(t, http.MethodPost, base+"/v1/patients", mintToken(t, apiMain, tenant), map[string]any{
		"mrn": "TRACE-1", "name": map[string]any{"family": "Lovelace", "given": []string{"Ada"}}, "birth_date": "1990-01-02", "sex": "female",
	})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, raw)
	}
	// Spans end after the work they time: the server's after the response
	// went out, the relay's after the projector may have applied.
	var server sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); server == nil; time.Sleep(20 * time.Millisecond) {
		for _, s := range apiSpans.Ended() {
			if s.Name() == "POST /v1/patients" {
				server = s
			}
		}
		if server == nil && time.Now().After(deadline) {
			t.Fatalf("no server span POST /v1/patients among %d API spans", len(apiSpans.Ended()))
		}
	}
	if server.SpanKind() != oteltrace.SpanKindServer {
		t.Fatalf("POST /v1/patients is a %s span, want a server span", server.SpanKind())
	}
	trace := server.SpanContext().TraceID()
	var apply, publish sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(30 * time.Second); apply == nil || publish == nil; time.Sleep(50 * time.Millisecond) {
		apply, publish = spanNamed(workerSpans.Ended(), trace, "projector.apply"), spanNamed(workerSpans.Ended(), trace, "relay.publish")
		if (apply == nil || publish == nil) && time.Now().After(deadline) {
			break // reported below
		}
	}
	command := spanNamed(apiSpans.Ended(), trace, "command patient.register_patient")
	write := spanNamed(apiSpans.Ended(), trace, "eventstore.write")
	chain := []struct {
		name         string
		span, parent sdktrace.ReadOnlySpan
	}{{"command", command, server}, {"eventstore.write", write, command}, {"relay.publish", publish, write}, {"projector.apply", apply, publish}}
	for _, c := range chain {
		switch {
		case c.span == nil:
			t.Errorf("no %s span in the request's trace", c.name)
		case c.parent != nil && c.span.Parent().SpanID() != c.parent.SpanContext().SpanID():
			t.Errorf("%s's parent is %s, want %s (%s)", c.name, c.span.Parent().SpanID(), c.parent.SpanContext().SpanID(), c.parent.Name())
		}
	}
	// One command, one trace: every span of this tenant's work is in it.
	for _, s := range append(apiSpans.Ended(), workerSpans.Ended()...) {
		for _, a := range s.Attributes() {
			if a.Key == "chartstream.tenant_id" && a.Value.AsString() == tenant.String() && s.SpanContext().TraceID() != trace {
				t.Errorf("span %s of the tenant is in trace %s, not the command's %s", s.Name(), s.SpanContext().TraceID(), trace)
			}
		}
	}
}
