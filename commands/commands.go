package commands

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// Command is one clinical command (patient.RecordObservation,
// medicationorder.PrescribeMedication, ...): a value saying what to do, run
// by Commands. Adding a command is its file in its aggregate's package, a
// request type and a route entry in the API; nothing here changes.
type Command interface {
	// CommandName is the command's stable name in logs and metrics, such
	// as "patient.record_observation".
	CommandName() string
	// Target is the stream the command writes.
	Target() chartstream.StreamRef
	// Execute runs the command through the one runner
	// (commands/internal/decision); only Commands can call it.
	Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error)
}

// Store is what commands need of the event store: reading aggregates
// (from snapshots and stream tails), writing across streams, finding a
// retried command's events, and destroying a patient's key on erasure.
type Store interface {
	decision.Store
	decision.Shredder
}

// Runner runs commands: Commands, or a decorator around it (Logged,
// Traced).
type Runner interface {
	Run(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd Command) (chartstream.CommandResult, error)
}

// Commands runs every clinical command against one event store.
type Commands struct {
	env decision.Env
}

// New returns the commands on store, with the given clock (time.Now when
// nil). A nil store is a wiring bug and panics.
func New(store Store, now func() time.Time) *Commands {
	if store == nil {
		panic("commands: New with a nil store")
	}
	if now == nil {
		now = time.Now
	}
	return &Commands{env: decision.Env{Store: store, Shredder: store, Now: now}}
}

// Run runs cmd for tenant, recording md with its events. Errors are the
// command's: EINVALID, ENOTFOUND, ECONFLICT, EPRECONDITION, EUNPROCESSABLE
// from its decision, ECOMMITUNKNOWN and others from the store.
func (c *Commands) Run(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd Command) (chartstream.CommandResult, error) {
	return cmd.Execute(ctx, c.env, tenant, md)
}

// Logged wraps next so that every command leaves one log line: its name,
// tenant, stream, correlation id, outcome (an error code) and duration.
// Never the command's content, which holds PHI. It is the seam for metrics.
func Logged(next Runner, log *slog.Logger) Runner {
	if next == nil || log == nil {
		panic("commands: Logged with a nil runner or logger")
	}
	return logged{next: next, log: log}
}

type logged struct {
	next Runner
	log  *slog.Logger
}

func (l logged) Run(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd Command) (chartstream.CommandResult, error) {
	start := time.Now()
	res, err := l.next.Run(ctx, tenant, md, cmd)
	outcome, level := "ok", slog.LevelInfo
	if err != nil {
		outcome = chartstream.ErrorCode(err)
		if outcome == chartstream.EINTERNAL || outcome == chartstream.EUNAVAILABLE || outcome == chartstream.ECOMMITUNKNOWN {
			level = slog.LevelWarn
		}
	}
	target := cmd.Target()
	l.log.LogAttrs(ctx, level, "command",
		slog.String("command", cmd.CommandName()),
		slog.String("tenant", tenant.String()),
		slog.String("stream_type", target.Type),
		slog.String("stream_id", target.ID.String()),
		slog.String("correlation_id", md.CorrelationID),
		slog.String("outcome", outcome),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	)
	return res, err
}

// Traced wraps next so that every command runs in a span of its own,
// named after the command, under the request's span: the event store's
// write span follows under it, and the events record that trace
// (chartstream.Metadata.TraceParent). The span carries the command's name,
// tenant and stream and its outcome as an error code, never its content.
func Traced(next Runner, tp trace.TracerProvider) Runner {
	if next == nil || tp == nil {
		panic("commands: Traced with a nil runner or tracer provider")
	}
	return traced{next: next, tracer: tp.Tracer("github.com/chartstream/chartstream/commands")}
}

type traced struct {
	next   Runner
	tracer trace.Tracer
}

func (t traced) Run(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd Command) (chartstream.CommandResult, error) {
	target := cmd.Target()
	ctx, span := t.tracer.Start(ctx, "command "+cmd.CommandName(), trace.WithAttributes(
		attribute.String("chartstream.command", cmd.CommandName()),
		attribute.String("chartstream.tenant_id", tenant.String()),
		attribute.String("chartstream.stream_type", target.Type),
		attribute.String("chartstream.stream_id", target.ID.String()),
	))
	defer span.End()
	res, err := t.next.Run(ctx, tenant, md, cmd)
	if err != nil {
		span.SetStatus(codes.Error, chartstream.ErrorCode(err))
	}
	return res, err
}
