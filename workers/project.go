package workers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Projecting one tenant's job. The read models of a tenant are at their
// checkpoint; a delivery is applied straight from its message only when
// the relay says the event follows the checkpoint directly. Anything else
// (a message lost, late, redelivered out of turn, published without its
// predecessor, or a catch-up target) is read from the event store, the
// source of truth: no event is ever skipped because a later one arrived
// first, and a delivery at or before the checkpoint is simply done.

// errTenantBusy means a rebuild or a verification holds the tenant's read
// models; its events wait.
var errTenantBusy = errors.New("the tenant's read models are being rebuilt or verified")

// tenantLockKey is the advisory lock a rebuild or verification holds
// (exclusively, for its session) and each projector transaction tries
// (shared), so neither writes a tenant's read models under the other.
func tenantLockKey(tenant chartstream.TenantID) int64 {
	h := fnv.New64a()
	h.Write([]byte("chartstream.read-models." + tenant.String()))
	return int64(h.Sum64())
}

// step is what one transaction of a job did.
type step struct {
	// consumed is how many of the items given are done with.
	consumed int
	// reached is the oldest checkpoint after the transaction.
	reached eventstore.Cursor
	// applied are the events applied, in order.
	applied []chartstream.Event
	// more is set when the transaction stopped at its size limit.
	more bool
	// unknown is set when the next item names an event the store does
	// not have (a message not from this event store).
	unknown bool
}

// project applies job j in as many transactions as it takes, and says
// how far it got and whether the tenant must try again later.
func (p *Projector) project(ctx context.Context, log *slog.Logger, j job) outcome {
	tenant, err := chartstream.ParseTenantID(j.tenant)
	if err != nil { // the dispatcher queues only valid tenants
		panic("workers: job for an invalid tenant")
	}
	w := p.tenantState(j.tenant)
	var o outcome
	for ctx.Err() == nil {
		limit := p.cfg.CatchUpPage
		if w.isolateUntil.After(o.reached) {
			limit = 1
		}
		start := time.Now()
		st, err := p.applyStep(ctx, tenant, j.items[o.done:], j.target, limit)
		o.done += st.consumed
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if limit > 1 && len(st.applied) > 1 && !errors.Is(err, errTenantBusy) && !postgres.Unavailable(err) && !transient(err) {
				// One of these events fails: apply them one by one
				// to find which.
				w.isolateUntil = eventstore.CursorOf(st.applied[len(st.applied)-1])
				continue
			}
			if o.retryAfter = p.failed(ctx, log, tenant, w, err); o.retryAfter > 0 {
				return o
			}
			continue
		}
		o.reached = st.reached
		w.succeeded()
		if p.deps.Applied != nil && len(st.applied) > 0 {
			now := time.Now()
			for _, e := range st.applied {
				p.deps.Applied(e, now)
			}
		}
		if p.tracer != nil && len(st.applied) > 0 {
			p.traceApplied(j.items, st.applied, start)
		}
		if st.unknown {
			p.deadLetterMsg(ctx, log, j.items[o.done].msg, chartstream.Event{}, errNotInStore)
			o.done++
			continue
		}
		if !st.more && o.done == len(j.items) {
			p.forgetState(j.tenant)
			return o
		}
	}
	return o
}

// errNotInStore is the reason for dead-lettering a message whose event
// this event store does not hold.
var errNotInStore = chartstream.Errorf(chartstream.EINVALID, "the message names an event this event store does not hold")

// applyStep runs one transaction: it locks the tenant's checkpoints,
// collects up to limit events that follow them (from the items where they
// follow directly, from the store otherwise) and applies them.
func (p *Projector) applyStep(ctx context.Context, tenant chartstream.TenantID, items []*delivery, target *eventstore.Cursor, limit int) (step, error) {
	var st step
	err := postgres.InReadModelTx(ctx, p.deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		st = step{}
		var free bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock_shared($1)`, tenantLockKey(tenant)).Scan(&free); err != nil {
			return err
		}
		if !free {
			return errTenantBusy
		}
		cps, err := lockCheckpoints(ctx, tx, tenant, p.deps.Projections)
		if err != nil {
			return err
		}
		st.reached = cps.oldest()
		if err := p.collect(ctx, tenant, items, target, limit, &st); err != nil {
			return err
		}
		if len(st.applied) == 0 {
			return nil
		}
		for i := range st.applied {
			if err := p.deps.Events.Open(ctx, &st.applied[i]); err != nil {
				return fmt.Errorf("open event %s: %w", st.applied[i].ID, err)
			}
		}
		if err := applyAfter(ctx, tx, p.deps.Projections, cps, st.applied); err != nil {
			return err
		}
		st.reached = cps.oldest()
		return nil
	})
	if err != nil {
		// Nothing of the transaction counts: no item is done (the next
		// step finds again those applied before), and what it tried
		// tells which events may have failed.
		return step{applied: st.applied}, err
	}
	return st, nil
}

// collect fills st.applied with the events after st.reached, up to limit:
// each item whose predecessor is the last event collected comes from its
// message; where there is a gap, the store fills it up to the item (or up
// to target once the items are done).
func (p *Projector) collect(ctx context.Context, tenant chartstream.TenantID, items []*delivery, target *eventstore.Cursor, limit int, st *step) error {
	at := st.reached
	for len(st.applied) < limit {
		for st.consumed < len(items) && !items[st.consumed].cursor.After(at) {
			st.consumed++ // applied before: a redelivery, or caught up from the store
		}
		var upTo eventstore.Cursor
		switch {
		case st.consumed < len(items):
			d := items[st.consumed]
			if d.hasPrev && d.prev == at {
				if e, err := DecodeMessage(d.msg.Data()); err == nil && e.Tenant == tenant && eventstore.CursorOf(e) == d.cursor {
					st.applied = append(st.applied, e)
					at = d.cursor
					st.consumed++
					continue
				}
				// A body that disagrees with its headers: the store's
				// copy is the truth.
			}
			upTo = d.cursor
		case target != nil && target.After(at):
			upTo = *target
		default:
			return nil
		}
		page, _, err := p.deps.Events.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, at, limit-len(st.applied))
		if err != nil {
			return err
		}
		n := 0
		for _, e := range page {
			c := eventstore.CursorOf(e)
			if c.After(upTo) {
				break
			}
			st.applied = append(st.applied, e)
			at = c
			n++
		}
		if n == 0 {
			if st.consumed < len(items) && upTo == items[st.consumed].cursor {
				st.unknown = true
			}
			return nil // a target beyond the store's head: nothing more to do
		}
	}
	st.more = true
	return nil
}

// tenantWork is what the projector remembers about a tenant whose work is
// failing: touched only by the worker holding the tenant's job.
type tenantWork struct {
	failures int
	// isolateUntil: up to this cursor, events are applied one per
	// transaction, to find the one that fails.
	isolateUntil eventstore.Cursor
	// attempts counts failures of the one event that fails.
	attempts int
}

func (w *tenantWork) succeeded() { w.failures, w.attempts = 0, 0 }

func (p *Projector) tenantState(tenant string) *tenantWork {
	p.statesMu.Lock()
	defer p.statesMu.Unlock()
	w := p.states[tenant]
	if w == nil {
		w = &tenantWork{}
		p.states[tenant] = w
	}
	return w
}

func (p *Projector) forgetState(tenant string) {
	p.statesMu.Lock()
	defer p.statesMu.Unlock()
	delete(p.states, tenant)
}

// failed decides what a failed step means: wait and retry (the database is
// unreachable, the tenant is busy, or an event failed fewer than
// MaxAttempts times for an unknown reason), or set the failing event
// aside and go on at once (0).
//
// Only a failure that cannot heal sets an event aside: a set-aside event
// is missing from the read models until a rebuild, so an unreachable
// database is waited out however long it takes.
func (p *Projector) failed(ctx context.Context, log *slog.Logger, tenant chartstream.TenantID, w *tenantWork, err error) time.Duration {
	w.failures++
	backoff := min(50*time.Millisecond<<min(w.failures-1, 7), 5*time.Second)
	switch {
	case errors.Is(err, errTenantBusy):
		return 200 * time.Millisecond
	case postgres.Unavailable(err) || transient(err):
		if w.failures%20 == 0 {
			log.Warn("tenant's projection still failing; retrying", "tenant", tenant.String(), "failures", w.failures, logging.Error(err))
		}
		return backoff
	}
	w.attempts++
	if !permanent(err) && w.attempts < p.cfg.MaxAttempts {
		return backoff
	}
	if dlErr := p.setAside(ctx, log, tenant, err); dlErr != nil {
		log.Warn("could not set an event aside; retrying", "tenant", tenant.String(), logging.Error(dlErr))
		return backoff
	}
	w.attempts = 0
	return 0
}

// transient reports a transaction failure that trying again can cure: a
// deadlock or serialization failure.
func transient(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && len(pgErr.SQLState()) >= 2 && pgErr.SQLState()[:2] == "40"
}
