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

// InTenantBatch is InTenantTx for hot paths: BEGIN, the tenant setting, the
// batch's queries and COMMIT are sent as one pipeline, so the whole
// transaction costs one network round trip. read consumes the results of
// the batch's queries; if it (or any query) fails, the transaction is rolled
// back and the error returned as is.
func InTenantBatch(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, b *pgx.Batch, read ReadBatchFn) (err error) {
	if tenant.IsZero() {
		return errors.New("postgres: InTenantBatch without a tenant")
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()

	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+3)}
	full.Queue("BEGIN")
	full.Queue("SELECT set_config('app.tenant_id', $1, true)", tenant.String())
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	full.Queue("COMMIT")

	br := conn.SendBatch(ctx, full)
	defer func() {
		closeErr := br.Close()
		if err == nil && closeErr != nil {
			err = fmt.Errorf("commit: %w", closeErr)
		}
		// A failed statement leaves the explicit transaction aborted; end
		// it here so the connection goes back to the pool clean.
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				conn.Conn().PgConn().Close(ctx) //nolint:errcheck // the pool drops it
			}
		}
	}()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	if err := read(br); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
