package workers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
)

// A tenant's read models exist in two copies (migration 0005): the live one
// and a standby. Rebuild and VerifyProjections replay the event store into
// the standby in short transactions while the live copy keeps serving, so
// neither ever holds a transaction open across a long replay or copy: an
// open transaction with an xid would hold back the event store's gap-free
// horizon and with it the relay, for every tenant.

// RebuildProjection is a projection that can be replayed into the standby
// copy: it names the tables it writes (projections/*.Projector).
type RebuildProjection interface {
	Projection
	Tables() []string
}

// EventHistory is what replays read: the event store, not JetStream,
// whose retention is limited.
type EventHistory interface {
	ReadAll(ctx context.Context, filter eventstore.Filter, after eventstore.Cursor, limit int) ([]chartstream.Event, eventstore.Cursor, error)
	Open(ctx context.Context, e *chartstream.Event) error
}

// CopyDeps are what working on a tenant's standby copy needs.
type CopyDeps struct {
	// DB is the app role's pool.
	DB *pgxpool.Pool
	// Sessions holds the tenant's locks for the whole operation: a pool
	// in session mode (not PgBouncer's transaction mode). Default DB.
	Sessions *pgxpool.Pool
	// History is the event store on the app role's pool.
	History EventHistory

	// whilePaused runs while the tenant's live projection is paused;
	// tests use it to stretch that moment.
	whilePaused func()
}

func (d CopyDeps) sessions() *pgxpool.Pool {
	if d.Sessions != nil {
		return d.Sessions
	}
	return d.DB
}

// replayPage is how many events a replay applies per transaction: large
// enough that per-transaction costs vanish, small enough to stay short.
const replayPage = 5000

// ErrStandbyBusy is returned when another rebuild or verification of the
// tenant is using its standby copy.
var ErrStandbyBusy = chartstream.Errorf(chartstream.ECONFLICT, "another rebuild or verification of this tenant is running")

// standbyLockKey is held (a session's advisory lock) by whoever uses the
// tenant's standby copy.
func standbyLockKey(tenant chartstream.TenantID) int64 {
	h := fnv.New64a()
	h.Write([]byte("chartstream.read-model-standby." + tenant.String()))
	return int64(h.Sum64())
}

// standbyHold is the session that holds a tenant's standby copy and, at the
// end, its read models.
type standbyHold struct {
	conn   *pgxpool.Conn
	tenant chartstream.TenantID
	paused bool
}

// holdStandby takes the tenant's standby copy for this session, or fails
// with ErrStandbyBusy.
func holdStandby(ctx context.Context, sessions *pgxpool.Pool, tenant chartstream.TenantID) (*standbyHold, error) {
	conn, err := sessions.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, standbyLockKey(tenant)).Scan(&got); err != nil {
		conn.Release()
		return nil, err
	}
	if !got {
		conn.Release()
		return nil, ErrStandbyBusy
	}
	return &standbyHold{conn: conn, tenant: tenant}, nil
}

// pause stops the live projector from writing the tenant's read models
// until resume (or release): it waits for the projector's transaction in
// flight, and the projector's next ones find the tenant busy.
func (h *standbyHold) pause(ctx context.Context) error {
	if _, err := h.conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, tenantLockKey(h.tenant)); err != nil {
		return fmt.Errorf("pause the tenant's projection: %w", err)
	}
	h.paused = true
	return nil
}

// resume lets the live projector go on.
func (h *standbyHold) resume(ctx context.Context) {
	if h.paused {
		_, _ = h.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, tenantLockKey(h.tenant))
		h.paused = false
	}
}

// alive fails if the session holding the locks is gone, and the locks with
// it.
func (h *standbyHold) alive(ctx context.Context) error {
	if err := h.conn.Ping(ctx); err != nil {
		return fmt.Errorf("lost the session holding the tenant's standby copy: %w", err)
	}
	return nil
}

// release gives up the locks and the session.
func (h *standbyHold) release() {
	ctx := context.Background()
	h.resume(ctx)
	_, _ = h.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, standbyLockKey(h.tenant))
	h.conn.Release()
}

// clearCopy deletes the tenant's rows from one copy of the read models, a
// few thousand rows per transaction.
func clearCopy(ctx context.Context, db *pgxpool.Pool, tenant chartstream.TenantID, which postgres.ReadModelCopy, projections []RebuildProjection) error {
	tables := []string{"projection_checkpoints", "projection_dead_letters"}
	for _, p := range projections {
		tables = append(tables, p.Tables()...)
	}
	for _, table := range tables {
		for {
			var n int64
			err := postgres.InReadModelTx(ctx, db, tenant, which, func(tx pgx.Tx) error {
				// table comes from code, never input.
				tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE ctid = ANY(ARRAY(
					SELECT ctid FROM `+table+` WHERE tenant_id = $1 LIMIT 5000))`, tenant)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return fmt.Errorf("clear %s: %w", table, err)
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

// replayed is what a replay into the standby copy did.
type replayed struct {
	events int64
	// setAside are the events a projection could not apply, by id.
	setAside []uuid.UUID
}

// replayStandby applies the tenant's events after the standby copy's
// checkpoints into it, page by page, until the store has no more (or, with
// upTo, until each projection reached its cursor there). An event a
// projection cannot apply is set aside in the standby copy and the replay
// goes on: a rebuild is how a fixed projection picks up what was set
// aside, and a verification reports it.
func replayStandby(ctx context.Context, deps CopyDeps, projections []Projection, tenant chartstream.TenantID, upTo checkpoints, progress func(int64), r *replayed) error {
	one := false
	for {
		n, err := replayOnce(ctx, deps, projections, tenant, upTo, one)
		switch {
		case err == nil:
			r.events += int64(n)
			if progress != nil && n > 0 {
				progress(r.events)
			}
			if n == 0 {
				return nil
			}
			one = false
		case postgres.Unavailable(err) || transient(err) || ctx.Err() != nil:
			return err
		case !one:
			one = true // find the event that fails
		default:
			var aside chartstream.Event
			var failed []string
			err := postgres.InReadModelTx(ctx, deps.DB, tenant, postgres.StandbyReadModels, func(tx pgx.Tx) (err error) {
				aside, failed, err = setAsideNext(ctx, tx, deps.History, projections, tenant)
				return err
			})
			if err != nil {
				return fmt.Errorf("set an event aside: %w", err)
			}
			if len(failed) > 0 {
				r.setAside = append(r.setAside, aside.ID)
			}
			r.events++
		}
	}
}

// replayOnce applies one page (one event with one) into the standby copy
// and returns how many events it applied.
func replayOnce(ctx context.Context, deps CopyDeps, projections []Projection, tenant chartstream.TenantID, upTo checkpoints, one bool) (int, error) {
	limit := replayPage
	if one {
		limit = 1
	}
	var n int
	err := postgres.InReadModelTx(ctx, deps.DB, tenant, postgres.StandbyReadModels, func(tx pgx.Tx) error {
		cps, err := lockCheckpoints(ctx, tx, tenant, projections)
		if err != nil {
			return err
		}
		at := cps.oldest()
		if upTo != nil && !upTo.after(cps) {
			n = 0
			return nil
		}
		events, _, err := deps.History.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, at, limit)
		if err != nil {
			return err
		}
		if upTo != nil {
			events = upTo.trim(events)
		}
		for i := range events {
			if err := deps.History.Open(ctx, &events[i]); err != nil {
				return err
			}
		}
		n = len(events)
		return applyUpTo(ctx, tx, projections, cps, upTo, events)
	})
	return n, err
}

// after reports whether some projection's bound in c is after its
// checkpoint in cps: whether there is anything left to replay.
func (c checkpoints) after(cps checkpoints) bool {
	for name, bound := range c {
		if bound.After(cps[name]) {
			return true
		}
	}
	return false
}

// trim drops the events after every projection's bound.
func (c checkpoints) trim(events []chartstream.Event) []chartstream.Event {
	var newest eventstore.Cursor
	for _, bound := range c {
		if bound.After(newest) {
			newest = bound
		}
	}
	for i, e := range events {
		if eventstore.CursorOf(e).After(newest) {
			return events[:i]
		}
	}
	return events
}

// setAsideNext applies the tenant's next event, after the transaction's
// copy's checkpoints, to each projection alone (a savepoint each) and sets
// it aside for those that fail: a row in projection_dead_letters. Every
// projection's checkpoint moves past it. It returns the event as stored
// (PHI sealed) and the projections that failed; no event, no error, when
// there is none.
func setAsideNext(ctx context.Context, tx pgx.Tx, history EventHistory, projections []Projection, tenant chartstream.TenantID) (chartstream.Event, []string, error) {
	cps, err := lockCheckpoints(ctx, tx, tenant, projections)
	if err != nil {
		return chartstream.Event{}, nil, err
	}
	page, _, err := history.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cps.oldest(), 1)
	if err != nil || len(page) == 0 {
		return chartstream.Event{}, nil, err
	}
	sealed := page[0]
	e := sealed
	openErr := history.Open(ctx, &e)
	at := eventstore.CursorOf(e)
	var failed []string
	for _, proj := range projections {
		if !at.After(cps[proj.Name()]) {
			continue
		}
		err := openErr
		if err == nil {
			err = applyAlone(ctx, tx, proj, e)
		}
		if err != nil {
			failed = append(failed, proj.Name())
			if _, err := tx.Exec(ctx, `INSERT INTO projection_dead_letters (tenant_id, projection, event_id, event_type, position, reason)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, tenant, proj.Name(), e.ID, e.Type, e.Position, reason(err)); err != nil {
				return chartstream.Event{}, nil, err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET txid = $3, position = $4, updated_at = now()
			WHERE tenant_id = $1 AND projection = $2`, tenant, proj.Name(), at.TxID, at.Position); err != nil {
			return chartstream.Event{}, nil, err
		}
	}
	return sealed, failed, nil
}

// readCheckpoints returns the tenant's checkpoints of projections in one
// copy, without locking them (the beginning for one that has none).
func readCheckpoints(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, projections []Projection) (checkpoints, error) {
	cps := make(checkpoints, len(projections))
	names := make([]string, len(projections))
	for i, p := range projections {
		cps[p.Name()], names[i] = eventstore.Cursor{}, p.Name()
	}
	rows, err := tx.Query(ctx, `SELECT projection, txid, position FROM projection_checkpoints
		WHERE tenant_id = $1 AND projection = ANY($2)`, tenant, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var c eventstore.Cursor
		if err := rows.Scan(&name, &c.TxID, &c.Position); err != nil {
			return nil, err
		}
		cps[name] = c
	}
	return cps, rows.Err()
}

// deadLetters lists the events set aside in one copy of the tenant's read
// models, by id.
func deadLetters(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID) ([]SetAside, error) {
	rows, err := tx.Query(ctx, `SELECT projection, event_id, event_type, position, reason FROM projection_dead_letters
		WHERE tenant_id = $1 ORDER BY position, projection`, tenant)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SetAside])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return out, err
}

// SetAside is an event a projection could not apply and set aside.
type SetAside struct {
	Projection string    `json:"projection"`
	EventID    uuid.UUID `json:"event_id"`
	EventType  string    `json:"event_type"`
	Position   int64     `json:"position"`
	Reason     string    `json:"reason"`
}

func projectionsOf(rp []RebuildProjection) []Projection {
	out := make([]Projection, len(rp))
	for i, p := range rp {
		out[i] = p
	}
	return out
}
