// Package accesslog is the PHI access log (HIPAA 164.312(b)): one entry
// per read that returned PHI, who read it, whose it was, where, when and
// why. Entries are buffered in memory and written asynchronously, so a
// read pays for a slice append, not a database round trip; they go to the
// append-only, per-tenant hash-chained table phi_access_log (migrations
// 0010 and 0014), each exactly once. The log fails closed: while it
// cannot write, Healthy says so and the API refuses PHI reads. Close
// flushes what is buffered.
package accesslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Entry is one read that returned PHI. It holds ids and codes only.
type Entry struct {
	// ID makes writing the entry idempotent: a write retried after its
	// COMMIT reached the database but its answer was lost adds nothing.
	// Record and Write set it when it is zero.
	ID     uuid.UUID            `json:"-"`
	Tenant chartstream.TenantID `json:"-"`
	// Seq numbers the tenant's entries (set when read back).
	Seq        int64     `json:"seq"`
	AccessedAt time.Time `json:"accessed_at"`
	// Actor is the token's subject, Roles its roles.
	Actor string   `json:"actor"`
	Roles []string `json:"roles"`
	// Patients are those whose PHI the response held; AllPatients marks a
	// read of the whole tenant (an export without a patient).
	Patients    []uuid.UUID `json:"patients"`
	AllPatients bool        `json:"all_patients"`
	// Route is the method and route pattern, e.g. "GET /v1/patients/:id".
	Route string `json:"route"`
	// Purpose is an HL7 PurposeOfUse code.
	Purpose   string `json:"purpose"`
	RequestID string `json:"request_id"`
	// Hash chains the entry to the tenant's previous one (set when read
	// back).
	Hash []byte `json:"hash,omitempty"`
}

// Config tunes the log.
type Config struct {
	// FlushInterval is the longest an entry waits in memory. Default 100ms.
	FlushInterval time.Duration
	// MaxBatch is the most entries one flush writes. Default 2,000.
	MaxBatch int
	// MaxPending is the most entries held in memory before the log
	// reports itself unhealthy. Default 100,000.
	MaxPending int
	// StallAfter: when the oldest entry held has waited this long, the log
	// reports itself unhealthy (the database hangs). Default 2s.
	StallAfter time.Duration
}

func (c *Config) setDefaults() {
	if c.FlushInterval == 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 2000
	}
	if c.MaxPending == 0 {
		c.MaxPending = 100_000
	}
	if c.StallAfter == 0 {
		c.StallAfter = 2 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.FlushInterval < time.Millisecond {
		errs = append(errs, errors.New("access log: flush interval must be at least 1ms"))
	}
	if c.MaxBatch < 1 || c.MaxPending < c.MaxBatch {
		errs = append(errs, errors.New("access log: max batch must be positive and max pending at least max batch"))
	}
	if c.StallAfter <= c.FlushInterval {
		errs = append(errs, errors.New("access log: stall-after must exceed the flush interval"))
	}
	return errors.Join(errs...)
}

// ErrUnavailable is the log refusing new PHI reads: it cannot write.
var ErrUnavailable = chartstream.Errorf(chartstream.EUNAVAILABLE, "the PHI access log cannot be written; PHI reads are refused until it can")

// Log buffers entries and writes them in the background.
type Log struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	pending []Entry
	// since is when the oldest pending entry was recorded.
	since time.Time
	// failing is set while the last write failed.
	failing bool
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// New starts a log writing to pool (the app role's). pool and logger are
// required: nil panics.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg Config) (*Log, error) {
	if pool == nil || logger == nil {
		panic("accesslog: New with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{pool: pool, cfg: cfg, log: logger.With("component", "accesslog"),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Healthy returns ErrUnavailable while the log cannot keep its promise: its
// last write failed, its oldest entry has waited StallAfter, or it holds
// MaxPending entries. A PHI read must check it before it starts.
func (l *Log) Healthy() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failing || len(l.pending) >= l.cfg.MaxPending ||
		(len(l.pending) > 0 && time.Since(l.since) > l.cfg.StallAfter) {
		return ErrUnavailable
	}
	return nil
}

// Record buffers an entry. It never blocks and never fails: a read that
// checked Healthy has its entry kept (past MaxPending too, so Healthy
// turns the next reads away). After Close it is dropped and reported.
func (l *Log) Record(e Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.log.Error("an access entry arrived after the log closed", "route", e.Route, "request_id", e.RequestID)
		return
	}
	if len(l.pending) == 0 {
		l.since = time.Now()
	}
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	l.pending = append(l.pending, e)
	if len(l.pending) >= l.cfg.MaxBatch {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Pending is how many entries wait to be written.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Close stops taking entries and writes those held, retrying until ctx
// ends; it reports how many could not be written.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	for {
		if err := l.flush(ctx); err == nil || ctx.Err() != nil {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if n := l.Pending(); n > 0 {
		return fmt.Errorf("access log: %d entries could not be written before shutdown", n)
	}
	return nil
}

// run flushes every FlushInterval, or at once when MaxBatch entries wait,
// backing off while writes fail.
func (l *Log) run() {
	defer close(l.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-l.stop; cancel() }()
	backoff := l.cfg.FlushInterval
	for {
		t := time.NewTimer(backoff)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-l.wake:
			t.Stop()
		case <-t.C:
		}
		if err := l.flush(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("access log write failed; PHI reads are refused until it succeeds", logging.Error(err))
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = l.cfg.FlushInterval
	}
}

// flush writes up to MaxBatch of the pending entries, one transaction per
// tenant, and puts back those it could not write, in order.
func (l *Log) flush(ctx context.Context) error {
	l.mu.Lock()
	n := min(len(l.pending), l.cfg.MaxBatch)
	batch := slices.Clone(l.pending[:n])
	l.mu.Unlock()
	if n == 0 {
		return nil
	}
	byTenant := map[chartstream.TenantID][]Entry{}
	var order []chartstream.TenantID
	for _, e := range batch {
		if _, seen := byTenant[e.Tenant]; !seen {
			order = append(order, e.Tenant)
		}
		byTenant[e.Tenant] = append(byTenant[e.Tenant], e)
	}
	var failed []Entry
	var errs []error
	for _, t := range order {
		if err := write(ctx, l.pool, t, byTenant[t]); err != nil {
			failed, errs = append(failed, byTenant[t]...), append(errs, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	rest := l.pending[n:]
	l.pending = append(failed, rest...)
	switch {
	case len(failed) > 0:
		// since stays: the oldest entry still waits.
	case len(l.pending) > 0:
		l.since = time.Now()
	}
	l.failing = len(errs) > 0
	return errors.Join(errs...)
}

// Write writes one entry now, outside any Log: for a reader that must
// not open PHI unless its entry is written (chartstream export), so it
// writes first and fails closed on the error.
func Write(ctx context.Context, pool *pgxpool.Pool, e Entry) error {
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if err := write(ctx, pool, e.Tenant, []Entry{e}); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	return nil
}

// write inserts a tenant's entries in one transaction; the table's trigger
// numbers and chains them. An entry written already (its ID is in the
// table: the retry of a write whose answer was lost) is skipped, before it
// is numbered: the chain has no gap and no twin.
func write(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, entries []Entry) error {
	return postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, e := range entries {
			b.Queue(`INSERT INTO phi_access_log (tenant_id, entry_id, accessed_at, actor, roles, patients, all_patients, route, purpose, request_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, entry_id) DO NOTHING`,
				tenant, e.ID, e.AccessedAt, e.Actor, nonNil(e.Roles), nonNil(e.Patients), e.AllPatients, e.Route, e.Purpose, e.RequestID)
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
