package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream/internal/postgres"
)

// waitDigested waits until the bench's other workers have digested every
// event of the bench tenant: the de-identifier has published each on its
// stream and the anchor worker has signed a checkpoint over all of them.
// Seeding a history puts 100,000 events into the store at once, which
// production never does; measuring commands while those workers chew
// through them would measure the seeding, not the commands.
func (s *commandsStack) waitDigested(ctx context.Context, timeout time.Duration) error {
	nc, err := s.main.nats.Dial("chartstream-bench-quiet")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	bar := newProgress(-1, "de-identifying and anchoring the seeded histories")
	defer func() { _ = bar.Finish() }()
	for {
		var events, anchored int64
		err := postgres.InTenantTx(ctx, s.pool, s.tenant.ID, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM events),
				coalesce((SELECT events FROM audit_checkpoints ORDER BY seq DESC LIMIT 1), 0)`).Scan(&events, &anchored)
		})
		if err != nil {
			return err
		}
		published := events // without a de-identifier, nothing to wait for
		if s.cfg.Deid.Enabled {
			stream, err := js.Stream(ctx, s.cfg.Deid.Stream)
			if err != nil {
				return fmt.Errorf("de-identified stream: %w", err)
			}
			info, err := stream.Info(ctx)
			if err != nil {
				return err
			}
			published = int64(info.State.Msgs)
		}
		behind := max(events-published, events-anchored)
		if behind <= 0 {
			return nil
		}
		_ = bar.Set64(behind)
		if time.Now().After(deadline) {
			return fmt.Errorf("%d events still not de-identified or anchored after %s", behind, timeout)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
