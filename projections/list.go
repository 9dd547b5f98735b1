package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Limits on the size of a page.
const (
	// DefaultLimit is the page size when a query's Limit is zero.
	DefaultLimit = 50
	// MaxLimit caps a page; larger limits are lowered to it.
	MaxLimit = 200
)

// Page is one page of a listing. Next is empty on the last page; otherwise
// passing it as the next query's Cursor continues after this page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next_cursor,omitempty"`
}

// Keyset describes a listing of one table ordered by a sort key, then by the
// rows' uuid id, both ascending or both descending. Its names are SQL from
// the code, never input.
type Keyset struct {
	// Table is the table, unqualified (see the package comment).
	Table string
	// Columns is the select list; its names match T's fields (see
	// pgx.RowToStructByName).
	Columns string
	// SortKey and ID are the ordering columns; (tenant_id, ID) is the key.
	SortKey, ID string
	// Descending lists newest or largest first.
	Descending bool
}

// Filter collects the conditions of a listing's WHERE clause and their
// arguments. The zero Filter matches every row of the tenant. $1 is the
// tenant, so arguments are numbered from $2.
type Filter struct {
	conds []string
	args  []any
}

// Arg adds a query argument and returns its placeholder ($n).
func (f *Filter) Arg(v any) string {
	f.args = append(f.args, v)
	return fmt.Sprintf("$%d", len(f.args)+1)
}

// Where adds a condition; its arguments come from Arg.
func (f *Filter) Where(cond string) { f.conds = append(f.conds, cond) }

// List returns the page of k's rows in tenant matching f that follows
// cursor (the first page for ""), of at most limit rows (see Limit). id
// returns a row's id, for the next cursor. Errors: EINVALID for a negative
// limit or a cursor that is malformed or names no row of the table in the
// tenant; others wrapped.
func List[T any](ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, k Keyset, f Filter, cursor string, limit int, id func(T) uuid.UUID) (Page[T], error) {
	var page Page[T]
	err := postgres.InReadModelTx(ctx, pool, tenant, postgres.LiveReadModels, func(tx pgx.Tx) (err error) {
		page, err = ListTx(ctx, tx, tenant, k, f, cursor, limit, id)
		return err
	})
	return page, err
}

// ListTx is List in the caller's tenant transaction, for a query that
// prepares the transaction first.
//
// A cursor names only the id of the previous page's last row, and List
// reads that row's sort key back: sort keys such as names and dates are PHI
// and must not travel in URLs (nor so in access logs).
func ListTx[T any](ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, k Keyset, f Filter, cursor string, limit int, id func(T) uuid.UUID) (Page[T], error) {
	limit, err := Limit(limit)
	if err != nil {
		return Page[T]{}, err
	}
	after, paging, err := decodeCursor(cursor)
	if err != nil {
		return Page[T]{}, err
	}
	// Clipped, so that appending cannot write into the caller's arrays.
	f = Filter{conds: append([]string{"tenant_id = $1"}, slices.Clip(f.conds)...), args: slices.Clip(f.args)}
	order, cmp := "", ">"
	if k.Descending {
		order, cmp = " DESC", "<"
	}
	if paging {
		var key any
		err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE tenant_id = $1 AND %s = $2`, k.SortKey, k.Table, k.ID),
			tenant, after).Scan(&key)
		if errors.Is(err, pgx.ErrNoRows) {
			return Page[T]{}, errInvalidCursor()
		}
		if err != nil {
			return Page[T]{}, fmt.Errorf("read cursor of %s: %w", k.Table, err)
		}
		f.Where(fmt.Sprintf("(%s, %s) %s (%s, %s)", k.SortKey, k.ID, cmp, f.Arg(key), f.Arg(after)))
	}
	rows, _ := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY %s%s, %s%s LIMIT %s`,
		k.Columns, k.Table, strings.Join(f.conds, " AND "), k.SortKey, order, k.ID, order, f.Arg(limit+1)), append([]any{tenant}, f.args...)...)
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if err != nil {
		return Page[T]{}, fmt.Errorf("list %s: %w", k.Table, err)
	}
	return paginate(items, limit, id), nil
}

// Limit returns the page size for a requested limit: DefaultLimit for zero,
// at most MaxLimit. A negative limit is EINVALID.
func Limit(requested int) (int, error) {
	switch {
	case requested < 0:
		return 0, chartstream.Invalid(chartstream.FieldError{Field: "limit", Reason: "must not be negative"})
	case requested == 0:
		return DefaultLimit, nil
	}
	return min(requested, MaxLimit), nil
}

// cursorVersion prefixes every cursor, so that the format can change
// without misreading old cursors.
const cursorVersion = 1

// encodeCursor returns the opaque cursor of a page whose last row has id.
func encodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, id[:]...))
}

// decodeCursor returns the row id in a cursor made by encodeCursor, and
// ok=false for the empty cursor (the first page). Anything else is EINVALID.
func decodeCursor(cursor string) (id uuid.UUID, ok bool, err error) {
	if cursor == "" {
		return uuid.Nil, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != 1+len(id) || b[0] != cursorVersion {
		return uuid.Nil, false, errInvalidCursor()
	}
	copy(id[:], b[1:])
	return id, true, nil
}

// errInvalidCursor is the error for a cursor that is malformed or names no
// row of the listing in the tenant (for example another tenant's cursor).
func errInvalidCursor() error {
	return chartstream.Invalid(chartstream.FieldError{Field: "cursor", Reason: "is not a cursor of this listing"})
}

// paginate trims rows fetched with limit+1 to limit and returns the page,
// with a cursor when there is more.
func paginate[T any](rows []T, limit int, id func(T) uuid.UUID) Page[T] {
	if rows == nil {
		rows = []T{}
	}
	if len(rows) <= limit {
		return Page[T]{Items: rows}
	}
	rows = rows[:limit]
	return Page[T]{Items: rows, Next: encodeCursor(id(rows[limit-1]))}
}
