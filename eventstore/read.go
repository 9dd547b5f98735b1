package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

const eventColumns = `position, tenant_id, stream_type, stream_id, version, event_id, event_type,
	schema_version, payload, phi, subject_id, metadata, recorded_at, txid::text::bigint AS commit_txid`

// ReadStream returns the stream's events from fromVersion (1 for all) in
// version order, PHI opened and payloads upcast. A stream that does not
// exist — or exists only in another tenant — reads as empty.
func (s *Store) ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error) {
	var events []chartstream.Event
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE tenant_id = $1 AND stream_id = $2 AND stream_type = $3 AND version >= $4 ORDER BY version`,
			tenant, stream.ID, stream.Type, fromVersion)
		if err != nil {
			return err
		}
		events, _, err = collectEvents(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	for i := range events {
		if err := s.Open(ctx, &events[i]); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// Cursor is a position in the gap-free order ReadAll reads in: commit
// order approximated by (writing transaction id, position). A zero Cursor
// is the beginning. Store it as a checkpoint and pass it back.
type Cursor struct {
	TxID     int64 `json:"txid"`
	Position int64 `json:"position"`
}

// CursorOf returns the cursor just after e.
func CursorOf(e chartstream.Event) Cursor { return Cursor{TxID: e.TxID, Position: e.Position} }

// After reports whether a is later than b in commit order.
func (a Cursor) After(b Cursor) bool {
	return a.TxID > b.TxID || (a.TxID == b.TxID && a.Position > b.Position)
}

// Filter selects whose events ReadAll returns.
type Filter struct {
	// Tenant limits the read to one tenant. The zero value reads every
	// tenant, which only a role with a cross-tenant policy (the relay) can
	// see; for the app role it reads nothing.
	Tenant chartstream.TenantID
}

// tenantParam is the filter's tenant as a nullable SQL parameter.
func (f Filter) tenantParam() pgtype.UUID {
	return pgtype.UUID{Bytes: f.Tenant, Valid: !f.Tenant.IsZero()}
}

// querier is what reads need from a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inScope runs fn in the filter's tenant transaction, or on the pool for
// the zero filter (whatever the pool's role may see across tenants).
func (s *Store) inScope(ctx context.Context, filter Filter, fn func(querier) error) error {
	if filter.Tenant.IsZero() {
		return fn(s.pool)
	}
	return postgres.InTenantTx(ctx, s.pool, filter.Tenant, func(tx pgx.Tx) error { return fn(tx) })
}

// readAllSQL is the gap-free read. ORDER BY names the table's columns: the
// select list's txid::text::bigint would otherwise shadow txid, and sorting
// by that expression cannot use the (txid, position) indexes. Rows become readable only once every
// transaction that could still commit before them has finished: a row is
// returned only if its writing transaction is older than the oldest
// transaction still running (the snapshot's xmin). Anything committed later
// has a larger transaction id than any row already returned, so a reader
// advancing its (txid, position) cursor never skips or repeats an event.
const readAllSQL = `SELECT ` + eventColumns + ` FROM events
	WHERE (txid, position) > ($1::text::xid8, $2)
	  AND txid < pg_snapshot_xmin(pg_current_snapshot())
	  AND ($3::uuid IS NULL OR tenant_id = $3)
	ORDER BY events.txid, events.position
	LIMIT $4`

// ReadAll returns up to limit events after the cursor, in gap-free order,
// with PHI still sealed (see Open), and the cursor to continue from.
func (s *Store) ReadAll(ctx context.Context, filter Filter, after Cursor, limit int) ([]chartstream.Event, Cursor, error) {
	if limit <= 0 {
		limit = 1000
	}
	var events []chartstream.Event
	next := after
	// Events written since the last ANALYZE are missing from the
	// statistics, and the planner, expecting a handful of rows after the
	// cursor, would fetch all of them and sort: 100 ms a page rather than
	// 1 ms for a tenant's recent events, and worse for a relay catching up
	// on a backlog. The rows must come in the order of the commit-order
	// indexes. The setting and the read are one pipeline, one implicit
	// transaction: a single round trip.
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('enable_sort', 'off', true)`)
	b.Queue(readAllSQL, fmt.Sprint(after.TxID), after.Position, filter.tenantParam(), limit)
	read := func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var last *Cursor
		events, last, err = collectEvents(rows)
		if last != nil {
			next = *last
		}
		return err
	}
	var err error
	if filter.Tenant.IsZero() {
		br := s.pool.SendBatch(ctx, b)
		err = read(br)
		if closeErr := br.Close(); err == nil {
			err = closeErr
		}
	} else {
		err = postgres.InTenantBatch(ctx, s.pool, filter.Tenant, b, read)
	}
	if err != nil {
		return nil, after, fmt.Errorf("read all: %w", err)
	}
	return events, next, nil
}

// collectEvents scans event rows and returns the cursor of the last one.
func collectEvents(rows pgx.Rows) ([]chartstream.Event, *Cursor, error) {
	defer rows.Close()
	var events []chartstream.Event
	var last *Cursor
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, nil, err
		}
		c := CursorOf(e)
		last = &c
		events = append(events, e)
	}
	return events, last, rows.Err()
}

// scanEvent scans one row of eventColumns, PHI still sealed.
func scanEvent(rows pgx.Rows) (chartstream.Event, error) {
	var e chartstream.Event
	var payload, meta []byte
	var sealed []byte
	// UUIDs scan as pgtype.UUID: binary, where the sql.Scanner path of
	// TenantID and uuid.UUID parses text (12% of a ReadAll's CPU).
	var tenant, stream, id, subject pgtype.UUID
	if err := rows.Scan(&e.Position, &tenant, &e.Stream.Type, &stream, &e.Version, &id, &e.Type,
		&e.SchemaVersion, &payload, &sealed, &subject, &meta, &e.RecordedAt, &e.TxID); err != nil {
		return e, err
	}
	e.Tenant, e.Stream.ID, e.ID = tenant.Bytes, stream.Bytes, id.Bytes
	e.Payload = payload
	if err := json.Unmarshal(meta, &e.Metadata); err != nil {
		return e, fmt.Errorf("event %s metadata: %w", e.ID, err)
	}
	if sealed != nil {
		e.Sealed = &chartstream.SealedPHI{Subject: subject.Bytes, Ciphertext: sealed}
	}
	return e, nil
}

// HorizonLag says how far the gap-free read horizon lags behind what has
// committed: events already committed but not yet readable because an
// older transaction is still open, and how old the oldest of them is.
type HorizonLag struct {
	Events int64         `json:"events"`
	Age    time.Duration `json:"age"`
}

// Horizon measures the horizon lag for filter's scope.
func (s *Store) Horizon(ctx context.Context, filter Filter) (HorizonLag, error) {
	const sql = `SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8 FROM events
		WHERE txid >= pg_snapshot_xmin(pg_current_snapshot()) AND ($1::uuid IS NULL OR tenant_id = $1)`
	var lag HorizonLag
	var secs float64
	err := s.inScope(ctx, filter, func(q querier) error {
		return q.QueryRow(ctx, sql, filter.tenantParam()).Scan(&lag.Events, &secs)
	})
	if err != nil {
		return HorizonLag{}, fmt.Errorf("horizon: %w", err)
	}
	lag.Age = time.Duration(secs * float64(time.Second))
	return lag, nil
}

// Head returns the cursor of the newest event readable in filter's scope
// (the zero cursor for none): a new reader that starts there sees only
// what commits afterwards.
func (s *Store) Head(ctx context.Context, filter Filter) (Cursor, error) {
	const sql = `SELECT txid::text::bigint AS commit_txid, position FROM events
		WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) AND ($1::uuid IS NULL OR tenant_id = $1)
		ORDER BY events.txid DESC, events.position DESC LIMIT 1`
	var c Cursor
	err := s.inScope(ctx, filter, func(q querier) error {
		err := q.QueryRow(ctx, sql, filter.tenantParam()).Scan(&c.TxID, &c.Position)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return Cursor{}, fmt.Errorf("head: %w", err)
	}
	return c, nil
}

// Previous returns, for each tenant in before, the cursor of the tenant's
// last event before the given cursor (the zero cursor when there is none),
// in one round trip. The given cursors must be readable (ReadAll returned
// them), so every event before them is final. It reads across tenants:
// only a role with a cross-tenant policy (the relay) sees them.
func (s *Store) Previous(ctx context.Context, before map[chartstream.TenantID]Cursor) (map[chartstream.TenantID]Cursor, error) {
	tenants := make([]pgtype.UUID, 0, len(before))
	txids, positions := make([]int64, 0, len(before)), make([]int64, 0, len(before))
	for t, c := range before {
		tenants = append(tenants, pgtype.UUID{Bytes: t, Valid: true})
		txids, positions = append(txids, c.TxID), append(positions, c.Position)
	}
	rows, err := s.pool.Query(ctx, `SELECT f.tenant, p.txid, p.position
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS f(tenant, txid, position)
		CROSS JOIN LATERAL (
			SELECT e.txid::text::bigint AS txid, e.position FROM events e
			WHERE e.tenant_id = f.tenant AND (e.txid, e.position) < (f.txid::text::xid8, f.position)
			ORDER BY e.txid DESC, e.position DESC LIMIT 1) AS p`, tenants, txids, positions)
	if err != nil {
		return nil, fmt.Errorf("previous events: %w", err)
	}
	out := make(map[chartstream.TenantID]Cursor, len(before))
	var tenant pgtype.UUID
	var c Cursor
	_, err = pgx.ForEachRow(rows, []any{&tenant, &c.TxID, &c.Position}, func() error {
		out[tenant.Bytes] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("previous events: %w", err)
	}
	return out, nil
}

// TenantHeads returns each tenant's newest readable event: the cursor a
// consumer that has applied everything of the tenant is at. It reads across
// tenants (the relay role), one index probe per tenant.
func (s *Store) TenantHeads(ctx context.Context) (map[chartstream.TenantID]Cursor, error) {
	// A skip scan: the next tenant id after the last, from the
	// (tenant_id, txid, position) index, then that tenant's newest event.
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE t(id) AS (
			(SELECT tenant_id FROM events ORDER BY tenant_id LIMIT 1)
			UNION ALL
			SELECT (SELECT e.tenant_id FROM events e WHERE e.tenant_id > t.id ORDER BY e.tenant_id LIMIT 1)
			FROM t WHERE t.id IS NOT NULL)
		SELECT t.id, h.txid, h.position FROM t CROSS JOIN LATERAL (
			SELECT e.txid::text::bigint AS txid, e.position FROM events e
			WHERE e.tenant_id = t.id AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY e.txid DESC, e.position DESC LIMIT 1) AS h
		WHERE t.id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("tenant heads: %w", err)
	}
	out := make(map[chartstream.TenantID]Cursor)
	var tenant pgtype.UUID
	var c Cursor
	_, err = pgx.ForEachRow(rows, []any{&tenant, &c.TxID, &c.Position}, func() error {
		out[tenant.Bytes] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tenant heads: %w", err)
	}
	return out, nil
}

// streamPage is how many events Events reads per round trip.
const streamPage = 500

// Events yields the stream's events from fromVersion on, in version
// order, PHI opened and payloads upcast, reading a page at a time: a
// stream of any length is walked in constant memory. It stops at the first
// error, which it yields.
func (s *Store) Events(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) iter.Seq2[chartstream.Event, error] {
	return func(yield func(chartstream.Event, error) bool) {
		for from := max(fromVersion, 1); ; {
			var page []chartstream.Event
			err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM events
					WHERE tenant_id = $1 AND stream_id = $2 AND stream_type = $3 AND version >= $4 ORDER BY version LIMIT $5`,
					tenant, stream.ID, stream.Type, from, streamPage)
				if err != nil {
					return err
				}
				page, _, err = collectEvents(rows)
				return err
			})
			if err != nil {
				yield(chartstream.Event{}, fmt.Errorf("read stream: %w", err))
				return
			}
			for i := range page {
				if err := s.Open(ctx, &page[i]); err != nil {
					yield(chartstream.Event{}, err)
					return
				}
				if !yield(page[i], nil) {
					return
				}
			}
			if len(page) < streamPage {
				return
			}
			from = page[len(page)-1].Version + 1
		}
	}
}
