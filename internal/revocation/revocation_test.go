package revocation_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/testkit"
)

// MustStore returns a Store on the test Redis under a prefix of its own.
func MustStore(tb testing.TB) (*revocation.Store, *redis.Client, string) {
	tb.Helper()
	rdb := testkit.MustRedis(tb)
	prefix := "test:" + uuid.NewString() + ":revoked:"
	return revocation.New(rdb, prefix), rdb, prefix
}

func TestRevokeThenRevoked(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _, _ := MustStore(t)
	jti := uuid.NewString()
	if err := s.Revoke(ctx, jti, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	revoked, err := s.IsRevoked(ctx, jti)
	if err != nil || !revoked {
		t.Fatalf("IsRevoked = %v, %v; want true", revoked, err)
	}
	other, err := s.IsRevoked(ctx, uuid.NewString())
	if err != nil || other {
		t.Fatalf("unknown jti: IsRevoked = %v, %v; want false", other, err)
	}
}

func TestUnknownAndEmptyAreNotRevoked(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _, _ := MustStore(t)
	for _, jti := range []string{uuid.NewString(), ""} {
		if revoked, err := s.IsRevoked(ctx, jti); err != nil || revoked {
			t.Fatalf("IsRevoked(%q) = %v, %v; want false", jti, revoked, err)
		}
	}
	if err := s.Revoke(ctx, "", time.Now().Add(time.Hour)); chartstream.ErrorCode(err) != chartstream.EINVALID {
		t.Fatalf("Revoke(\"\") = %v; want EINVALID", err)
	}
}

func TestRevocationExpires(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _, _ := MustStore(t)
	jti := uuid.NewString()
	if err := s.Revoke(ctx, jti, time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if revoked, err := s.IsRevoked(ctx, jti); err != nil || !revoked {
		t.Fatalf("before expiry: IsRevoked = %v, %v; want true", revoked, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		revoked, err := s.IsRevoked(ctx, jti)
		if err != nil {
			t.Fatal(err)
		}
		if !revoked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("revocation did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPastExpiryStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, rdb, prefix := MustStore(t)
	if err := s.Revoke(ctx, uuid.NewString(), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys = %v, %v; want none", keys, err)
	}
}

func TestRevokeAgainKeepsTheLaterExpiry(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, rdb, prefix := MustStore(t)
	jti := uuid.NewString()
	later := time.Now().Add(time.Hour)
	if err := s.Revoke(ctx, jti, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, jti, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v; want one", keys, err)
	}
	if len(keys[0]) != len(prefix)+64 {
		t.Errorf("key %q does not hold a SHA-256 of the jti", keys[0])
	}
	ttl, err := rdb.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl < 59*time.Minute {
		t.Fatalf("TTL = %v, %v; want about an hour", ttl, err)
	}
	if err := s.Revoke(ctx, jti, later.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(ctx, keys[0]).Result(); err != nil || ttl < 119*time.Minute {
		t.Fatalf("TTL after a later Revoke = %v, %v; want about two hours", ttl, err)
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	// Nothing listens on port 1 of loopback.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	s := revocation.New(rdb, "")
	if _, err := s.IsRevoked(ctx, "jti"); chartstream.ErrorCode(err) != chartstream.EUNAVAILABLE {
		t.Errorf("IsRevoked = %v; want EUNAVAILABLE", err)
	}
	if err := s.Revoke(ctx, "jti", time.Now().Add(time.Hour)); chartstream.ErrorCode(err) != chartstream.EUNAVAILABLE {
		t.Errorf("Revoke = %v; want EUNAVAILABLE", err)
	}
}
