package idempotency_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/testkit"
)

func TestKeyValidate(t *testing.T) {
	t.Parallel()
	tenant := chartstream.NewTenantID()
	tests := []struct {
		name string
		key  idempotency.Key
		code string
	}{
		{"uuid", idempotency.Key{Tenant: tenant, Subject: "u", Value: "8e03978e-40d5-43e8-bc93-6894a57f9324"}, ""},
		{"255 chars", idempotency.Key{Tenant: tenant, Subject: "u", Value: strings.Repeat("k", 255)}, ""},
		{"punctuation", idempotency.Key{Tenant: tenant, Subject: "u", Value: "!~\"/"}, ""},
		{"empty", idempotency.Key{Tenant: tenant, Subject: "u", Value: ""}, chartstream.EINVALID},
		{"256 chars", idempotency.Key{Tenant: tenant, Subject: "u", Value: strings.Repeat("k", 256)}, chartstream.EINVALID},
		{"space", idempotency.Key{Tenant: tenant, Subject: "u", Value: "a b"}, chartstream.EINVALID},
		{"control", idempotency.Key{Tenant: tenant, Subject: "u", Value: "a\nb"}, chartstream.EINVALID},
		{"non-ASCII", idempotency.Key{Tenant: tenant, Subject: "u", Value: "clé"}, chartstream.EINVALID},
		{"no tenant", idempotency.Key{Subject: "u", Value: "k"}, chartstream.EINTERNAL},
		{"no subject", idempotency.Key{Tenant: tenant, Value: "k"}, chartstream.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := chartstream.ErrorCode(tt.key.Validate()); got != tt.code {
				t.Fatalf("code %q; want %q", got, tt.code)
			}
		})
	}
}

func TestRedisKeysHoldNoRawInput(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, prefix := MustStore(t, idempotency.Config{})
	k := NewKey()
	mustComplete(t, s, k)
	rdb := testkit.MustRedis(t)
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v; want one", keys, err)
	}
	if !strings.HasPrefix(keys[0], prefix+k.Tenant.String()+":") || strings.Contains(keys[0], k.Subject) || strings.Contains(keys[0], k.Value) {
		t.Fatalf("key %q: want tenant and hashes only", keys[0])
	}
	stored, err := rdb.HGetAll(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	for field, v := range stored {
		if strings.Contains(v, string(fp)) {
			t.Fatalf("field %s holds the raw fingerprint", field)
		}
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	// Nothing listens on port 1 of loopback.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := idempotency.New(rdb, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey()
	_, err = s.Begin(ctx, k, fp)
	for _, err := range []error{err, s.Complete(ctx, k, fp, created("p")), s.Abandon(ctx, k)} {
		if chartstream.ErrorCode(err) != chartstream.EUNAVAILABLE {
			t.Fatalf("err = %v; want EUNAVAILABLE", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (idempotency.Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := idempotency.Config{TTL: -time.Second, InFlightTTL: time.Microsecond, Wait: -1}.Validate()
	for _, field := range []string{"TTL", "InFlightTTL", "Wait"} {
		if err == nil || !strings.Contains(err.Error(), field+" must") {
			t.Errorf("Validate = %v; want a problem with %s", err, field)
		}
	}
	if _, err := idempotency.New(testkit.MustRedis(t), idempotency.Config{PollInterval: -1}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}
