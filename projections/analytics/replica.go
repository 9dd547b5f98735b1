package analytics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Reader reads the analytics tables on the hot standby as
// chartstream_analytics, one tenant per transaction under RLS. It never
// reads analytics from the primary: it asks the primary only for its WAL
// position, to measure the standby's lag. A standby that is down, or
// further behind than the bound, is an EUNAVAILABLE error.
type Reader struct {
	pool    *pgxpool.Pool
	primary *pgxpool.Pool
	cfg     ReaderConfig

	mu sync.Mutex
	// caughtUp is when a read last saw the standby replayed up to the
	// position the primary had just told: whatever it lacks since was
	// written after. Zero until then.
	caughtUp time.Time
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// MaxLag is how far behind the primary the standby may be for its
	// answers to count. Default 30s.
	MaxLag time.Duration
	// MinCell is the small-cell threshold: a count from 1 to MinCell-1
	// is suppressed, and so are the statistics of fewer than MinCell
	// values. Default 11; 1 suppresses nothing.
	MinCell int
	// StatementTimeout bounds each read. Default 10s.
	StatementTimeout time.Duration
}

func (c *ReaderConfig) setDefaults() {
	if c.MaxLag == 0 {
		c.MaxLag = 30 * time.Second
	}
	if c.MinCell == 0 {
		c.MinCell = 11
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 10 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c ReaderConfig) Validate() error {
	var errs []error
	if c.MaxLag < 0 {
		errs = append(errs, errors.New("analytics: the replica lag bound must not be negative"))
	}
	if c.MinCell < 1 {
		errs = append(errs, errors.New("analytics: the minimum cell size must be at least 1"))
	}
	if c.StatementTimeout < 0 {
		errs = append(errs, errors.New("analytics: the statement timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// NewReader returns a Reader on standby, the standby's pool as
// chartstream_analytics, measuring its lag against primary, any pool on
// the primary (it reads pg_current_wal_lsn() there, nothing else). A nil
// pool is a wiring bug and panics.
func NewReader(standby, primary *pgxpool.Pool, cfg ReaderConfig) (*Reader, error) {
	if standby == nil || primary == nil {
		panic("analytics: NewReader without the standby's or the primary's pool")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Reader{pool: standby, primary: primary, cfg: cfg}, nil
}

// MinCell is the small-cell threshold the Reader applies.
func (r *Reader) MinCell() int { return r.cfg.MinCell }

// Lag is how far the standby's data is behind the primary, as measured
// with an answer. Known is false when the standby could not be asked.
type Lag struct {
	Known bool
	Value time.Duration
}

// Millis is the lag in milliseconds, rounded up: a standby refused for
// being over the bound by a fraction of a millisecond does not report a
// lag equal to the bound (X-Replica-Lag-Ms 500 on a 503 for a 500 ms
// bound would contradict itself).
func (l Lag) Millis() int64 {
	return int64((l.Value + time.Millisecond - 1) / time.Millisecond)
}

// errReplicaDown is the PHI-free face of a standby that cannot be reached.
var errReplicaDown = "the analytics replica is unavailable; retry later"

// lagSQL measures the standby's lag against $1, the primary's WAL
// position read just before. Replayed up to it, the standby is caught up:
// lag 0, however old its last commit (an idle primary writes nothing, and
// no false 503 comes of it). Behind it, whatever its WAL receiver reports,
// the lag is the age of the last commit replayed: a receiver that stopped
// receiving but still runs counts as lagging from the first write it
// misses, not from wal_receiver_timeout. Without $1 (the primary could not
// be asked) the standby's own view stands in: caught up when it has
// replayed all it received and its receiver runs. NULL (nothing replayed
// yet) cannot be told; not in recovery means the URL does not point at a
// standby. The second column says whether the standby was caught up.
const lagSQL = `SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false),
	CASE WHEN pg_last_wal_replay_lsn() >= $1::pg_lsn THEN 0::float8
	WHEN $1::pg_lsn IS NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
		AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) THEN 0::float8
	ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 * 1000 END`

// primaryPosition is the primary's current WAL position, nil when the
// primary cannot be asked (the standby's view then stands in: with the
// primary down, nothing new is written that the standby could lack).
func (r *Reader) primaryPosition(ctx context.Context) *string {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StatementTimeout)
	defer cancel()
	var lsn string
	if err := r.primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return nil
	}
	return &lsn
}

// measured is the lag from lagSQL's answer, bounded by the time since the
// standby was last seen caught up: what it lacks was written after that,
// so a primary idle for hours then written to does not look hours behind
// to a Reader that read in between.
func (r *Reader) measured(caught bool, ms float64, at time.Time) time.Duration {
	lag := time.Duration(max(ms, 0) * float64(time.Millisecond))
	r.mu.Lock()
	defer r.mu.Unlock()
	if caught {
		r.caughtUp = at
		return 0
	}
	if !r.caughtUp.IsZero() {
		lag = min(lag, time.Since(r.caughtUp))
	}
	return lag
}

// read runs query (args after the tenant, which is $1) on the standby in
// one round trip with the lag measurement, and scans its rows with scan.
// Errors: EUNAVAILABLE when the standby is unreachable, not a standby, or
// behind by more than MaxLag (the Lag says how far, when known).
func (r *Reader) read(ctx context.Context, tenant chartstream.TenantID, query string, args []any, scan func(pgx.Rows) error) (Lag, error) {
	var lag Lag
	asked := time.Now()
	position := r.primaryPosition(ctx)
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('statement_timeout', $1, true)`, fmt.Sprint(r.cfg.StatementTimeout.Milliseconds()))
	b.Queue(lagSQL, position)
	b.Queue(query, append([]any{tenant}, args...)...)
	err := postgres.InTenantBatch(ctx, r.pool, tenant, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		var standby, caught bool
		var ms *float64
		if err := br.QueryRow().Scan(&standby, &caught, &ms); err != nil {
			return err
		}
		if !standby {
			return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: errReplicaDown, Err: errors.New("DATABASE_REPLICA_URL is not a standby")}
		}
		if ms == nil {
			return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: errReplicaDown, Err: errors.New("the standby neither streams nor has replayed a commit")}
		}
		lag = Lag{Known: true, Value: r.measured(caught, *ms, asked)}
		if lag.Value > r.cfg.MaxLag {
			return chartstream.Errorf(chartstream.EUNAVAILABLE, "the analytics replica is %d ms behind the primary, over the %d ms allowed; retry later",
				lag.Millis(), r.cfg.MaxLag.Milliseconds())
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := scan(rows); err != nil {
			return err
		}
		return rows.Err()
	})
	var domain *chartstream.Error
	switch {
	case err == nil, errors.As(err, &domain):
		return lag, err
	case postgres.Unavailable(err):
		return lag, &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: errReplicaDown, Err: err}
	}
	return lag, fmt.Errorf("analytics: read the replica: %w", err)
}

// RetryAfter is how long a caller refused for lag should wait: the excess
// over the bound, at least a second and at most a minute.
func (r *Reader) RetryAfter(l Lag) time.Duration {
	if !l.Known || l.Value <= r.cfg.MaxLag {
		return time.Second
	}
	return min(max((l.Value-r.cfg.MaxLag).Round(time.Second), time.Second), time.Minute)
}
