// Package decision runs the cycle every command handler shares: load the
// state a decision needs, check the caller's expected version, decide, encode
// the events and append them at the version the decision was based on —
// deciding again on fresh state when another writer got there first and the
// command allows it. It knows nothing about patients or orders.
package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/chartstream/chartstream"
)

// Attempts is how many times Run decides a retryable command before it gives
// up on repeated concurrency conflicts. Each attempt re-reads the stream, so
// a small number suffices: only writers racing on one aggregate collide.
const Attempts = 3

// Payload is an event payload with an explicit, stable type name. The name is
// written by hand, never derived by reflection, so renaming a Go type cannot
// rename stored events.
type Payload interface {
	EventType() string
}

// Claimer is implemented by payloads that reserve values unique within the
// tenant (see chartstream.UniqueClaim), such as a patient's MRN.
type Claimer interface {
	Claims() []chartstream.UniqueClaim
}

// Reader is the read side of the event store that rehydration needs.
type Reader interface {
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
}

// Appender is the write side of the event store that Run needs.
type Appender interface {
	Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error)
}

// Plan says where a command's events go and how conflicts are handled.
type Plan struct {
	// Stream receives the events. Required.
	Stream chartstream.StreamRef
	// Metadata is recorded with every event.
	Metadata chartstream.Metadata
	// ExpectedVersion is the caller's If-Match; nil means the caller did
	// not pin a version. When set, Run never retries: a concurrent write
	// means the caller's view is stale, which only the caller can judge.
	ExpectedVersion *int64
	// Retry lets Run load and decide again after a concurrent append. Set
	// it only for commands whose decision, taken again on fresh state, is
	// still what the caller asked for. Never for creations: there the
	// conflict (stream exists, value already claimed) is the answer.
	Retry bool
}

// LoadFn reads the state a decision needs. It also returns the version of
// the plan's stream the state was read at (chartstream.NoStream when the
// stream does not exist yet), which becomes the append's expected version.
type LoadFn[S any] func(ctx context.Context) (state S, version int64, err error)

// DecideFn is a command's pure decision on the loaded state.
type DecideFn[S any, E Payload] func(state S) ([]E, error)

// Run loads, decides and appends as described in the package comment.
//
// Errors: whatever load and decide return; EPRECONDITION when
// plan.ExpectedVersion is set and differs from the loaded version, or when
// the stream moved on between load and append; ECONFLICT from the store when
// the plan does not allow a retry or the attempts are spent; any other store
// error, wrapped.
func Run[S any, E Payload](ctx context.Context, store Appender, tenant chartstream.TenantID, plan Plan, load LoadFn[S], decide DecideFn[S, E]) (chartstream.AppendResult, error) {
	attempts := 1
	if plan.Retry && plan.ExpectedVersion == nil {
		attempts = Attempts
	}
	for attempt := 1; ; attempt++ {
		state, version, err := load(ctx)
		if err != nil {
			return chartstream.AppendResult{}, err
		}
		if want := plan.ExpectedVersion; want != nil && *want != version {
			return chartstream.AppendResult{}, chartstream.Errorf(chartstream.EPRECONDITION,
				"%s is at version %d, not the expected version %d", plan.Stream.Type, version, *want)
		}
		payloads, err := decide(state)
		if err != nil {
			return chartstream.AppendResult{}, err
		}
		events, err := Encode(plan.Metadata, payloads)
		if err != nil {
			return chartstream.AppendResult{}, err
		}
		if len(events) == 0 {
			return chartstream.AppendResult{Version: version}, nil
		}
		res, err := store.Append(ctx, tenant, plan.Stream, version, events...)
		if err == nil {
			return res, nil
		}
		conflict := chartstream.ErrorCode(err) == chartstream.ECONFLICT
		if conflict && plan.ExpectedVersion != nil {
			return chartstream.AppendResult{}, &chartstream.Error{Code: chartstream.EPRECONDITION,
				Message: plan.Stream.Type + " changed since the expected version", Err: err}
		}
		if !conflict || attempt >= attempts {
			return chartstream.AppendResult{}, fmt.Errorf("append to %s stream %s: %w", plan.Stream.Type, plan.Stream.ID, err)
		}
		if err := ctx.Err(); err != nil {
			return chartstream.AppendResult{}, err
		}
	}
}

// RunWith is Run for a decision that also consults another aggregate
// read-only, such as the patient a new encounter is for. consult runs after
// load on every attempt; the append's expected version stays load's.
func RunWith[S, C any, E Payload](ctx context.Context, store Appender, tenant chartstream.TenantID, plan Plan, load LoadFn[S], consult func(context.Context) (C, error), decide func(S, C) ([]E, error)) (chartstream.AppendResult, error) {
	type both struct {
		state     S
		consulted C
	}
	loadBoth := func(ctx context.Context) (both, int64, error) {
		s, version, err := load(ctx)
		if err != nil {
			return both{}, 0, err
		}
		c, err := consult(ctx)
		if err != nil {
			return both{}, 0, err
		}
		return both{s, c}, version, nil
	}
	return Run(ctx, store, tenant, plan, loadBoth, func(b both) ([]E, error) { return decide(b.state, b.consulted) })
}

// Encode turns payloads into events carrying md, attaching the claims of
// payloads that make any. Event ids are left zero for the store to fill.
func Encode[E Payload](md chartstream.Metadata, payloads []E) ([]chartstream.NewEvent, error) {
	events := make([]chartstream.NewEvent, 0, len(payloads))
	for _, p := range payloads {
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
		}
		e := chartstream.NewEvent{Type: p.EventType(), Payload: body, Metadata: md}
		if c, ok := any(p).(Claimer); ok {
			e.Claims = c.Claims()
		}
		events = append(events, e)
	}
	return events, nil
}

// Unmarshal decodes e's payload into dst after checking that e is at the
// schema version this code understands; an older one means an upcaster is
// missing, a newer one that this binary is older than the data. Erased PHI
// fields arrive as JSON null and leave dst's fields zero.
func Unmarshal(e chartstream.Event, schemaVersion int, dst any) error {
	if e.SchemaVersion != schemaVersion {
		return fmt.Errorf("%s event at version %d of %s stream %s: schema version %d, this code reads %d",
			e.Type, e.Version, e.Stream.Type, e.Stream.ID, e.SchemaVersion, schemaVersion)
	}
	if err := json.Unmarshal(e.Payload, dst); err != nil {
		return fmt.Errorf("decode %s event at version %d of %s stream %s: %w", e.Type, e.Version, e.Stream.Type, e.Stream.ID, err)
	}
	return nil
}

// Replay reads the whole stream and applies its decoded events in order. It
// returns the stream's version, chartstream.NoStream for a stream that does
// not exist.
func Replay[E any](ctx context.Context, store Reader, tenant chartstream.TenantID, stream chartstream.StreamRef, decode func(chartstream.Event) (E, error), apply func(E)) (int64, error) {
	events, err := store.ReadStream(ctx, tenant, stream, 1)
	if err != nil {
		return 0, fmt.Errorf("read %s stream %s: %w", stream.Type, stream.ID, err)
	}
	version := chartstream.NoStream
	for _, ev := range events {
		e, err := decode(ev)
		if err != nil {
			return 0, err
		}
		apply(e)
		version = ev.Version
	}
	return version, nil
}

// LastPosition returns the global position of the last appended event, 0
// when nothing was appended.
func LastPosition(res chartstream.AppendResult) int64 {
	if n := len(res.Positions); n > 0 {
		return res.Positions[n-1]
	}
	return 0
}

// VerifySpecs checks that specs, decode and payload samples agree: one spec
// per sample type, every PHI field and Subject named by a spec is a
// top-level JSON field of a fully populated sample, and every sample
// survives encoding and decode unchanged. A misspelt PHI field would store
// PHI unencrypted, so each aggregate's tests call this with one sample of
// every event.
func VerifySpecs[E Payload](specs []chartstream.EventSpec, decode func(chartstream.Event) (E, error), samples ...E) error {
	var errs []error
	seen := make(map[string]bool, len(samples))
	for _, sample := range samples {
		seen[sample.EventType()] = true
		i := slices.IndexFunc(specs, func(s chartstream.EventSpec) bool { return s.Type == sample.EventType() })
		if i < 0 {
			errs = append(errs, fmt.Errorf("%s: no spec", sample.EventType()))
			continue
		}
		body, err := json.Marshal(sample)
		if err != nil {
			return err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return err
		}
		names := specs[i].PHI
		if specs[i].Subject != "" {
			names = append(slices.Clone(names), specs[i].Subject)
		}
		for _, name := range names {
			if _, ok := fields[name]; !ok {
				errs = append(errs, fmt.Errorf("%s: spec names field %q the payload does not have", sample.EventType(), name))
			}
		}
		decoded, err := decode(chartstream.Event{Type: sample.EventType(), SchemaVersion: specs[i].SchemaVersion, Payload: body})
		if err != nil || !reflect.DeepEqual(decoded, sample) {
			errs = append(errs, fmt.Errorf("%s: does not survive encoding and decoding (%v)", sample.EventType(), err))
		}
	}
	for _, s := range specs {
		if !seen[s.Type] {
			errs = append(errs, fmt.Errorf("%s: spec without a sample", s.Type))
		}
		if s.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("%s: schema version must be at least 1", s.Type))
		}
	}
	return errors.Join(errs...)
}
