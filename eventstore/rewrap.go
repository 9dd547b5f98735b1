package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// rewrapPage is how many keys one transaction of Rewrap re-wraps.
const rewrapPage = 200

// KeyUnwrapper opens keys wrapped by a key provider that is being retired.
type KeyUnwrapper interface {
	UnwrapKey(ctx context.Context, tenant chartstream.TenantID, wrapped []byte) ([]byte, error)
}

// RewrapStats counts what Rewrap did.
type RewrapStats struct {
	// Rewrapped keys are now wrapped by the store's key provider.
	Rewrapped int
	// Current keys were wrapped by the store's provider already.
	Current int
}

// Rewrap re-wraps tenant's live keys (its patients' data keys and its own
// keyed-hash keys) from the key provider old to the store's: each is
// unwrapped with old and wrapped again with the store's provider, the data
// untouched. It is how a tenant's key-encryption key is retired: once every
// key is re-wrapped, the old key can be destroyed, and with it every copy of
// the wrapped keys that backups and WAL archives still hold, an erased
// patient's included.
//
// A key old cannot open but the store's provider can is current already,
// so Rewrap can be run again after an interruption, and should be run once
// more after every process uses the new provider (a process still on the
// old one may have made a key meanwhile). A key neither can open stops it
// with an error. Destroyed keys stay destroyed: a shredding that races
// Rewrap wins.
func (s *Store) Rewrap(ctx context.Context, tenant chartstream.TenantID, old KeyUnwrapper, progress func(RewrapStats)) (RewrapStats, error) {
	var stats RewrapStats
	after := uuid.Nil
	for {
		var page []wrappedKey
		err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, `SELECT subject_id, wrapped FROM data_keys
				WHERE tenant_id = $1 AND subject_id > $2 AND wrapped IS NOT NULL ORDER BY subject_id LIMIT $3`, tenant, after, rewrapPage)
			var err error
			page, err = pgx.CollectRows(rows, pgx.RowToStructByPos[wrappedKey])
			if err != nil || len(page) == 0 {
				return err
			}
			for i := range page {
				if err := s.rewrapOne(ctx, tenant, old, &page[i]); err != nil {
					return fmt.Errorf("data key of subject %s: %w", page[i].ID, err)
				}
			}
			for _, k := range page {
				if k.rewrapped == nil {
					continue
				}
				// Compare and set: a key shredded meanwhile stays shredded.
				if _, err := tx.Exec(ctx, `UPDATE data_keys SET wrapped = $3 WHERE tenant_id = $1 AND subject_id = $2 AND wrapped = $4`,
					tenant, k.ID, k.rewrapped, k.Wrapped); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return stats, fmt.Errorf("rewrap: %w", err)
		}
		if len(page) == 0 {
			return stats, nil
		}
		for _, k := range page {
			if k.rewrapped != nil {
				stats.Rewrapped++
			} else {
				stats.Current++
			}
		}
		after = page[len(page)-1].ID
		if progress != nil {
			progress(stats)
		}
	}
}

// wrappedKey is one row of data_keys, and what Rewrap makes of it.
type wrappedKey struct {
	ID        uuid.UUID
	Wrapped   []byte
	rewrapped []byte
}

// rewrapOne sets k.rewrapped to k's key wrapped by the store's provider, or
// leaves it nil when that provider wrapped k already.
func (s *Store) rewrapOne(ctx context.Context, tenant chartstream.TenantID, old KeyUnwrapper, k *wrappedKey) error {
	key, err := old.UnwrapKey(ctx, tenant, k.Wrapped)
	if errors.Is(err, phi.ErrDecrypt) {
		if _, cerr := s.keys.UnwrapKey(ctx, tenant, k.Wrapped); cerr == nil {
			return nil // current already
		}
	}
	if err != nil {
		return fmt.Errorf("unwrap with the old provider: %w", err)
	}
	defer clear(key)
	if k.rewrapped, err = s.keys.WrapKey(ctx, tenant, key); err != nil {
		return fmt.Errorf("wrap with the new provider: %w", err)
	}
	return nil
}
