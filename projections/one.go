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

// One reads the row of tenant whose id column is id, as T (see
// pgx.RowToStructByName). query is SQL from the code, never input: a SELECT
// whose $1 is the tenant and $2 the id. A missing row, or another
// tenant's, is ENOTFOUND naming what.
func One[T any](ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, query string, id uuid.UUID, what string) (T, error) {
	var v T
	err := postgres.InReadModelTx(ctx, pool, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, query, tenant, id)
		var err error
		v, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return v, chartstream.Errorf(chartstream.ENOTFOUND, "%s not found", what)
	}
	if err != nil {
		return v, fmt.Errorf("read %s: %w", what, err)
	}
	return v, nil
}
