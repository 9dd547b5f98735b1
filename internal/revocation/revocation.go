// Package revocation keeps the ids (jti) of revoked JWTs in Redis, shared by
// every API process, until the tokens would have expired anyway.
//
// An entry lives only as long as the token could still be presented: after
// its expiry the verifier rejects the token on its own, so keeping the entry
// longer would only grow Redis. Keys hold the SHA-256 of the jti, never the
// jti itself, so their length is bounded whatever the identity provider
// puts in its ids.
package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
)

// DefaultPrefix is the key prefix New uses when given "".
const DefaultPrefix = "revoked:"

// Store records and looks up revoked token ids. It is safe for concurrent
// use.
type Store struct {
	rdb    *redis.Client
	prefix string
}

// New returns a Store keeping its entries under prefix (DefaultPrefix when
// empty). A nil rdb is a wiring bug and panics.
func New(rdb *redis.Client, prefix string) *Store {
	if rdb == nil {
		panic("revocation: nil redis client")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: prefix}
}

// Revoke marks jti revoked until the given time, which should be the token's
// expiry plus the verifier's leeway. An until already in the past stores
// nothing: the verifier rejects such a token anyway. Revoking the same jti
// again keeps the later of the two expiries, so a second, shorter call never
// shortens a revocation.
//
// Errors: EINVALID for an empty jti, EUNAVAILABLE (wrapping the cause) when
// Redis fails.
func (s *Store) Revoke(ctx context.Context, jti string, until time.Time) error {
	if jti == "" {
		return chartstream.Errorf(chartstream.EINVALID, "token id is required")
	}
	if !until.After(time.Now()) {
		return nil
	}
	key := s.key(jti)
	// NX creates the entry; PEXPIREAT ... GT then only ever lengthens it.
	// Both run in one MULTI so no reader sees the key without its expiry.
	// (GT needs Redis 7.)
	var set *redis.StatusCmd
	var extend *redis.Cmd
	// The pipeline reports only its first failed command, and SET NX on an
	// existing key "fails" with redis.Nil, so each command is checked
	// instead (go-redis sets a transport error on every command).
	_, _ = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		set = p.SetArgs(ctx, key, "1", redis.SetArgs{Mode: "NX", ExpireAt: until})
		extend = p.Do(ctx, "PEXPIREAT", key, until.UnixMilli(), "GT")
		return nil
	})
	if err := set.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("cannot record token revocation", err)
	}
	if err := extend.Err(); err != nil {
		return unavailable("cannot record token revocation", err)
	}
	return nil
}

// IsRevoked reports whether jti was revoked and its revocation has not yet
// expired. An empty jti (a token without an id) is never revoked.
//
// Errors: EUNAVAILABLE (wrapping the cause) when Redis fails. Callers should
// fail closed then: admitting a revoked token to clinical data is worse than
// a 503.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	if jti == "" {
		return false, nil
	}
	n, err := s.rdb.Exists(ctx, s.key(jti)).Result()
	if err != nil {
		return false, unavailable("cannot check token revocation", err)
	}
	return n > 0, nil
}

func (s *Store) key(jti string) string {
	sum := sha256.Sum256([]byte(jti))
	return s.prefix + hex.EncodeToString(sum[:])
}

func unavailable(msg string, cause error) *chartstream.Error {
	return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: msg, Err: cause}
}
