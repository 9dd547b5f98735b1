// Package migrations holds the database schema as plain SQL files, embedded in
// the binary and applied in order by Up (chartstream migrate).
//
// Files are named NNNN_name.sql. Each runs in its own transaction as the
// owner role; "---- create above / drop below ----" separates the rollback.
// Every table with a tenant_id column must call
// chartstream_enable_tenant_rls (see 0001) — a test checks it.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// versionTable records which migrations have run.
const versionTable = "public.schema_version"

// Up applies every migration not yet applied, holding tern's advisory lock so
// concurrent callers (several pods starting at once) apply each exactly once.
// The connection must be the owner's (DATABASE_ADMIN_URL).
func Up(ctx context.Context, conn *pgx.Conn) (applied int, err error) {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, fmt.Errorf("migrations: load: %w", err)
	}
	m.OnStart = func(int32, string, string, string) { applied++ }
	if err := m.Migrate(ctx); err != nil {
		return applied, fmt.Errorf("migrations: %w", err)
	}
	return applied, nil
}

// Version returns the number of the last applied migration and of the last
// embedded one.
func Version(ctx context.Context, conn *pgx.Conn) (current, latest int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("migrations: load: %w", err)
	}
	current, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: %w", err)
	}
	return current, int32(len(m.Migrations)), nil
}
