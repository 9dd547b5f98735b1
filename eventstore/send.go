package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore/internal/group"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Sending a group of writes. Concurrent writes of a tenant share a
// transaction (internal/group): every transaction costs the database a
// snapshot, the tenant setting, a commit record and a WAL flush, and costs
// both sides a round trip; on a machine where the flush is fast, the rest
// dominates, and a single-event append, which also chains its hash and
// maintains the event store's indexes, reached about a third of the rate of
// a bare INSERT. A group of single-event appends at known versions (the
// commonest kind) is one multi-row INSERT; any other group is a statement
// per append.
//
// Each transaction first locks the streams its writes touch (migration
// 0006). A failed multi-row INSERT is sent again as a statement per append,
// to learn whose it was; a deadlock or serialization failure sends the group
// again.
//
// When the connection fails after the group was sent, the commit may or may
// not have happened. The group's event ids were fixed before it was sent,
// so the store looks them up once the database answers: found, the group
// committed; not found, it is sent again, and the same ids make a second
// commit impossible (a first one still in flight makes the second wait on
// its unique index entries, then fail). Only when the database stays away
// for Config.ResolveTimeout is the outcome reported as unknown (ECOMMITUNKNOWN).

// insertOneSQL inserts one event at a known version: the (tenant, stream,
// version) key refuses a stream already past it, the chain trigger refuses a
// gap, and an unknown tenant inserts nothing.
const insertOneSQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
RETURNING stream_id, version, position`

// insertRowsSQL inserts events at known versions, of one stream or of many
// (a group of single-event appends), with insertOneSQL's checks.
const insertRowsSQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, e.stream_type, e.stream_id, e.version, e.event_id, e.event_type, e.schema_version, e.payload, e.phi, e.subject_id, e.metadata
FROM unnest($2::text[], $3::uuid[], $4::bigint[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[], $9::bytea[], $10::uuid[], $11::jsonb[])
	WITH ORDINALITY AS e(stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata, ord)
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
ORDER BY e.ord
RETURNING stream_id, version, position`

// insertCheckedSQL inserts one stream's events after checking the stream
// (chartstream_check_stream: expected version, events since): their
// versions follow the stream's head.
const insertCheckedSQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, e.stream_type, e.stream_id, h.head + e.ord, e.event_id, e.event_type, e.schema_version, e.payload, e.phi, e.subject_id, e.metadata
FROM (SELECT chartstream_check_stream($1, $12, $13, $14, $15) AS head) AS h,
	unnest($2::text[], $3::uuid[], $4::bigint[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[], $9::bytea[], $10::uuid[], $11::jsonb[])
	WITH ORDINALITY AS e(stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata, ord)
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
ORDER BY e.ord
RETURNING stream_id, version, position`

// checkSQL checks a stream a write appends nothing to.
const checkSQL = `SELECT chartstream_check_stream($1, $2, $3, $4, $5)`

// claimSQL reserves an append's unique values.
const claimSQL = `INSERT INTO unique_claims (tenant_id, scope, value_hash, stream_id)
SELECT $1, c.scope, c.value_hash, $2 FROM unnest($3::text[], $4::bytea[]) AS c(scope, value_hash)`

// lockSQL takes a transaction's stream locks.
const lockSQL = `SELECT chartstream_lock_streams($1, $2)`

// simple reports whether a write is one event at a known version claiming
// nothing: a group of those is one multi-row INSERT.
func (w *write) simple() bool {
	if len(w.appends) != 1 {
		return false
	}
	a := w.appends[0]
	return len(a.rows) == 1 && a.append.Expected != chartstream.AnyVersion && len(a.append.Unless) == 0 && len(a.claimScopes) == 0
}

// checked reports whether an append needs chartstream_check_stream.
func (p prepared) checked() bool {
	return p.append.Expected == chartstream.AnyVersion || len(p.append.Unless) > 0
}

// send is the group's SendFn: it writes a group of one tenant's writes in
// one transaction and learns each one's outcome.
func (s *Store) send(ctx context.Context, tenant chartstream.TenantID, writes []*write) (v group.Verdict[[]chartstream.AppendResult]) {
	start := time.Now()
	defer func() {
		s.cfg.Observer.GroupSent(GroupSentParams{Writes: len(writes), Duration: time.Since(start), Err: v.Err})
	}()
	combined := len(writes) > 1
	for _, w := range writes {
		combined = combined && w.simple()
	}
	var results [][]chartstream.AppendResult
	failed, err := -1, error(nil)
	if combined {
		results, err = s.sendCombined(ctx, tenant, writes)
		if err != nil && ownFailure(err) {
			// One statement cannot say whose row failed; one per write can.
			combined = false
		}
	}
	if !combined {
		results, failed, err = s.sendEach(ctx, tenant, writes)
	}
	switch {
	case err == nil:
		v = outcomes(writes, results)
	case definite(err):
		v = verdictOf(err, failed)
	default:
		v = s.resolve(ctx, tenant, writes)
	}
	if v.Err == nil {
		s.wake(ctx)
	}
	return v
}

// verdictOf is the verdict on a send that certainly committed nothing:
// failed is the index of the write whose statement failed, or -1.
func verdictOf(err error, failed int) group.Verdict[[]chartstream.AppendResult] {
	v := group.Verdict[[]chartstream.AppendResult]{Err: appendError(err), Failed: -1}
	switch {
	case failed >= 0 && ownFailure(err):
		v.Failed = failed
	case transient(err):
		v.Retry = true
	}
	return v
}

// definite reports whether a failed send certainly committed nothing: it
// failed before a byte was sent, or the server refused a statement (and so
// rolled the implicit transaction back). Anything else failed after the
// commit may have happened.
func definite(err error) bool {
	var pgErr *pgconn.PgError
	return pgconn.SafeToRetry(err) || errors.As(err, &pgErr)
}

// queueLocks queues the statement that takes a group's stream locks.
func queueLocks(b *pgx.Batch, writes []*write) {
	var exclusive, shared []int64
	for _, w := range writes {
		exclusive = append(exclusive, w.exclusive...)
		shared = append(shared, w.shared...)
	}
	b.Queue(lockSQL, exclusive, shared)
}

// sendEach runs the group's writes as statements of one transaction. On
// error, failed is the index of the write whose statement failed, or -1.
func (s *Store) sendEach(ctx context.Context, tenant chartstream.TenantID, writes []*write) (results [][]chartstream.AppendResult, failed int, err error) {
	b := &pgx.Batch{}
	queueLocks(b, writes)
	for _, w := range writes {
		for _, p := range w.appends {
			a := p.append
			switch {
			case len(p.rows) == 0:
				b.Queue(checkSQL, tenant, a.Stream.ID, a.Expected, a.Since, a.Unless)
			case p.checked():
				b.Queue(insertCheckedSQL, append(append([]any{tenant}, p.rows.columns()...), a.Stream.ID, a.Expected, a.Since, a.Unless)...)
			case len(p.rows) == 1:
				b.Queue(insertOneSQL, p.rows[0].args(tenant)...)
			default:
				b.Queue(insertRowsSQL, append([]any{tenant}, p.rows.columns()...)...)
			}
			if len(p.claimScopes) > 0 {
				b.Queue(claimSQL, tenant, a.Stream.ID, p.claimScopes, p.claimHashes)
			}
		}
	}
	results = make([][]chartstream.AppendResult, len(writes))
	failed = -1
	err = postgres.InTenantBatch(ctx, s.pool, tenant, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		for i, w := range writes {
			results[i] = make([]chartstream.AppendResult, len(w.appends))
			for j, p := range w.appends {
				if err := readAppend(br, p, &results[i][j]); err != nil {
					failed = i
					return err
				}
			}
		}
		return nil
	})
	return results, failed, err
}

// readAppend reads one append's statements' results.
func readAppend(br pgx.BatchResults, p prepared, res *chartstream.AppendResult) error {
	if len(p.rows) == 0 {
		_, err := br.Exec()
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	for rows.Next() {
		var stream uuid.UUID
		var version, position int64
		if err := rows.Scan(&stream, &version, &position); err != nil {
			rows.Close()
			return err
		}
		res.Positions = append(res.Positions, position)
		res.Version = version
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(p.claimScopes) > 0 {
		_, err = br.Exec()
	}
	return err
}

// outcomes are the writes' results once their group committed. A write
// that inserted nothing names a tenant that does not exist (events has no
// foreign key to tenants, see migration 0002).
func outcomes(writes []*write, results [][]chartstream.AppendResult) group.Verdict[[]chartstream.AppendResult] {
	for i, w := range writes {
		for j, p := range w.appends {
			if len(p.rows) > 0 && len(results[i][j].Positions) == 0 {
				return group.Verdict[[]chartstream.AppendResult]{Err: chartstream.Errorf(chartstream.ENOTFOUND, "unknown tenant"), Failed: -1}
			}
		}
	}
	return group.Verdict[[]chartstream.AppendResult]{Results: results, Failed: -1}
}

// sendCombined runs a group of simple writes as one statement.
func (s *Store) sendCombined(ctx context.Context, tenant chartstream.TenantID, writes []*write) ([][]chartstream.AppendResult, error) {
	all := make(rows, len(writes))
	type key struct {
		stream  uuid.UUID
		version int64
	}
	index := make(map[key]int, len(writes))
	for i, w := range writes {
		all[i] = w.appends[0].rows[0]
		index[key{all[i].streamID, all[i].version}] = i
	}
	results := make([][]chartstream.AppendResult, len(writes))
	b := &pgx.Batch{}
	queueLocks(b, writes)
	b.Queue(insertRowsSQL, append([]any{tenant}, all.columns()...)...)
	err := postgres.InTenantBatch(ctx, s.pool, tenant, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			var position int64
			if err := rows.Scan(&k.stream, &k.version, &position); err != nil {
				return err
			}
			if i, ok := index[k]; ok {
				results[i] = []chartstream.AppendResult{{Version: k.version, Positions: []int64{position}}}
			}
		}
		return rows.Err()
	})
	for i := range results {
		if results[i] == nil {
			results[i] = make([]chartstream.AppendResult, 1) // nothing inserted: outcomes says so
		}
	}
	return results, err
}

// resolve learns the outcome of a group whose connection failed after it
// was sent (see the top of this file).
func (s *Store) resolve(ctx context.Context, tenant chartstream.TenantID, writes []*write) group.Verdict[[]chartstream.AppendResult] {
	deadline := time.Now().Add(s.cfg.ResolveTimeout)
	unknown := group.Verdict[[]chartstream.AppendResult]{Failed: -1,
		Err: chartstream.Errorf(chartstream.ECOMMITUNKNOWN, "the database went away while the change was being committed; retry with the same Idempotency-Key to learn its outcome")}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		results, err := s.recorded(ctx, tenant, writes)
		if err == nil && results != nil {
			return group.Verdict[[]chartstream.AppendResult]{Results: results, Failed: -1}
		}
		if err == nil {
			results, failed, err := s.sendEach(ctx, tenant, writes)
			switch {
			case err == nil:
				return outcomes(writes, results)
			case definite(err):
				v := verdictOf(err, failed)
				if chartstream.ErrorCode(v.Err) == chartstream.ECONFLICT {
					// The first send may have committed meanwhile.
					if results, err := s.recorded(ctx, tenant, writes); err == nil && results != nil {
						return group.Verdict[[]chartstream.AppendResult]{Results: results, Failed: -1}
					}
				}
				return v
			}
		}
		if time.Now().Add(backoff).After(deadline) || ctx.Err() != nil {
			return unknown
		}
		select {
		case <-ctx.Done():
			return unknown
		case <-time.After(backoff):
		}
	}
}

// recorded looks up a group's events by id: their results when the group
// committed, nil when it did not.
func (s *Store) recorded(ctx context.Context, tenant chartstream.TenantID, writes []*write) ([][]chartstream.AppendResult, error) {
	var ids []uuid.UUID
	for _, w := range writes {
		for _, p := range w.appends {
			for _, r := range p.rows {
				ids = append(ids, r.eventID)
			}
		}
	}
	found, err := s.Recorded(ctx, tenant, ids)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	if len(found) != len(ids) {
		return nil, fmt.Errorf("resolve: %d of a transaction's %d events recorded", len(found), len(ids))
	}
	at := make(map[uuid.UUID]chartstream.RecordedEvent, len(found))
	for _, f := range found {
		at[f.ID] = f
	}
	results := make([][]chartstream.AppendResult, len(writes))
	for i, w := range writes {
		results[i] = make([]chartstream.AppendResult, len(w.appends))
		for j, p := range w.appends {
			for _, r := range p.rows {
				f := at[r.eventID]
				results[i][j].Positions = append(results[i][j].Positions, f.Position)
				results[i][j].Version = f.Version
			}
		}
	}
	return results, nil
}

// Recorded returns where the tenant's events with the given ids were
// recorded; ids not recorded are left out.
func (s *Store) Recorded(ctx context.Context, tenant chartstream.TenantID, ids []uuid.UUID) ([]chartstream.RecordedEvent, error) {
	var out []chartstream.RecordedEvent
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT event_id, stream_type, stream_id, version, position FROM events
			WHERE tenant_id = $1 AND event_id = ANY($2) ORDER BY position`, tenant, ids)
		if err != nil {
			return err
		}
		var r chartstream.RecordedEvent
		_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Stream.Type, &r.Stream.ID, &r.Version, &r.Position}, func() error {
			out = append(out, r)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recorded events: %w", err)
	}
	return out, nil
}

// ownFailure reports whether a statement's error is about the write that
// sent it (its data: a constraint, a cast, a policy) rather than about the
// transaction or the server, which would fail any write.
func ownFailure(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "42", "P0":
		return true
	}
	return false
}

// transient reports a failure of the transaction as a whole that sending
// it again can cure: a deadlock or serialization failure with another
// group writing the same streams.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) >= 2 && pgErr.Code[:2] == "40"
}
