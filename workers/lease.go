package workers

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/chartstream/chartstream/internal/logging"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lease makes one worker of a kind active across any number of processes:
// a PostgreSQL session-level advisory lock, held on a dedicated connection.
// Standbys retry every retry interval and take over when the active one's
// session ends (the process died, or its connection broke).
type lease struct {
	db    *pgxpool.Pool
	name  string
	retry time.Duration
	log   *slog.Logger
}

// ActiveFn does a worker's work while it holds the lease; its ctx ends when
// the lease is lost or the worker stops.
type ActiveFn func(ctx context.Context) error

// run waits for the lease, runs active while holding it, and starts over
// when active returns or the lease is lost, until ctx is done.
func (l lease) run(ctx context.Context, active ActiveFn) {
	for ctx.Err() == nil {
		err := l.runOnce(ctx, active)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Warn("worker stopped; retrying", logging.Error(err))
		}
		sleep(ctx, l.retry)
	}
}

func (l lease) runOnce(ctx context.Context, active ActiveFn) error {
	conn, err := l.acquire(ctx)
	if err != nil || conn == nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	// Holding the lease means holding its connection: if the connection
	// breaks, the lock is gone and a standby may already be active.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		defer cancel()
		for ctx.Err() == nil {
			sleep(ctx, l.retry)
			if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("worker lost its lease connection", logging.Error(err))
				return
			}
		}
	}()
	defer func() {
		cancel()
		<-watched // the connection is the watcher's until it returns
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, l.key())
		conn.Release()
	}()
	l.log.Info("worker active")
	return active(ctx)
}

// acquire returns the connection holding the lock, or nil when ctx ended.
func (l lease) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	for ctx.Err() == nil {
		conn, err := l.db.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("lease %s: %w", l.name, err)
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key()).Scan(&got); err != nil {
			conn.Release()
			return nil, fmt.Errorf("lease %s: %w", l.name, err)
		}
		if got {
			return conn, nil
		}
		conn.Release()
		sleep(ctx, l.retry)
	}
	return nil, nil
}

func (l lease) key() int64 {
	h := fnv.New64a()
	h.Write([]byte("chartstream." + l.name))
	return int64(h.Sum64())
}

// retrying is an ActiveFn that runs fn, and after each failure logs it
// (failed says what failed and what happens next) and runs it again after
// a backoff doubling from 100ms up to max.
func retrying(max time.Duration, log *slog.Logger, failed string, fn ActiveFn) ActiveFn {
	return func(ctx context.Context) error {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := fn(ctx)
			if ctx.Err() != nil {
				return nil
			}
			log.Warn(failed, logging.Error(err), "backoff", backoff.String())
			sleep(ctx, backoff)
			backoff = min(backoff*2, max)
		}
		return nil
	}
}
