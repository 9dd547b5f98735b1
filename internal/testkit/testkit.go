// Package testkit connects tests to the real PostgreSQL, NATS and Redis that
// `make test` starts (their URLs come from .local/env), and isolates tests by
// data: a fresh tenant per test, never truncation.
package testkit

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
)

// Env returns the named environment variable or fails the test with a hint:
// integration tests run against the stack `make test` brings up.
func Env(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		tb.Fatalf("%s is not set: run the tests with `make test` (or `make up && . .local/env`)", name)
	}
	return v
}

// Context returns a context cancelled when the test ends (or after a minute).
func Context(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// pools are shared by every test of a package: opening a pool per test would
// exhaust max_connections when packages run in parallel.
var pools sync.Map // env var name -> *pgxpool.Pool

// MustPool returns a shared pool for the URL in the named environment
// variable (DATABASE_URL, DATABASE_ADMIN_URL, ...).
func MustPool(tb testing.TB, envVar string) *pgxpool.Pool {
	tb.Helper()
	if p, ok := pools.Load(envVar); ok {
		return p.(*pgxpool.Pool)
	}
	p, err := postgres.Connect(context.Background(), postgres.Config{URL: Env(tb, envVar), ApplicationName: "chartstream-test", MaxConns: 16})
	if err != nil {
		tb.Fatalf("connect %s: %v", envVar, err)
	}
	if actual, loaded := pools.LoadOrStore(envVar, p); loaded {
		p.Close()
		return actual.(*pgxpool.Pool)
	}
	return p
}

// MustAppPool returns the pool of the chartstream_app role, the one RLS binds.
func MustAppPool(tb testing.TB) *pgxpool.Pool { tb.Helper(); return MustPool(tb, "DATABASE_URL") }

// MustAdminPool returns the owner's pool (migrations, tenant administration).
func MustAdminPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return MustPool(tb, "DATABASE_ADMIN_URL")
}

// MustTenant creates a fresh active tenant for this test and returns its id.
func MustTenant(tb testing.TB) chartstream.TenantID {
	tb.Helper()
	return MustTenantWith(tb, chartstream.TierStandard)
}

// MustTenantWith creates a fresh active tenant of the given tier.
func MustTenantWith(tb testing.TB, tier chartstream.Tier) chartstream.TenantID {
	tb.Helper()
	slug := "t-" + uuid.NewString()[:18]
	t, err := tenants.NewAdmin(MustAdminPool(tb)).Create(context.Background(), tenants.NewTenant{Slug: slug, Name: fmt.Sprintf("Test clinic %s", slug), Tier: tier})
	if err != nil {
		tb.Fatalf("create tenant: %v", err)
	}
	return t.ID
}
