// Package tenants administers the hospitals and clinics that share a
// chartstream deployment, and lets the API look up its caller's tenant.
package tenants

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Tenant is one hospital or clinic.
type Tenant struct {
	ID        chartstream.TenantID     `json:"id"`
	Slug      string                   `json:"slug"`
	Name      string                   `json:"name"`
	Tier      chartstream.Tier         `json:"tier"`
	Status    chartstream.TenantStatus `json:"status"`
	CreatedAt time.Time                `json:"created_at"`
}

// slugPattern matches the tenants_slug_format constraint of migration 0001.
var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// NewTenant is the input to Create.
type NewTenant struct {
	Slug string
	Name string
	Tier chartstream.Tier
}

// Validate returns an EINVALID error naming every bad field.
func (n NewTenant) Validate() error {
	var fields []chartstream.FieldError
	if !slugPattern.MatchString(n.Slug) {
		fields = append(fields, chartstream.FieldError{Field: "slug", Reason: "must be 2-63 lowercase letters, digits or dashes, starting with a letter or digit"})
	}
	if name := strings.TrimSpace(n.Name); name == "" || len(name) > 200 {
		fields = append(fields, chartstream.FieldError{Field: "name", Reason: "must be 1-200 characters"})
	}
	if !n.Tier.Valid() {
		fields = append(fields, chartstream.FieldError{Field: "tier", Reason: "must be standard, premium or enterprise"})
	}
	if len(fields) > 0 {
		return chartstream.Invalid(fields...)
	}
	return nil
}

// Admin manages tenants. It connects as the owner role (DATABASE_ADMIN_URL),
// the only role with a policy on every tenant's row.
type Admin struct {
	pool *pgxpool.Pool
}

// NewAdmin returns an Admin on the owner's pool.
func NewAdmin(pool *pgxpool.Pool) *Admin {
	if pool == nil {
		panic("tenants: NewAdmin with nil pool")
	}
	return &Admin{pool: pool}
}

const tenantColumns = "id, slug, name, tier, status, created_at"

// Create adds an active tenant. It returns EINVALID for a bad slug, name or
// tier and ECONFLICT when the slug is taken; nothing is written on error.
func (a *Admin) Create(ctx context.Context, n NewTenant) (Tenant, error) {
	n.Name = strings.TrimSpace(n.Name)
	if err := n.Validate(); err != nil {
		return Tenant{}, err
	}
	row := a.pool.QueryRow(ctx,
		`INSERT INTO tenants (id, slug, name, tier) VALUES ($1, $2, $3, $4) RETURNING `+tenantColumns,
		chartstream.NewTenantID(), n.Slug, n.Name, string(n.Tier))
	t, err := scanTenant(row)
	if postgres.IsConstraintError(err, postgres.UniqueViolation, "tenants_slug_key") {
		return Tenant{}, chartstream.Errorf(chartstream.ECONFLICT, "tenant slug %q is taken", n.Slug)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return t, nil
}

// BySlug returns the tenant with the given slug, or ENOTFOUND.
func (a *Admin) BySlug(ctx context.Context, slug string) (Tenant, error) {
	t, err := scanTenant(a.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE slug = $1`, slug))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, chartstream.Errorf(chartstream.ENOTFOUND, "no tenant with slug %q", slug)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant by slug: %w", err)
	}
	return t, nil
}

// List returns every tenant, oldest first.
func (a *Admin) List(ctx context.Context) ([]Tenant, error) {
	rows, err := a.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY created_at, slug`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return list, nil
}

// SetStatus suspends or reactivates the tenant with the given id or slug.
// It returns ENOTFOUND when there is none.
func (a *Admin) SetStatus(ctx context.Context, idOrSlug string, status chartstream.TenantStatus) (Tenant, error) {
	if status != chartstream.TenantActive && status != chartstream.TenantSuspended {
		return Tenant{}, chartstream.Errorf(chartstream.EINVALID, "unknown tenant status")
	}
	where, arg := "slug = $2", any(idOrSlug)
	if id, err := chartstream.ParseTenantID(idOrSlug); err == nil {
		where, arg = "id = $2", id
	}
	t, err := scanTenant(a.pool.QueryRow(ctx,
		`UPDATE tenants SET status = $1 WHERE `+where+` RETURNING `+tenantColumns, string(status), arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, chartstream.Errorf(chartstream.ENOTFOUND, "no such tenant")
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("set tenant status: %w", err)
	}
	return t, nil
}

// Directory lets the app role look up a tenant: its own row only.
type Directory struct {
	pool *pgxpool.Pool
}

// NewDirectory returns a Directory on the app role's pool.
func NewDirectory(pool *pgxpool.Pool) *Directory {
	if pool == nil {
		panic("tenants: NewDirectory with nil pool")
	}
	return &Directory{pool: pool}
}

// Lookup reads a tenant's own row inside that tenant's transaction: RLS
// lets a tenant see itself and nobody else. ENOTFOUND when it does not exist.
func (d *Directory) Lookup(ctx context.Context, id chartstream.TenantID) (Tenant, error) {
	var t Tenant
	err := postgres.InTenantTx(ctx, d.pool, id, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, chartstream.Errorf(chartstream.ENOTFOUND, "no such tenant")
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("lookup tenant: %w", err)
	}
	return t, nil
}

func scanTenant(row pgx.Row) (Tenant, error) {
	var t Tenant
	var tier, status string
	err := row.Scan(&t.ID, &t.Slug, &t.Name, &tier, &status, &t.CreatedAt)
	t.Tier, t.Status = chartstream.Tier(tier), chartstream.TenantStatus(status)
	return t, err
}
