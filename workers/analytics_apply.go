package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections/analytics"
)

// analyticsTarget is what one message (or a sweep) asks for: the tenant's
// events up to cursor. body is the message's event when the relay says its
// predecessor is prev.
type analyticsTarget struct {
	tenant  chartstream.TenantID
	cursor  eventstore.Cursor
	prev    eventstore.Cursor
	hasPrev bool
	body    []byte
	// readAhead also applies the tenant's events after cursor, up to a
	// page, from the event store.
	readAhead bool
}

// handle is the router's handler: it applies the message's event and
// whatever of its tenant's events precede it unapplied, and returns after
// the commit. Errors: a refusal (EINVALID) for a message that names no
// event of this event store or lacks the relay's signature; an
// *eventFailure naming the event that failed; the database's otherwise.
func (a *AnalyticsProjector) handle(msg *message.Message) error {
	t, err := a.target(msg)
	if err != nil {
		return err
	}
	return a.catchUp(msg.Context(), t)
}

// catchUp applies the tenant's events up to t.cursor (and beyond, when
// reading ahead), a page per transaction. When a page fails for a reason
// other than an unreachable database it goes on one event per
// transaction, to name the event that fails.
func (a *AnalyticsProjector) catchUp(ctx context.Context, t analyticsTarget) error {
	if !t.cursor.After(a.knownCheckpoint(t.tenant)) {
		return nil // applied before: a redelivery, or read ahead
	}
	limit := a.cfg.Page
	for {
		st, err := a.step(ctx, t, limit)
		if err != nil {
			if limit > 1 && len(st.tried) > 1 && !postgres.Unavailable(err) && !transient(err) {
				limit, t.readAhead = 1, false
				continue
			}
			if len(st.tried) == 1 {
				return &eventFailure{event: st.tried[0], err: err}
			}
			return &analyticsError{tenant: t.tenant, err: err}
		}
		if st.unknown {
			return errNotInStore
		}
		if !t.cursor.After(st.reached) {
			return nil
		}
	}
}

// analyticsStep is what one transaction did.
type analyticsStep struct {
	// tried are the events the transaction applied, or tried to.
	tried []chartstream.Event
	// reached is the tenant's checkpoint after it.
	reached eventstore.Cursor
	// unknown is set when the target names an event the store lacks.
	unknown bool
}

// step runs one transaction: lock the tenant's checkpoint, collect up to
// limit events after it, apply them and advance the checkpoint.
func (a *AnalyticsProjector) step(ctx context.Context, t analyticsTarget, limit int) (analyticsStep, error) {
	var st analyticsStep
	var created []time.Time
	err := postgres.InTenantTx(ctx, a.deps.DB, t.tenant, func(tx pgx.Tx) error {
		st, created = analyticsStep{}, nil
		cp, err := lockAnalyticsCheckpoint(ctx, tx, t.tenant)
		if err != nil {
			return err
		}
		st.reached = cp
		if !t.cursor.After(cp) {
			return nil // applied before
		}
		if err := a.collect(ctx, t, cp, limit, &st); err != nil || len(st.tried) == 0 {
			return err
		}
		if created, err = a.ensurePartitions(ctx, tx, st.tried); err != nil {
			return err
		}
		// The events and the checkpoint in one round trip.
		b := &pgx.Batch{}
		if err := analytics.Queue(b, st.tried); err != nil {
			return err
		}
		last := eventstore.CursorOf(st.tried[len(st.tried)-1])
		b.Queue(`UPDATE analytics_checkpoints SET txid = $2, position = $3, updated_at = now() WHERE tenant_id = $1`,
			t.tenant, last.TxID, last.Position)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		st.reached = last
		return nil
	})
	if err != nil {
		return analyticsStep{tried: st.tried}, err
	}
	a.committed(t.tenant, st, created)
	return st, nil
}

// collect fills st.tried with the events after cp, up to limit: the
// message's own event from its body when it follows cp directly, otherwise
// the store's, up to t.cursor; then, reading ahead, one page of the store's
// after it (one per message, so that a message's ack never waits long).
func (a *AnalyticsProjector) collect(ctx context.Context, t analyticsTarget, cp eventstore.Cursor, limit int, st *analyticsStep) error {
	at := cp
	if t.cursor.After(at) && t.hasPrev && t.prev == at && t.body != nil {
		if e, err := DecodeMessage(t.body); err == nil && e.Tenant == t.tenant && eventstore.CursorOf(e) == t.cursor {
			st.tried, at = append(st.tried, e), t.cursor
		}
		// A body that disagrees with its headers: the store's copy is the truth.
	}
	for t.cursor.After(at) && len(st.tried) < limit {
		page, _, err := a.deps.Events.ReadAll(ctx, eventstore.Filter{Tenant: t.tenant}, at, limit-len(st.tried))
		if err != nil {
			return err
		}
		n := 0
		for _, e := range page {
			if eventstore.CursorOf(e).After(t.cursor) {
				break
			}
			st.tried, at = append(st.tried, e), eventstore.CursorOf(e)
			n++
		}
		if n == 0 || (n < len(page) && at != t.cursor) {
			st.unknown = true // the store has nothing at t.cursor
			return nil
		}
	}
	if !t.readAhead || t.cursor.After(at) || len(st.tried) >= limit {
		return nil
	}
	page, _, err := a.deps.Events.ReadAll(ctx, eventstore.Filter{Tenant: t.tenant}, at, limit-len(st.tried))
	if err != nil {
		return err
	}
	st.tried = append(st.tried, page...)
	return nil
}

// lockAnalyticsCheckpoint reads and locks the tenant's analytics
// checkpoint, creating it at the beginning, in one round trip.
func lockAnalyticsCheckpoint(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	// The INSERT's row is not visible to its own statement's SELECT: the
	// SELECT after it reads (and locks) it; both in one pipeline.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO analytics_checkpoints (tenant_id, txid, position) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING`, tenant)
	b.Queue(`SELECT txid, position FROM analytics_checkpoints WHERE tenant_id = $1 FOR UPDATE`, tenant).QueryRow(func(r pgx.Row) error {
		return r.Scan(&c.TxID, &c.Position)
	})
	err := tx.SendBatch(ctx, b).Close()
	return c, err
}

// ensurePartitions creates, in tx, the month partitions the events write
// into that this process has not seen, and returns them (known only once
// tx commits).
func (a *AnalyticsProjector) ensurePartitions(ctx context.Context, tx pgx.Tx, events []chartstream.Event) ([]time.Time, error) {
	months, err := analytics.Months(events)
	if err != nil {
		return nil, err
	}
	var created []time.Time
	for _, m := range months {
		a.monthsMu.Lock()
		known := a.months[m]
		a.monthsMu.Unlock()
		if known {
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT chartstream_analytics_partitions($1)`, m); err != nil {
			return nil, fmt.Errorf("analytics: partitions of %s: %w", m.Format("2006-01"), err)
		}
		created = append(created, m)
	}
	return created, nil
}

// committed remembers what a committed step established and reports the
// events it applied.
func (a *AnalyticsProjector) committed(tenant chartstream.TenantID, st analyticsStep, months []time.Time) {
	a.monthsMu.Lock()
	for _, m := range months {
		a.months[m] = true
	}
	a.monthsMu.Unlock()
	a.knownMu.Lock()
	if st.reached.After(a.known[tenant]) {
		a.known[tenant] = st.reached
	}
	a.knownMu.Unlock()
	if a.deps.Applied != nil && len(st.tried) > 0 {
		now := time.Now()
		for _, e := range st.tried {
			a.deps.Applied(e, now)
		}
	}
}

// knownCheckpoint is the tenant's last checkpoint this process committed or
// read: the real one is never behind it.
func (a *AnalyticsProjector) knownCheckpoint(tenant chartstream.TenantID) eventstore.Cursor {
	a.knownMu.Lock()
	defer a.knownMu.Unlock()
	return a.known[tenant]
}

// analyticsError is a failure of a tenant's step; its text is PHI-free
// (driver messages can quote values), its cause is kept for errors.Is/As.
type analyticsError struct {
	tenant chartstream.TenantID
	err    error
}

func (e *analyticsError) Error() string {
	return "analytics: tenant " + e.tenant.String() + ": " + reason(e.err)
}

func (e *analyticsError) Unwrap() error { return e.err }

// eventFailure names the one event that failed to apply.
type eventFailure struct {
	event chartstream.Event
	err   error
}

func (e *eventFailure) Error() string {
	return "analytics: event " + e.event.ID.String() + " (" + e.event.Type + "): " + reason(e.err)
}

func (e *eventFailure) Unwrap() error { return e.err }
