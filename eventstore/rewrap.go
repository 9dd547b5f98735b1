package eventstore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// rewrapPage is how many keys RewrapKeys reads and writes per transaction.
const rewrapPage = 200

// RewrapReport counts the keys RewrapKeys wrapped again.
type RewrapReport struct {
	DataKeys   int64 `json:"data_keys"`
	TenantKeys int64 `json:"tenant_keys"`
}

// rewrapRow is one wrapped key: a data key (subject) or a tenant key
// (purpose).
type rewrapRow struct {
	subject uuid.UUID
	purpose string
	wrapped []byte
}

// RewrapKeys wraps every live key of the tenant again with the store's key
// provider: each data key (destroyed ones stay destroyed) and each tenant
// key is unwrapped and wrapped anew, for the KMS key the provider now uses
// for the tenant. After moving a tenant's KMS alias to a new key, it
// leaves nothing that needs the old key, which can then be disabled and
// deleted: the old key's deletion makes the copies in backups unreadable,
// erased patients' included. The keys themselves do not change, so no
// cache, event or snapshot is touched.
//
// It works a page at a time, each in its own short transaction, and
// replaces a wrapped key only if it is still the one it read, so it may run
// beside the platform (a key shredded meanwhile stays shredded). The
// store's pool must be allowed to update both tables: the owner role. A
// key that does not unwrap (its KMS key already disabled) stops it with
// the error; a run again resumes the work.
func (s *Store) RewrapKeys(ctx context.Context, tenant chartstream.TenantID, progress ProgressFn) (RewrapReport, error) {
	var r RewrapReport
	var total int64
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM data_keys WHERE tenant_id = $1 AND wrapped IS NOT NULL)
			+ (SELECT count(*) FROM tenant_keys WHERE tenant_id = $1)`, tenant).Scan(&total)
	})
	if err != nil {
		return r, fmt.Errorf("rewrap: count keys: %w", err)
	}
	tell := func() {
		if progress != nil {
			progress(r.DataKeys+r.TenantKeys, total)
		}
	}
	tell()
	var after uuid.UUID
	for {
		rows, err := s.rewrapPage(ctx, tenant, `SELECT subject_id, '', wrapped FROM data_keys
			WHERE tenant_id = $1 AND subject_id > $2 AND wrapped IS NOT NULL ORDER BY subject_id LIMIT $3`, after)
		if err != nil || len(rows) == 0 {
			if err != nil {
				return r, err
			}
			break
		}
		if err := s.rewrapRows(ctx, tenant, rows, `UPDATE data_keys SET wrapped = $4 WHERE tenant_id = $1 AND subject_id = $2 AND wrapped = $3`,
			func(k rewrapRow) any { return k.subject }); err != nil {
			return r, err
		}
		r.DataKeys += int64(len(rows))
		after = rows[len(rows)-1].subject
		tell()
	}
	rows, err := s.rewrapPage(ctx, tenant, `SELECT $2::uuid, purpose, wrapped FROM tenant_keys WHERE tenant_id = $1 ORDER BY purpose LIMIT $3`, uuid.Nil)
	if err == nil {
		err = s.rewrapRows(ctx, tenant, rows, `UPDATE tenant_keys SET wrapped = $4 WHERE tenant_id = $1 AND purpose = $2 AND wrapped = $3`,
			func(k rewrapRow) any { return k.purpose })
	}
	if err != nil {
		return r, err
	}
	r.TenantKeys = int64(len(rows))
	s.tkeys.mu.Lock()
	s.tkeys.m = nil // they hold the same keys; dropped only to be safe
	s.tkeys.mu.Unlock()
	tell()
	return r, nil
}

func (s *Store) rewrapPage(ctx context.Context, tenant chartstream.TenantID, query string, after uuid.UUID) ([]rewrapRow, error) {
	var rows []rewrapRow
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		res, err := tx.Query(ctx, query, tenant, after, rewrapPage)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(res, func(row pgx.CollectableRow) (rewrapRow, error) {
			var k rewrapRow
			return k, row.Scan(&k.subject, &k.purpose, &k.wrapped)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rewrap: read keys: %w", err)
	}
	return rows, nil
}

// rewrapRows wraps rows again and writes them with update ($1 tenant, $2
// the row's key from id, $3 the old wrapping, $4 the new).
func (s *Store) rewrapRows(ctx context.Context, tenant chartstream.TenantID, rows []rewrapRow, update string, id func(rewrapRow) any) error {
	fresh := make([][]byte, len(rows))
	for i, k := range rows {
		key, err := s.keys.UnwrapKey(ctx, tenant, k.wrapped)
		if err != nil {
			return fmt.Errorf("rewrap: unwrap: %w", err)
		}
		fresh[i], err = s.keys.WrapKey(ctx, tenant, key)
		clear(key)
		if err != nil {
			return fmt.Errorf("rewrap: wrap: %w", err)
		}
	}
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for i, k := range rows {
			batch.Queue(update, tenant, id(k), k.wrapped, fresh[i])
		}
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return fmt.Errorf("rewrap: write keys: %w", err)
	}
	return nil
}
