package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
)

// notifyChannel is the channel Append signals after commit.
const notifyChannel = "chartstream_events"

// wake tells readers (Subscribe, in any process) that events committed.
//
// The NOTIFY is sent after the append's commit, in its own statement, and
// coalesced: while one is in flight, further appends only mark that another
// is due. A NOTIFY inside the writing transaction would make PostgreSQL
// serialise every committing writer on its notification lock, which cut
// append throughput in half in `chartstream bench eventstore`.
func (s *Store) wake(ctx context.Context) {
	s.wakeDue.Store(true)
	if s.waking.CompareAndSwap(false, true) {
		go s.notifyLoop(context.WithoutCancel(ctx))
	}
}

func (s *Store) notifyLoop(ctx context.Context) {
	for {
		for s.wakeDue.Swap(false) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			// An error only costs latency: readers also poll.
			_, _ = s.pool.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel)
			cancel()
		}
		s.waking.Store(false)
		// An append that marked a wake-up after the last Swap but saw this
		// loop still running relies on it to go round once more.
		if !s.wakeDue.Load() || !s.waking.CompareAndSwap(false, true) {
			return
		}
	}
}

// SubscribeFn receives each batch of events in gap-free order, with the
// cursor after the batch. Returning an error stops the subscription.
type SubscribeFn func(ctx context.Context, events []chartstream.Event, next Cursor) error

// SubscribeOptions tune Subscribe. The zero value is usable.
type SubscribeOptions struct {
	// BatchSize caps the events per call of fn. Default 500.
	BatchSize int
	// PollInterval is the longest Subscribe sleeps without a notification.
	// Notifications only wake the reader — the table is the source of
	// data — so a lost notification (or an old transaction that holds the
	// horizon back and then ends without writing) delays by at most this.
	// Default 200ms.
	PollInterval time.Duration
	// Listener is the pool whose connection listens for notifications:
	// a session-mode pool (LISTEN does not survive PgBouncer's
	// transaction mode). Default the store's pool.
	Listener *pgxpool.Pool
}

// Subscribe tails the event store from after: it calls fn with every batch
// of new events until ctx is done (returning nil) or a read or fn fails
// (returning that error). It wakes on the commit notification, so the
// latency from commit to fn is one read.
func (s *Store) Subscribe(ctx context.Context, filter Filter, after Cursor, opts SubscribeOptions, fn SubscribeFn) error {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Listener == nil {
		opts.Listener = s.pool
	}
	wake := make(chan struct{}, 1)
	go listen(ctx, opts.Listener, wake)

	timer := time.NewTimer(opts.PollInterval)
	defer timer.Stop()
	cursor := after
	for {
		events, next, err := s.ReadAll(ctx, filter, cursor, opts.BatchSize)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if len(events) > 0 {
			if err := fn(ctx, events, next); err != nil {
				return err
			}
			cursor = next
			if len(events) == opts.BatchSize {
				continue // more is waiting
			}
		}
		timer.Reset(opts.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-timer.C:
		}
	}
}

// listen holds a dedicated connection in LISTEN and signals wake on every
// notification, reconnecting after failures until ctx is done.
func listen(ctx context.Context, pool *pgxpool.Pool, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := listenOnce(ctx, pool, wake)
		if ctx.Err() != nil {
			return
		}
		_ = err // the poll interval covers the gap; retry shortly
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, wake chan<- struct{}) error {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool for good: a LISTENing connection must
	// not be handed to anyone else.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Events committed before LISTEN took effect (since Subscribe's first
	// read, or while reconnecting) notified no one: read once more now.
	wakeUp(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wakeUp(wake)
	}
}

// wakeUp signals wake unless a wake-up is already pending.
func wakeUp(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
