package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// EventStore is what encounter handlers need of the event store. Patient
// streams are only read.
type EventStore interface {
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
	Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error)
}

// Result is what a handler returns after a successful append.
type Result struct {
	// ID is the encounter id.
	ID uuid.UUID
	// Version is the encounter stream's version after the append; the API
	// returns it as the ETag for later If-Match.
	Version int64
	// Position is the global position of the last appended event, for
	// read-your-writes waits on projections.
	Position int64
}

// command is a command on a started encounter.
type command interface {
	Validate() error
	decide(e *Encounter) ([]Event, error)
}

// handler is what every encounter command handler holds.
type handler struct {
	store EventStore
}

func newHandler(store EventStore) handler {
	if store == nil {
		panic("encounter: nil EventStore")
	}
	return handler{store: store}
}

// change validates cmd, then loads the encounter, decides and appends,
// deciding again on fresh state after a concurrent append unless the caller
// pinned expected: each decision re-checks that the encounter is still in
// progress, so the retry cannot transfer or discharge twice.
func (h handler) change(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, id uuid.UUID, expected *int64, cmd command) (Result, error) {
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	plan := decision.Plan{Stream: Stream(id), Metadata: md, ExpectedVersion: expected, Retry: true}
	load := func(ctx context.Context) (*Encounter, int64, error) {
		e, version, err := read(ctx, h.store, tenant, id)
		// Not found before a stale If-Match: there is nothing to be stale.
		if err == nil && !e.Started() {
			err = errNotFound()
		}
		return e, version, err
	}
	res, err := decision.Run(ctx, h.store, tenant, plan, load, cmd.decide)
	return result(id, res, err)
}

// result turns what decision.Run returned into the handler's result for id.
func result(id uuid.UUID, res chartstream.AppendResult, err error) (Result, error) {
	if err != nil {
		return Result{}, err
	}
	return Result{ID: id, Version: res.Version, Position: decision.LastPosition(res)}, nil
}
