package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Env is what commands run with: the event store and the clock.
type Env struct {
	Store    Store
	Shredder Shredder
	// Now is the clock; tests set it.
	Now func() time.Time
}

// Shredder destroys a data subject's key (the event store's ShredSubject).
type Shredder interface {
	ShredSubject(ctx context.Context, tenant chartstream.TenantID, subject uuid.UUID) error
}

// Store is what the runner needs of the event store.
type Store interface {
	// LoadStream returns the stream's latest snapshot in state format
	// snapshotSchema (0: none) and the events after it.
	LoadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, snapshotSchema int) (chartstream.Snapshot, bool, iter.Seq2[chartstream.Event, error])
	Events(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) iter.Seq2[chartstream.Event, error]
	Write(ctx context.Context, tenant chartstream.TenantID, appends ...chartstream.Append) ([]chartstream.AppendResult, error)
	Recorded(ctx context.Context, tenant chartstream.TenantID, ids []uuid.UUID) ([]chartstream.RecordedEvent, error)
	SaveSnapshot(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, snap chartstream.Snapshot) error
}

// Kind describes an aggregate type A (a pointer to its state) to the
// runner.
type Kind[A any] struct {
	// StreamType names the aggregate's streams, e.g. "patient".
	StreamType string
	// New returns the state of an aggregate with no events yet.
	New func(id uuid.UUID) A
	// Apply decodes a stored event and folds it into the state.
	Apply func(a A, e chartstream.Event) error
	// Snapshots, when set, keeps loading at constant cost however long
	// the aggregate's history grows.
	Snapshots *Snapshots[A]
}

// Snapshots says how an aggregate's state is saved and restored.
type Snapshots[A any] struct {
	// Every is how many events may follow the last snapshot before a
	// command takes a new one.
	Every int64
	// SchemaVersion is the state format's version; snapshots of another
	// are ignored (the history is replayed), so changing the state's
	// shape only needs a new version, never a migration.
	SchemaVersion int
	Encode        func(A) ([]byte, error)
	Decode        func(id uuid.UUID, state []byte) (A, error)
}

// Repository loads and changes aggregates of one kind: every command runs
// through its Update.
type Repository[A any, E Payload] struct {
	store Store
	kind  Kind[A]
}

// NewRepository returns the repository of kind on store. It panics on a
// nil store or an incomplete kind, wiring bugs.
func NewRepository[A any, E Payload](store Store, kind Kind[A]) Repository[A, E] {
	if store == nil || kind.New == nil || kind.Apply == nil || kind.StreamType == "" {
		panic("decision: NewRepository with a nil store or an incomplete kind")
	}
	return Repository[A, E]{store: store, kind: kind}
}

// Stream returns the reference of the aggregate id's stream.
func (r Repository[A, E]) Stream(id uuid.UUID) chartstream.StreamRef {
	return chartstream.StreamRef{Type: r.kind.StreamType, ID: id}
}

// Load returns the aggregate's state and the version it is at (NoStream
// for one without events): from its latest snapshot and the events after
// it, or its whole history.
func (r Repository[A, E]) Load(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (A, int64, error) {
	a, version, _, err := r.load(ctx, tenant, id)
	return a, version, err
}

// load is Load, also saying how many events followed the snapshot. The
// snapshot and the first events come in one round trip.
func (r Repository[A, E]) load(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (a A, version, replayed int64, err error) {
	a, version = r.kind.New(id), chartstream.NoStream
	stream := r.Stream(id)
	schema := 0
	if r.kind.Snapshots != nil {
		schema = r.kind.Snapshots.SchemaVersion
	}
	snap, ok, events := r.store.LoadStream(ctx, tenant, stream, schema)
	if ok {
		restored, err := r.kind.Snapshots.Decode(id, snap.State)
		if err != nil {
			return a, 0, 0, fmt.Errorf("restore %s %s from its snapshot: %w", r.kind.StreamType, id, err)
		}
		a, version = restored, snap.Version
	}
	from := version
	version, err = r.fold(stream, a, version, events)
	return a, version, version - from, err
}

// catchUp folds the stream's events after version into a.
func (r Repository[A, E]) catchUp(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, a A, version int64) (int64, error) {
	return r.fold(stream, a, version, r.store.Events(ctx, tenant, stream, version+1))
}

// fold folds events into a and returns the version of the last.
func (r Repository[A, E]) fold(stream chartstream.StreamRef, a A, version int64, events iter.Seq2[chartstream.Event, error]) (int64, error) {
	for e, err := range events {
		if err != nil {
			return version, fmt.Errorf("read %s stream %s: %w", stream.Type, stream.ID, err)
		}
		if err := r.kind.Apply(a, e); err != nil {
			return version, err
		}
		version = e.Version
	}
	return version, nil
}

// Option adjusts one Update.
type Option func(*change)

// change is what an Update is told besides its decision.
type change struct {
	reports   uuid.UUID
	dependsOn []string
	consults  []ConsultFn
}

// Reports makes id the result's ID (an allergy, an observation) instead
// of the aggregate's.
func Reports(id uuid.UUID) Option { return func(c *change) { c.reports = id } }

// DependsOn names the event types whose arrival would change the
// decision. The events are then appended at whatever version the stream
// is at unless events of those types came after the load: a command whose
// decision does not depend on another writer's append (an observation) is
// never refused for it. Without DependsOn, the stream must still be at the
// version the decision was taken at.
func DependsOn(types ...string) Option { return func(c *change) { c.dependsOn = types } }

// ConsultFn reads another aggregate a decision needs (the patient a
// prescription is for), again on every attempt, and returns the condition
// that stream must meet when the events are appended (see Guard).
type ConsultFn func(ctx context.Context) (chartstream.Append, error)

// Consulting adds an aggregate the decision reads: the write fails, and the
// decision is taken again, if that aggregate changed in a way it depends
// on, so a rule across aggregates holds atomically.
func Consulting(fn ConsultFn) Option { return func(c *change) { c.consults = append(c.consults, fn) } }

// Guard is the condition on a consulted stream read at version: no event
// of the given types after it.
func Guard(stream chartstream.StreamRef, version int64, dependsOn ...string) chartstream.Append {
	return chartstream.Append{Stream: stream, Expected: chartstream.AnyVersion, Since: version, Unless: dependsOn}
}

// attempts bounds deciding again after a concurrent append changed what a
// decision depends on; each attempt reads only the events since the last.
const attempts = 10

// Update runs one command on aggregate id: load, decide, append, the one
// shape every command has.
//
// expected is the caller's If-Match: the aggregate must be at that version
// (EPRECONDITION otherwise), and a concurrent append is the caller's to
// judge (EPRECONDITION). Without it, a concurrent append that changes what
// the decision depends on (see DependsOn, Consulting) makes Update read the
// new events and decide again.
//
// With md.CommandID set (a request with an Idempotency-Key), the events'
// ids derive from it: a command already recorded returns its original
// result instead of running again, and could never be recorded twice.
//
// Errors: whatever decide returns; ENOTFOUND from decide for a missing
// aggregate; ECONFLICT when attempts are spent; ECOMMITUNKNOWN and other
// store errors, wrapped.
func (r Repository[A, E]) Update(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID, expected *int64, md chartstream.Metadata, decide func(A) ([]E, error), opts ...Option) (chartstream.CommandResult, error) {
	c := change{reports: id}
	for _, o := range opts {
		o(&c)
	}
	stream := r.Stream(id)
	if res, ok, err := r.recorded(ctx, tenant, stream, md, c.reports); err != nil || ok {
		return res, err
	}
	a, version, replayed, err := r.load(ctx, tenant, id)
	if err != nil {
		return chartstream.CommandResult{}, err
	}
	for attempt := 1; ; attempt++ {
		if expected != nil && *expected != version {
			return chartstream.CommandResult{}, chartstream.Errorf(chartstream.EPRECONDITION,
				"%s is at version %d, not the expected version %d", stream.Type, version, *expected)
		}
		guards := make([]chartstream.Append, 0, len(c.consults))
		for _, consult := range c.consults {
			g, err := consult(ctx)
			if err != nil {
				return chartstream.CommandResult{}, err
			}
			guards = append(guards, g)
		}
		payloads, err := decide(a)
		if err != nil {
			return chartstream.CommandResult{}, err
		}
		events, err := Encode(md, stream, payloads)
		if err != nil {
			return chartstream.CommandResult{}, err
		}
		if len(events) == 0 {
			return chartstream.CommandResult{ID: c.reports, Version: version}, nil
		}
		main := chartstream.Append{Stream: stream, Expected: version, Events: events}
		if expected == nil && c.dependsOn != nil {
			main.Expected, main.Since, main.Unless = chartstream.AnyVersion, version, c.dependsOn
		}
		res, err := r.store.Write(ctx, tenant, append([]chartstream.Append{main}, guards...)...)
		if err == nil {
			r.snapshot(ctx, tenant, stream, a, version, replayed)
			return chartstream.CommandResult{ID: c.reports, Version: res[0].Version,
				LastEvent: events[len(events)-1].ID, Position: res[0].Positions[len(res[0].Positions)-1]}, nil
		}
		if chartstream.ErrorCode(err) == chartstream.ECONFLICT {
			if res, ok, rerr := r.recorded(ctx, tenant, stream, md, c.reports); rerr != nil || ok {
				return res, rerr // a retry of this command got there first
			}
		}
		if !errors.Is(err, chartstream.ErrConcurrentWrite) {
			return chartstream.CommandResult{}, fmt.Errorf("append to %s stream %s: %w", stream.Type, stream.ID, err)
		}
		if expected != nil {
			return chartstream.CommandResult{}, &chartstream.Error{Code: chartstream.EPRECONDITION,
				Message: stream.Type + " changed since the expected version", Err: err}
		}
		if attempt >= attempts || ctx.Err() != nil {
			return chartstream.CommandResult{}, fmt.Errorf("append to %s stream %s: %w", stream.Type, stream.ID, err)
		}
		// Another writer got there first: decide again on what it wrote.
		from := version
		if version, err = r.catchUp(ctx, tenant, stream, a, version); err != nil {
			return chartstream.CommandResult{}, err
		}
		replayed += version - from
	}
}

// recorded returns the result of a command whose events (ids derived from
// md.CommandID) are already recorded: a retry of a request that committed.
func (r Repository[A, E]) recorded(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, md chartstream.Metadata, reports uuid.UUID) (chartstream.CommandResult, bool, error) {
	if md.CommandID == "" {
		return chartstream.CommandResult{}, false, nil
	}
	ids := make([]uuid.UUID, maxDerivedEvents)
	for i := range ids {
		ids[i] = EventID(md, stream, i)
	}
	found, err := r.store.Recorded(ctx, tenant, ids)
	if err != nil || len(found) == 0 {
		return chartstream.CommandResult{}, false, err
	}
	res := chartstream.CommandResult{ID: reports}
	for _, f := range found {
		res.Version = max(res.Version, f.Version)
		if f.Position > res.Position {
			res.Position, res.LastEvent = f.Position, f.ID
		}
	}
	return res, true, nil
}

// snapshot saves the state the decision was taken on, at version, when
// replayed events followed the last snapshot: the next load starts there.
// A failure only costs the next loads time, so it is not the command's.
func (r Repository[A, E]) snapshot(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, a A, version, replayed int64) {
	sn := r.kind.Snapshots
	if sn == nil || replayed < sn.Every {
		return
	}
	state, err := sn.Encode(a)
	if err != nil {
		return
	}
	_ = r.store.SaveSnapshot(ctx, tenant, stream, chartstream.Snapshot{Version: version, SchemaVersion: sn.SchemaVersion, State: state})
}

// maxDerivedEvents is how many of a command's events the runner looks for
// when it checks whether the command was recorded; commands record fewer.
const maxDerivedEvents = 8

// EventID is the id of a command's i-th event in stream when md carries a
// command id, and zero (the store chooses) otherwise.
func EventID(md chartstream.Metadata, stream chartstream.StreamRef, i int) uuid.UUID {
	cmd, err := uuid.Parse(md.CommandID)
	if err != nil {
		return uuid.Nil
	}
	return uuid.NewSHA1(cmd, fmt.Appendf(nil, "event/%s/%s/%d", stream.Type, stream.ID, i))
}

// NewID returns the id of something a command creates (a patient, an
// observation): derived from md's command id, so a retried command creates
// the same thing, or random without one. name tells a command's ids apart.
func NewID(md chartstream.Metadata, name string) uuid.UUID {
	cmd, err := uuid.Parse(md.CommandID)
	if err != nil {
		return uuid.New()
	}
	return uuid.NewSHA1(cmd, []byte("id/"+name))
}

// Encode turns payloads into the events of stream carrying md, attaching
// the claims of payloads that make any, their ids derived from md's
// command id when it has one.
func Encode[E Payload](md chartstream.Metadata, stream chartstream.StreamRef, payloads []E) ([]chartstream.NewEvent, error) {
	events := make([]chartstream.NewEvent, 0, len(payloads))
	for i, p := range payloads {
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", p.EventType(), err)
		}
		id := EventID(md, stream, i)
		if id == uuid.Nil {
			id = uuid.New() // no command id: nothing to derive from
		}
		e := chartstream.NewEvent{ID: id, Type: p.EventType(), Payload: body, Metadata: md}
		if c, ok := any(p).(Claimer); ok {
			e.Claims = c.Claims()
		}
		events = append(events, e)
	}
	return events, nil
}
