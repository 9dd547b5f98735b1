package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// permanent reports failures that no retry can fix: PHI sealed under a key
// this deployment cannot unwrap, a payload its projections refuse as
// invalid, or data the database refuses (SQLSTATE classes 22 and 23). They
// are set aside at once instead of stalling the tenant.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		return true
	}
	return errors.Is(err, phi.ErrDecrypt) || chartstream.ErrorCode(err) == chartstream.EINVALID
}

// reason is a failure as a code fit for a log line or a table: driver
// messages can quote values, and values can be PHI.
func reason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return "sqlstate " + pgErr.Code
	}
	return chartstream.ErrorCode(err)
}

// setAside sets the tenant's next event aside in its live read models for
// the projections that cannot apply it (see setAsideNext), and puts a copy
// on the dead-letter stream. Projections verify and rebuild report it until
// a rebuild with fixed code applies it.
func (p *Projector) setAside(ctx context.Context, log *slog.Logger, tenant chartstream.TenantID, cause error) error {
	var sealed chartstream.Event
	var failed []string
	err := postgres.InReadModelTx(ctx, p.deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		var free bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock_shared($1)`, tenantLockKey(tenant)).Scan(&free); err != nil {
			return err
		}
		if !free {
			return errTenantBusy
		}
		var err error
		sealed, failed, err = setAsideNext(ctx, tx, p.deps.Events, p.deps.Projections, tenant)
		return err
	})
	if err != nil || len(failed) == 0 {
		return err
	}
	p.deadLetter.Add(1)
	log.Error("event set aside", "event_id", sealed.ID.String(), "tenant", tenant.String(), "event_type", sealed.Type,
		"projections", strings.Join(failed, ","), "reason", reason(cause))
	// The table is the record; the stream copy (PHI still sealed) is for
	// operators' tooling, so a failed publish is only logged.
	if m, err := EncodeMessage(deadLetterPrefix+p.cfg.Consumer, sealed); err == nil {
		m.Subject = deadLetterPrefix + p.cfg.Consumer
		m.Header.Set(headerDeadLetterReason, reason(cause))
		if _, err := p.deps.JetStream.PublishMsg(ctx, m); err != nil {
			log.Warn("dead-letter stream publish failed", "event_id", sealed.ID.String(), logging.Error(err))
		}
	}
	return nil
}

// deadLetterPrefix starts the dead-letter stream's subjects; the consumer's
// name follows.
const deadLetterPrefix = "chartstream.deadletter."

// ensureDeadLetterStream creates (or updates) the dead-letter stream name,
// on the subjects every projector's copies go to.
func ensureDeadLetterStream(ctx context.Context, js jetstream.JetStream, name string) error {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{deadLetterPrefix + ">"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
	}); err != nil {
		return fmt.Errorf("dead-letter stream: %w", err)
	}
	return nil
}

// applyAlone applies one event to one projection under a savepoint, so its
// failure leaves the transaction usable.
func applyAlone(ctx context.Context, tx pgx.Tx, proj Projection, e chartstream.Event) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	ptx := &pipelinedTx{Tx: sp, batch: &pgx.Batch{}}
	if err := applyTo(ctx, ptx, proj, []chartstream.Event{e}); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	if err := ptx.flush(ctx); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

// headerDeadLetterReason says why a message was dead-lettered.
const headerDeadLetterReason = "Chartstream-Dead-Letter-Reason"

// deadLetterMsg parks a message that names no event of a tenant this
// projector can place (no tenant, no cursor, or an event the store does
// not hold) on the dead-letter stream and acks it. The log line names the
// event, never its content.
func (p *Projector) deadLetterMsg(ctx context.Context, log *slog.Logger, m ackable, e chartstream.Event, cause error) {
	dl := nats.NewMsg(deadLetterPrefix + p.cfg.Consumer)
	dl.Data = m.Data()
	if hm, ok := m.(interface{ Headers() nats.Header }); ok {
		for k, v := range hm.Headers() {
			dl.Header[k] = v
		}
	}
	dl.Header.Set(headerDeadLetterReason, reason(cause))
	if _, err := p.deps.JetStream.PublishMsg(ctx, dl); err != nil {
		// Not acked: JetStream redelivers after AckWait and we try again.
		log.Error("dead-letter publish failed", "event_id", e.ID.String(), logging.Error(err))
		return
	}
	p.deadLetter.Add(1)
	log.Error("message dead-lettered", "event_id", e.ID.String(), "reason", reason(cause))
	_ = m.Ack()
}
