package medicationorder

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// EventStore is what medication order handlers need of the event store.
// Patient streams are only read.
type EventStore interface {
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
	Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error)
}

// Result is what a handler returns after a successful append.
type Result struct {
	// ID is the order id.
	ID uuid.UUID
	// Version is the order stream's version after the append; the API
	// returns it as the ETag for later If-Match.
	Version int64
	// Position is the global position of the last appended event, for
	// read-your-writes waits on projections.
	Position int64
}

// handler is what every medication order handler holds.
type handler struct {
	store EventStore
}

func newHandler(store EventStore) handler {
	if store == nil {
		panic("medicationorder: nil EventStore")
	}
	return handler{store: store}
}

// result turns what decision.Run returned into the handler's result for id.
func result(id uuid.UUID, res chartstream.AppendResult, err error) (Result, error) {
	if err != nil {
		return Result{}, err
	}
	return Result{ID: id, Version: res.Version, Position: decision.LastPosition(res)}, nil
}
