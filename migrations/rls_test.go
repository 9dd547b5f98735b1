package migrations_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The RLS contract: as chartstream_app, a tenant sees only its own rows, no
// tenant means no rows, and a row for another tenant cannot be written.

func putSetting(ctx context.Context, t *testing.T, tenant chartstream.TenantID, name string) {
	t.Helper()
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, $2, '1')`, tenant, name)
		return err
	})
	if err != nil {
		t.Fatalf("insert own row: %v", err)
	}
}

func countSettings(ctx context.Context, t *testing.T, tx pgx.Tx, tenant chartstream.TenantID) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM tenant_settings WHERE tenant_id = $1`, tenant).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func TestTenantSeesOnlyItsOwnRows(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	putSetting(ctx, t, a, "rate.limit")
	putSetting(ctx, t, b, "rate.limit")

	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), a, func(tx pgx.Tx) error {
		if n := countSettings(ctx, t, tx, a); n != 1 {
			t.Errorf("tenant A sees %d of its own rows, want 1", n)
		}
		if n := countSettings(ctx, t, tx, b); n != 0 {
			t.Errorf("tenant A sees %d of tenant B's rows, want 0", n)
		}
		var tenants int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM tenants`).Scan(&tenants); err != nil {
			return err
		}
		if tenants != 1 {
			t.Errorf("tenant A sees %d tenants, want only itself", tenants)
		}
		// An UPDATE or DELETE aimed at B's rows touches nothing.
		tag, err := tx.Exec(ctx, `UPDATE tenant_settings SET value = '2' WHERE tenant_id = $1`, b)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 0 {
			t.Errorf("tenant A updated %d of tenant B's rows", tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoTenantSeesNothingAndWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a := testkit.MustTenant(t)
	putSetting(ctx, t, a, "rate.limit")
	pool := testkit.MustAppPool(t)

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tenant_settings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("with no tenant set, %d rows are visible", n)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tenants`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("with no tenant set, %d tenants are visible", n)
	}
	_, err := pool.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, 'x', '1')`, a)
	wantSQLState(t, err, postgres.InsufficientPrivilege, "insert with no tenant set")
}

func TestWriteForAnotherTenantIsRejected(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	pool := testkit.MustAppPool(t)

	err := postgres.InTenantTx(ctx, pool, a, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, name, value) VALUES ($1, 'x', '1')`, b)
		return err
	})
	wantSQLState(t, err, postgres.InsufficientPrivilege, "insert for another tenant")

	// Moving an own row to another tenant is a write for that tenant too.
	putSetting(ctx, t, a, "moved")
	err = postgres.InTenantTx(ctx, pool, a, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tenant_settings SET tenant_id = $1 WHERE tenant_id = $2`, b, a)
		return err
	})
	wantSQLState(t, err, postgres.InsufficientPrivilege, "update into another tenant")
}

func TestTenantSettingIsTransactionLocal(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a := testkit.MustTenant(t)
	// Run many tenant transactions, then check that no pooled connection
	// kept the tenant afterwards.
	pool := testkit.MustAppPool(t)
	for i := 0; i < 20; i++ {
		if err := postgres.InTenantTx(ctx, pool, a, func(pgx.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		var v *string
		if err := pool.QueryRow(ctx, `SELECT nullif(current_setting('app.tenant_id', true), '')`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != nil {
			t.Fatalf("a pooled connection kept app.tenant_id = %s outside a transaction", *v)
		}
	}
}

func TestAppRolesCannotEscapeRLS(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	for _, env := range []string{"DATABASE_URL", "DATABASE_ANALYTICS_URL"} {
		pool := testkit.MustPool(t, env)
		for _, stmt := range []string{
			`ALTER TABLE tenant_settings DISABLE ROW LEVEL SECURITY`,
			`ALTER TABLE tenant_settings NO FORCE ROW LEVEL SECURITY`,
			`ALTER POLICY tenant_isolation ON tenant_settings USING (true)`,
			`DROP POLICY tenant_isolation ON tenant_settings`,
			`CREATE POLICY sneaky ON tenant_settings USING (true)`,
			`SET ROLE chartstream_owner`,
			`SET SESSION AUTHORIZATION chartstream_owner`,
		} {
			_, err := pool.Exec(ctx, stmt)
			wantSQLState(t, err, postgres.InsufficientPrivilege, env+": "+stmt)
		}
		var super, bypass, createRole bool
		err := pool.QueryRow(ctx, `SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass, &createRole)
		if err != nil {
			t.Fatal(err)
		}
		if super || bypass || createRole {
			t.Errorf("%s: superuser=%v bypassrls=%v createrole=%v, want all false", env, super, bypass, createRole)
		}
		var owned int
		err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user`).Scan(&owned)
		if err != nil {
			t.Fatal(err)
		}
		if owned != 0 {
			t.Errorf("%s owns %d relations, want none", env, owned)
		}
	}
}

func TestEveryTenantTableHasForcedRLS(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	rows, err := testkit.MustAdminPool(t).Query(ctx, `
		SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity,
		       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		WHERE n.nspname IN ('public', 'rebuild') AND c.relkind IN ('r', 'p')`)
	if err != nil {
		t.Fatal(err)
	}
	// Every schema must hold tenant tables, or the query is wrong: the
	// rebuild schema holds the read models' twins (0004).
	tables := map[string]int{}
	for rows.Next() {
		var name string
		var enabled, forced, policy bool
		if err := rows.Scan(&name, &enabled, &forced, &policy); err != nil {
			t.Fatal(err)
		}
		tables[strings.SplitN(name, ".", 2)[0]]++
		if !enabled || !forced || !policy {
			t.Errorf("table %s: rls enabled=%v forced=%v tenant_isolation policy=%v, want all true", name, enabled, forced, policy)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{"public", "rebuild"} {
		if tables[schema] == 0 {
			t.Errorf("found no tenant tables in schema %s; the catalog query is wrong", schema)
		}
	}
}

// TestOnlyInTenantTxSetsTheTenant keeps the promise that one function sets
// app.tenant_id: any other Go code mentioning it is a second way in.
func TestOnlyInTenantTxSetsTheTenant(t *testing.T) {
	t.Parallel()
	// InTenantTx and its pipelined twin InTenantBatch.
	allowed := map[string]bool{
		filepath.Join("internal", "postgres", "postgres.go"): true,
		filepath.Join("internal", "postgres", "batch.go"):    true,
	}
	var offenders []string
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".local" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel("..", path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "app.tenant_id") && !allowed[rel] {
			offenders = append(offenders, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		t.Errorf("only internal/postgres.InTenantTx may set app.tenant_id; also found in %v", offenders)
	}
}

func wantSQLState(t *testing.T, err error, code, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Errorf("%s: got %v, want SQLSTATE %s", what, err, code)
		return
	}
	if pgErr.Code != code {
		t.Errorf("%s: got SQLSTATE %s (%s), want %s", what, pgErr.Code, pgErr.Message, code)
	}
}

// tenantQual is the tenant policy's expression as PostgreSQL prints it.
const tenantQual = `(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)`

// allowedPolicy is a policy other than a table's tenant_isolation that the
// schema is allowed to have, exactly as written here.
type allowedPolicy struct {
	table, name, roles, cmd, qual, check string
	permissive                           bool
}

// The policies are proven by their content, not their names: every
// policy on every table is either the tenant policy, exactly (its
// expressions, for every role, permissive, for every command), or one of
// the few exceptions listed here, exactly. An added permissive policy, a
// widened role list or a changed qualifier fails this test.
func TestPoliciesAreExactlyTheTenantPolicyOrAListedException(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	exceptions := map[string]allowedPolicy{
		"public.events/relay_reads_all": {roles: "{chartstream_relay}", cmd: "SELECT", qual: "true", permissive: true},
		// The anchor worker adds signed checkpoints for every tenant
		// (its grants: SELECT and INSERT only).
		"public.audit_checkpoints/relay_anchors": {roles: "{chartstream_relay}", cmd: "ALL", qual: "true", check: "true", permissive: true},
		// The anchor worker seals cursors with the tenant's cursors key,
		// and may see no other of its keys.
		"public.tenant_keys/relay_cursor_keys": {roles: "{chartstream_relay}", cmd: "ALL", qual: "(purpose = 'cursors'::text)", check: "(purpose = 'cursors'::text)"},
		"public.tenants/tenant_self": {roles: "{public}", cmd: "ALL",
			qual: `(id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)`, permissive: true},
		"public.tenants/tenants_admin": {roles: "{chartstream_owner}", cmd: "ALL", qual: "true", check: "true", permissive: true},
	}
	rows, err := testkit.MustAdminPool(t).Query(ctx, `SELECT schemaname || '.' || tablename, policyname, permissive = 'PERMISSIVE',
		roles::text, cmd, coalesce(qual, ''), coalesce(with_check, '') FROM pg_policies`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var got allowedPolicy
		if err := rows.Scan(&got.table, &got.name, &got.permissive, &got.roles, &got.cmd, &got.qual, &got.check); err != nil {
			t.Fatal(err)
		}
		seen++
		want, listed := exceptions[got.table+"/"+got.name]
		if got.name == "tenant_isolation" {
			want, listed = allowedPolicy{roles: "{public}", cmd: "ALL", qual: tenantQual, check: tenantQual, permissive: true}, true
		}
		want.table, want.name = got.table, got.name
		if !listed || got != want {
			t.Errorf("policy %s on %s is not the tenant policy nor a listed exception: %+v", got.name, got.table, got)
		}
	}
	if err := rows.Err(); err != nil || seen < 20 {
		t.Fatalf("read %d policies: %v", seen, err)
	}
}

// The app roles cannot create temporary tables (a TEMP table named events
// would shadow the real one for a function resolving names through the
// caller's search_path), and the event store's trigger and hash functions
// run with a fixed search_path.
func TestNoTempTablesAndPinnedSearchPaths(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	for _, env := range []string{"DATABASE_URL", "DATABASE_ANALYTICS_URL", "DATABASE_RELAY_URL"} {
		_, err := testkit.MustPool(t, env).Exec(ctx, `CREATE TEMP TABLE events (x int)`)
		wantSQLState(t, err, postgres.InsufficientPrivilege, env+": CREATE TEMP TABLE")
	}
	rows, err := testkit.MustAdminPool(t).Query(ctx, `SELECT p.proname, coalesce(array_to_string(p.proconfig, ','), '')
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'public' AND p.proname LIKE 'chartstream%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, config string
		if err := rows.Scan(&name, &config); err != nil {
			t.Fatal(err)
		}
		if name == "chartstream_fold" {
			continue // a SQL-standard body binds its names when created
		}
		if !strings.Contains(config, "search_path=pg_catalog") {
			t.Errorf("function %s runs with search_path from its caller (config %q)", name, config)
		}
	}
}

// The relay role (the anchor worker) reads and makes a tenant's cursors
// key, and sees none of its other keys, nor makes one.
func TestRelaySeesOnlyTheCursorsKey(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	write := func(env, purpose string) error {
		return postgres.InTenantTx(ctx, testkit.MustPool(t, env), tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO tenant_keys (tenant_id, purpose, wrapped) VALUES ($1, $2, '\x00')`, tenant, purpose)
			return err
		})
	}
	if err := write("DATABASE_URL", "claims"); err != nil {
		t.Fatal(err)
	}
	if err := write("DATABASE_RELAY_URL", "cursors"); err != nil {
		t.Fatalf("the relay makes the cursors key: %v", err)
	}
	if err := write("DATABASE_RELAY_URL", "pseudonyms"); err == nil {
		t.Error("the relay made a pseudonyms key")
	}
	var purposes []string
	err := postgres.InTenantTx(ctx, testkit.MustPool(t, "DATABASE_RELAY_URL"), tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT purpose FROM tenant_keys ORDER BY purpose`)
		if err != nil {
			return err
		}
		purposes, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil || len(purposes) != 1 || purposes[0] != "cursors" {
		t.Errorf("the relay sees the tenant's keys %v (%v), want the cursors key only", purposes, err)
	}
}
