package eventstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Tenant keys: one secret per tenant and purpose, made on first use and
// stored wrapped by the tenant's key-encryption key (migration 0007), for
// keyed hashes the database alone cannot compute or reverse.

// tenantKeyTTL bounds how long an unwrapped tenant key stays in memory,
// as for data keys.
const tenantKeyTTL = 5 * time.Minute

type tenantKeyID struct {
	tenant  chartstream.TenantID
	purpose string
}

type tenantKey struct {
	key     []byte
	expires time.Time
}

// tenantKeys caches unwrapped tenant keys.
type tenantKeys struct {
	mu sync.Mutex
	m  map[tenantKeyID]tenantKey
}

// tenantKey returns the tenant's key for purpose, creating it the first
// time; two processes creating it at once agree on the one stored.
func (s *Store) tenantKey(ctx context.Context, tenant chartstream.TenantID, purpose string) ([]byte, error) {
	id := tenantKeyID{tenant, purpose}
	now := time.Now()
	s.tkeys.mu.Lock()
	k, ok := s.tkeys.m[id]
	s.tkeys.mu.Unlock()
	if ok && now.Before(k.expires) {
		return k.key, nil
	}
	fresh, wrapped, err := s.newWrappedKey(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant key: %w", err)
	}
	var stored []byte
	err = postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_keys (tenant_id, purpose, wrapped) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, purpose) DO NOTHING`, tenant, purpose, wrapped); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT wrapped FROM tenant_keys WHERE tenant_id = $1 AND purpose = $2`, tenant, purpose).Scan(&stored)
	})
	if postgres.IsConstraintError(err, postgres.ForeignKeyViolation, "tenant_keys_tenant_id_fkey") {
		return nil, chartstream.Errorf(chartstream.ENOTFOUND, "unknown tenant")
	}
	if err != nil {
		return nil, fmt.Errorf("store tenant key: %w", err)
	}
	key := fresh
	if string(stored) != string(wrapped) {
		if key, err = s.keys.UnwrapKey(ctx, tenant, stored); err != nil {
			return nil, fmt.Errorf("unwrap tenant key: %w", err)
		}
	}
	s.tkeys.mu.Lock()
	if s.tkeys.m == nil || len(s.tkeys.m) > 10000 {
		s.tkeys.m = make(map[tenantKeyID]tenantKey)
	}
	s.tkeys.m[id] = tenantKey{key: key, expires: now.Add(tenantKeyTTL)}
	s.tkeys.mu.Unlock()
	return key, nil
}

// claimsKeyPurpose names the key of unique claims' hashes.
const claimsKeyPurpose = "claims"

// claimHash is what unique_claims stores instead of the value itself: an
// HMAC under the tenant's claims key, so that neither a reader of the
// database (who could hash every 8-digit MRN in seconds) nor another
// tenant can tell which value it is.
func claimHash(key []byte, c chartstream.UniqueClaim) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(c.Scope))
	h.Write([]byte{0})
	h.Write([]byte(c.Value))
	return h.Sum(nil)
}

// pseudonymKeyPurpose names the key of de-identified pseudonyms.
const pseudonymKeyPurpose = "pseudonyms"

// PseudonymKey returns the tenant's pseudonym key (made on first use): the
// HMAC key the de-identifier turns patient and record ids into pseudonyms
// with. It is a key of its own, not the claims key, so that a pseudonym
// never equals a stored claim hash. ENOTFOUND for an unknown tenant.
func (s *Store) PseudonymKey(ctx context.Context, tenant chartstream.TenantID) ([]byte, error) {
	return s.tenantKey(ctx, tenant, pseudonymKeyPurpose)
}
