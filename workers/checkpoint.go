package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream/eventstore"
)

// checkpoint reads the relay's cursor; a relay that never ran starts at
// the beginning of the event store.
func (r *Relay) checkpoint(ctx context.Context) (eventstore.Cursor, error) {
	return LoadCheckpoint(ctx, r.deps.DB, r.cfg.Name)
}

func (r *Relay) saveCheckpoint(ctx context.Context, c eventstore.Cursor) error {
	return SaveCheckpoint(ctx, r.deps.DB, r.cfg.Name, c)
}

// LoadCheckpoint returns the named relay's checkpoint, the zero cursor when
// it has none.
func LoadCheckpoint(ctx context.Context, db *pgxpool.Pool, name string) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	err := db.QueryRow(ctx, `SELECT txid, position FROM relay_checkpoints WHERE name = $1`, name).Scan(&c.TxID, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Cursor{}, nil
	}
	if err != nil {
		return c, fmt.Errorf("load relay checkpoint: %w", err)
	}
	return c, nil
}

// SaveCheckpoint records the named relay's cursor. Operators (and the
// relay benchmark) may use it to start a new relay somewhere other than
// the beginning.
func SaveCheckpoint(ctx context.Context, db *pgxpool.Pool, name string, c eventstore.Cursor) error {
	_, err := db.Exec(ctx, `INSERT INTO relay_checkpoints (name, txid, position) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, position = excluded.position, updated_at = now()`,
		name, c.TxID, c.Position)
	if err != nil {
		return fmt.Errorf("save relay checkpoint: %w", err)
	}
	return nil
}

// lagCountCap bounds the events Lag counts, so a large backlog (a new
// relay, a long NATS outage) does not make /readyz scan it all.
const lagCountCap = 100_000

// RelayLag is how far the relay is behind the event store.
type RelayLag struct {
	// Events committed but not yet published, counted up to 100,000.
	Events int64 `json:"events"`
	// Seconds since the oldest unpublished event was recorded (the
	// oldest is first in commit order, so the cap does not change it).
	Seconds float64 `json:"seconds"`
}

// Lag measures the relay's lag from its checkpoint.
func (r *Relay) Lag(ctx context.Context) (RelayLag, error) {
	c, err := r.checkpoint(ctx)
	if err != nil {
		return RelayLag{}, err
	}
	var lag RelayLag
	err = r.deps.DB.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8
		FROM (SELECT recorded_at FROM events WHERE (txid, position) > ($1::text::xid8, $2) ORDER BY txid, position LIMIT $3) AS unpublished`,
		fmt.Sprint(c.TxID), c.Position, lagCountCap).Scan(&lag.Events, &lag.Seconds)
	if err != nil {
		return RelayLag{}, fmt.Errorf("relay lag: %w", err)
	}
	return lag, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
