package accesslog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// ListParams select access entries; all given must match.
type ListParams struct {
	// Patient: entries naming this patient (reads of the whole tenant
	// included: they held its PHI too).
	Patient uuid.UUID
	// Actor: entries of this token subject.
	Actor string
	// Since: entries at or after this time.
	Since time.Time
	// After continues after this sequence number (a page's Next).
	After int64
	// Limit is the page size, 1 to 1,000 (default 100).
	Limit int
}

// Page is one page of entries, oldest first; Next continues after it, 0
// on the last page.
type Page struct {
	Items []Entry `json:"items"`
	Next  int64   `json:"next,omitempty"`
}

// List returns a page of the tenant's entries, in sequence order.
func List(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, p ListParams) (Page, error) {
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	args := []any{tenant, p.After}
	conds := []string{"tenant_id = $1", "seq > $2"}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if p.Patient != uuid.Nil {
		conds = append(conds, "(patients @> ARRAY["+arg(p.Patient)+"::uuid] OR all_patients)")
	}
	if p.Actor != "" {
		conds = append(conds, "actor = "+arg(p.Actor))
	}
	if !p.Since.IsZero() {
		conds = append(conds, "accessed_at >= "+arg(p.Since))
	}
	sql := `SELECT seq, accessed_at, actor, roles, patients, all_patients, route, purpose, request_id, hash
		FROM phi_access_log WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY seq LIMIT ` + arg(limit+1)
	page := Page{Items: []Entry{}}
	err := postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		var e Entry
		_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.AccessedAt, &e.Actor, &e.Roles, &e.Patients, &e.AllPatients, &e.Route, &e.Purpose, &e.RequestID, &e.Hash}, func() error {
			e.Tenant = tenant
			page.Items = append(page.Items, e)
			e = Entry{}
			return nil
		})
		return err
	})
	if err != nil {
		return page, fmt.Errorf("access log: list: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Next = page.Items[limit-1].Seq
	}
	return page, nil
}
