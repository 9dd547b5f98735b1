package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// InTenantBatch must behave as one transaction: the tenant holds for the
// batch and only for it, and a failing statement undoes the whole batch.
func TestInTenantBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	pool := testkit.MustAppPool(t)
	tenant := testkit.MustTenant(t)

	b := &pgx.Batch{}
	b.Queue(`INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, 'batch.one', '1')`, tenant)
	b.Queue(`SELECT current_setting('app.tenant_id')`)
	err := postgres.InTenantBatch(ctx, pool, tenant, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		var got string
		if err := br.QueryRow().Scan(&got); err != nil {
			return err
		}
		if got != tenant.String() {
			t.Errorf("tenant inside the batch is %q, want %s", got, tenant)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A failing second statement rolls back the first.
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, 'batch.two', '1')`, tenant)
	b.Queue(`INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, 'batch.one', '1')`, tenant) // duplicate key
	err = postgres.InTenantBatch(ctx, pool, tenant, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		_, err := br.Exec()
		return err
	})
	if !postgres.IsConstraintError(err, postgres.UniqueViolation, "") {
		t.Fatalf("got %v, want a unique violation", err)
	}
	var n int
	err = postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM tenant_settings WHERE tenant_id = $1`, tenant).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d settings stored, want 1: the failed batch must leave nothing", n)
	}

	// Afterwards no pooled connection carries the tenant.
	for i := 0; i < 20; i++ {
		var v *string
		if err := pool.QueryRow(ctx, `SELECT nullif(current_setting('app.tenant_id', true), '')`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != nil {
			t.Fatalf("a pooled connection kept app.tenant_id = %s after a batch", *v)
		}
	}
}
