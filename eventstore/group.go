package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Group append: concurrent appends of one tenant share a transaction.
//
// Every transaction costs the database a snapshot, the tenant setting, a
// commit record and a WAL flush, and costs both sides a round trip.
// PostgreSQL's group commit shares only the flush; on a machine where the
// flush is fast, the rest dominates, and a single-event append, which also
// chains its hash and maintains the event store's indexes, reached about a
// third of the rate of a bare INSERT. So the store shares the whole
// transaction, one level up: at most Config.AppendConcurrency append
// transactions are in flight, appends arriving meanwhile queue, and the next
// free flusher sends up to Config.MaxAppendGroup of the oldest queued
// append's tenant's appends as one pipeline (one tenant per transaction, as
// RLS requires). Nothing waits for a timer: a lone append goes straight out,
// so a quiet store adds no latency.
//
// A group of single-event appends that claim nothing, the commonest kind,
// is one multi-row INSERT; any other group is a statement per append.
//
// Each append keeps its own outcome. The appends of a group commit or roll
// back together, so when one append's statement fails (a stale expected
// version, a value already claimed), that append gets its error and the
// others are sent again without it. A failed multi-row INSERT is first sent
// again as a statement per append, to learn whose it was. A deadlock or
// serialization failure between two groups sends the group again.

// groupRetries bounds resending a group after deadlocks or serialization
// failures; the appends then get that error.
const groupRetries = 3

// groupTimeout bounds one group's transaction, pool wait included; the
// app role's statement_timeout is 30 s.
const groupTimeout = 30 * time.Second

// query is one statement of an append, queued afresh each time its group
// is sent.
type query struct {
	sql  string
	args []any
}

// oneEvent is the commonest append: one event at an expected version,
// claiming nothing. A group of them goes out as a single statement.
type oneEvent struct {
	streamType    string
	streamID      uuid.UUID
	version       int64 // the event's: the expected version + 1
	eventID       uuid.UUID
	eventType     string
	schemaVersion int32
	payload       json.RawMessage
	phi           []byte
	subject       pgtype.UUID
	metadata      json.RawMessage
}

// args are appendOneSQL's arguments.
func (e *oneEvent) args(tenant chartstream.TenantID) []any {
	return []any{tenant, e.streamType, e.streamID, e.version, e.eventID, e.eventType, e.schemaVersion, e.payload, e.phi, e.subject, e.metadata}
}

// appendManySQL inserts a group of oneEvent appends, each to its own
// stream, in one statement, with appendOneSQL's checks: the keys and the
// chain trigger refuse a stream not at the expected version, and an
// unknown tenant inserts nothing.
const appendManySQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, e.stream_type, e.stream_id, e.version, e.event_id, e.event_type, e.schema_version, e.payload, e.phi, e.subject_id, e.metadata
FROM unnest($2::text[], $3::uuid[], $4::bigint[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[], $9::bytea[], $10::uuid[], $11::jsonb[])
	AS e(stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
RETURNING stream_id, version, position`

// pendingAppend is one Append, queued or in a group.
type pendingAppend struct {
	tenant  chartstream.TenantID
	events  int
	queries []query
	one     *oneEvent          // set if the append is one; queries hold its appendOneSQL
	done    chan appendOutcome // buffered: the flusher never blocks on it
	taken   bool               // in a group; guarded by appender.mu

	// Set by read; valid only once the group has committed.
	result chartstream.AppendResult
	known  bool
}

type appendOutcome struct {
	result chartstream.AppendResult
	err    error
}

// read consumes the append's results from its group's pipeline: the rows
// its event statement returned, then the claims statement if it had one.
func (p *pendingAppend) read(br pgx.BatchResults) error {
	p.result, p.known = chartstream.AppendResult{}, true
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var pos, ver *int64
		if err := rows.Scan(&p.known, &pos, &ver); err != nil {
			return err
		}
		if pos != nil {
			p.result.Positions = append(p.result.Positions, *pos)
			p.result.Version = *ver
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for range p.queries[1:] {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// outcome is the append's result once its group committed.
func (p *pendingAppend) outcome() appendOutcome {
	if !p.known || len(p.result.Positions) == 0 {
		// Nothing was inserted: the only reason left is the tenant.
		return appendOutcome{err: chartstream.Errorf(chartstream.ENOTFOUND, "unknown tenant")}
	}
	return appendOutcome{result: p.result}
}

// appender queues appends and runs the flushers that send them in groups.
type appender struct {
	store       *Store
	concurrency int
	maxGroup    int
	maxEvents   int

	mu       sync.Mutex
	queue    []*pendingAppend // oldest first
	flushers int
}

// submit queues p and waits for its outcome. A caller whose ctx ends while
// p is still queued gets ctx's error and nothing is written; once p is in
// a group, submit waits for the group's outcome (bounded by groupTimeout),
// so the caller learns what happened rather than an ambiguous error.
//
// A caller that finds a flusher slot free flushes itself (see lead), so a
// lone append costs no hand-over between goroutines.
func (a *appender) submit(ctx context.Context, p *pendingAppend) (chartstream.AppendResult, error) {
	a.mu.Lock()
	a.queue = append(a.queue, p)
	lead := a.flushers < a.concurrency
	if lead {
		a.flushers++
	}
	a.mu.Unlock()

	if lead {
		if err := a.lead(ctx, p); err != nil {
			return chartstream.AppendResult{}, err
		}
	} else {
		select {
		case o := <-p.done:
			return o.result, o.err
		case <-ctx.Done():
		}
		a.mu.Lock()
		queued := !p.taken
		if queued {
			a.remove(p)
		}
		a.mu.Unlock()
		if queued {
			return chartstream.AppendResult{}, ctx.Err()
		}
	}
	o := <-p.done
	return o.result, o.err
}

// lead sends groups on the caller's goroutine, the oldest first, until p
// has gone out in one of them or in another flusher's, then hands its
// flusher slot to a background flusher if appends are still queued.
func (a *appender) lead(ctx context.Context, p *pendingAppend) error {
	for {
		a.mu.Lock()
		switch {
		case p.taken: // by another flusher
			a.handOver()
			a.mu.Unlock()
			return nil
		case ctx.Err() != nil:
			a.remove(p)
			a.handOver()
			a.mu.Unlock()
			return ctx.Err()
		}
		group := a.take() // not empty: p is queued
		a.mu.Unlock()
		mine := slices.Contains(group, p)
		a.send(group)
		if mine {
			a.mu.Lock()
			a.handOver()
			a.mu.Unlock()
			return nil
		}
	}
}

// flush sends groups until the queue is empty.
func (a *appender) flush() {
	for {
		a.mu.Lock()
		group := a.take()
		if len(group) == 0 {
			a.flushers--
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		a.send(group)
	}
}

// handOver gives up a flusher slot, to a background flusher if appends are
// queued. The caller holds a.mu.
func (a *appender) handOver() {
	if len(a.queue) > 0 {
		go a.flush()
		return
	}
	a.flushers--
}

// remove takes a cancelled append out of the queue. The caller holds a.mu.
func (a *appender) remove(p *pendingAppend) {
	a.queue = slices.DeleteFunc(a.queue, func(q *pendingAppend) bool { return q == p })
}

// take removes and returns the next group: the oldest queued append and
// the tenant's appends queued after it, up to the group's limits. The
// caller holds a.mu.
func (a *appender) take() []*pendingAppend {
	if len(a.queue) == 0 {
		return nil
	}
	tenant := a.queue[0].tenant
	var group []*pendingAppend
	events := 0
	rest := a.queue[:0]
	for _, p := range a.queue {
		fits := len(group) == 0 || (len(group) < a.maxGroup && events+p.events <= a.maxEvents)
		if p.tenant == tenant && fits {
			p.taken = true
			group = append(group, p)
			events += p.events
			continue
		}
		rest = append(rest, p)
	}
	clear(a.queue[len(rest):])
	a.queue = rest
	return group
}

// send writes a group and delivers each append's outcome, sending the
// group again without an append whose own statement failed.
func (a *appender) send(group []*pendingAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	combined := len(group) > 1 && !slices.ContainsFunc(group, func(p *pendingAppend) bool { return p.one == nil })
	for retries := 0; len(group) > 0; {
		var failed int
		var err error
		if combined {
			failed, err = -1, a.sendCombined(ctx, group)
		} else {
			failed, err = a.sendOnce(ctx, group)
		}
		switch {
		case err == nil:
			for _, p := range group {
				p.done <- p.outcome()
			}
			a.store.wake(ctx)
			return
		case combined:
			// One statement cannot say whose row failed; one statement
			// per append can.
			combined = false
		case failed >= 0 && ownFailure(err):
			group[failed].done <- appendOutcome{err: appendError(err)}
			group = slices.Delete(group, failed, failed+1)
		case transient(err) && retries < groupRetries:
			retries++
		default:
			for _, p := range group {
				p.done <- appendOutcome{err: appendError(err)}
			}
			return
		}
	}
}

// sendOnce runs the group's statements as one transaction. On error, failed
// is the index of the append whose statement failed, or -1 if none did
// (the connection or the commit failed).
func (a *appender) sendOnce(ctx context.Context, group []*pendingAppend) (failed int, err error) {
	b := &pgx.Batch{}
	for _, p := range group {
		for _, q := range p.queries {
			b.Queue(q.sql, q.args...)
		}
	}
	failed = -1
	err = postgres.InTenantBatch(ctx, a.store.pool, group[0].tenant, b, func(br pgx.BatchResults) error {
		for i, p := range group {
			if err := p.read(br); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	return failed, err
}

// sendCombined runs a group of oneEvent appends as one statement.
func (a *appender) sendCombined(ctx context.Context, group []*pendingAppend) error {
	n := len(group)
	types, streams, versions, ids := make([]string, n), make([]uuid.UUID, n), make([]int64, n), make([]uuid.UUID, n)
	eventTypes, schemas, payloads := make([]string, n), make([]int32, n), make([]json.RawMessage, n)
	sealed, subjects, metas := make([][]byte, n), make([]pgtype.UUID, n), make([]json.RawMessage, n)
	type key struct {
		stream  uuid.UUID
		version int64
	}
	byKey := make(map[key]*pendingAppend, n)
	for i, p := range group {
		e := p.one
		types[i], streams[i], versions[i], ids[i] = e.streamType, e.streamID, e.version, e.eventID
		eventTypes[i], schemas[i], payloads[i] = e.eventType, e.schemaVersion, e.payload
		sealed[i], subjects[i], metas[i] = e.phi, e.subject, e.metadata
		p.result, p.known = chartstream.AppendResult{}, false
		byKey[key{e.streamID, e.version}] = p
	}
	b := &pgx.Batch{}
	b.Queue(appendManySQL, group[0].tenant, types, streams, versions, ids, eventTypes, schemas, payloads, sealed, subjects, metas)
	return postgres.InTenantBatch(ctx, a.store.pool, group[0].tenant, b, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			var pos int64
			if err := rows.Scan(&k.stream, &k.version, &pos); err != nil {
				return err
			}
			if p := byKey[k]; p != nil {
				p.result, p.known = chartstream.AppendResult{Version: k.version, Positions: []int64{pos}}, true
			}
		}
		return rows.Err()
	})
}

// ownFailure reports whether a statement's error is about the append that
// sent it (its data: a constraint, a cast, a policy) rather than about the
// transaction or the server, which would fail any append.
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
