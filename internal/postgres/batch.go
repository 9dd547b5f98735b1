package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
)

// ReadBatchFn reads the results of the caller's queued queries, in order.
type ReadBatchFn func(pgx.BatchResults) error

// InTenantBatch is InTenantTx for hot paths: the tenant setting and the
// batch's queries go to the server as one pipeline with a single Sync, so
// the whole transaction costs one network round trip. PostgreSQL runs the
// statements before a Sync as one implicit transaction, committed at the
// Sync and rolled back whole if any statement fails, so set_config(...,
// true) holds for exactly these statements.
//
// read consumes the results of the batch's queries. It cannot veto the
// commit: the server has committed at the Sync by the time read runs, so
// every condition a write depends on must be in the SQL itself. An error
// from a query (then nothing was committed) or from read is returned as is.
func InTenantBatch(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, b *pgx.Batch, read ReadBatchFn) (err error) {
	if tenant.IsZero() {
		return errors.New("postgres: InTenantBatch without a tenant")
	}
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	full.Queue("SELECT set_config('app.tenant_id', $1, true)", tenant.String())
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)

	br := pool.SendBatch(ctx, full)
	defer func() {
		if closeErr := br.Close(); err == nil && closeErr != nil {
			err = fmt.Errorf("commit: %w", closeErr)
		}
	}()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	return read(br)
}
