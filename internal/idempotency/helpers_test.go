package idempotency_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/testkit"
)

// MustStore returns a Store under a key prefix of this test's own, and that
// prefix.
func MustStore(tb testing.TB, cfg idempotency.Config) (*idempotency.Store, string) {
	tb.Helper()
	cfg.Prefix = "test:" + uuid.NewString() + ":idem:"
	s, err := idempotency.New(testkit.MustRedis(tb), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s, cfg.Prefix
}

// NewKey returns a key of a fresh tenant and subject.
func NewKey() idempotency.Key {
	return idempotency.Key{Tenant: chartstream.NewTenantID(), Subject: "user-" + uuid.NewString(), Value: uuid.NewString()}
}

func created(id string) idempotency.Response {
	return idempotency.Response{
		Status: 201,
		Header: map[string]string{"Content-Type": "application/json", "Location": "/patients/" + id},
		Body:   []byte(`{"id":"` + id + `","version":1}`),
	}
}
