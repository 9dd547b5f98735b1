package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Reached reports whether every named projection of tenant has applied
// event (from a command's consistency token). An id that is not one of the
// tenant's events — another tenant's, or made up — counts as reached: the
// token then asks for nothing.
func Reached(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, names []string, event uuid.UUID) (bool, error) {
	var reached bool
	err := postgres.InReadModelTx(ctx, pool, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		var txid, position int64
		err := tx.QueryRow(ctx, `SELECT txid::text::bigint, position FROM events WHERE event_id = $1 AND tenant_id = $2`, event, tenant).Scan(&txid, &position)
		if errors.Is(err, pgx.ErrNoRows) {
			reached = true
			return nil
		}
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) = cardinality($2::text[]) FROM projection_checkpoints
			WHERE tenant_id = $1 AND projection = ANY($2) AND (txid, position) >= ($3, $4)`,
			tenant, names, txid, position).Scan(&reached)
	})
	if err != nil {
		return false, fmt.Errorf("projections reached: %w", err)
	}
	return reached, nil
}
