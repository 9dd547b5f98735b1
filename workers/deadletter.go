package workers

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/phi"
)

// permanent reports failures that no retry can fix: PHI sealed under a key
// this deployment cannot unwrap, a payload its projections refuse as
// invalid, or data the database refuses (SQLSTATE classes 22 and 23). They
// are dead-lettered at once instead of stalling the lane.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		return true
	}
	return errors.Is(err, phi.ErrDecrypt) || chartstream.ErrorCode(err) == chartstream.EINVALID
}

// deadLetterMsg parks a message no projection could apply and acks it, so
// the lane moves on. The log line names the event, never its content; the
// reason is a code, since driver messages can quote values.
func (p *Projector) deadLetterMsg(ctx context.Context, log *slog.Logger, m jetstream.Msg, e chartstream.Event, cause error) {
	reason := chartstream.ErrorCode(cause)
	var pgErr *pgconn.PgError
	if errors.As(cause, &pgErr) {
		reason = "sqlstate " + pgErr.Code
	}
	dl := nats.NewMsg("chartstream.deadletter." + p.cfg.Consumer)
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		dl.Header[k] = v
	}
	dl.Header.Set("Chartstream-Dead-Letter-Reason", reason)
	if _, err := p.deps.JetStream.PublishMsg(ctx, dl); err != nil {
		// Not acked: JetStream redelivers after AckWait and we try again.
		log.Error("dead-letter publish failed", "event_id", e.ID.String(), logging.Error(err))
		return
	}
	p.deadLetter.Add(1)
	log.Error("event dead-lettered", "event_id", e.ID.String(), "tenant", e.Tenant.String(), "event_type", e.Type, "reason", reason)
	_ = m.Ack()
}
