// Package postgres is chartstream's one way into PostgreSQL: pool set-up and
// InTenantTx, the only function that sets the tenant for row-level security.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
)

// Config configures a connection pool.
type Config struct {
	// URL is the PostgreSQL connection URL. Required.
	URL string
	// ApplicationName shows in pg_stat_activity. Default "chartstream".
	ApplicationName string
	// MaxConns caps the pool; it wins over the URL's pool_max_conns.
	// Default: the URL's pool_max_conns if it has one, else
	// DefaultMaxConns.
	MaxConns int32
	// ConnectTimeout bounds the first connection. Default 10s.
	ConnectTimeout time.Duration
	// Lazy opens the pool without connecting: its first use connects. For
	// a database the process must start without (a read replica that may
	// be down), whose failures each use reports.
	Lazy bool
	// Password, when set, is asked for the password of each new
	// connection: short-lived credentials. A URL with
	// chartstream_auth=aws-rds-iam sets it to RDS IAM tokens.
	Password PasswordFunc
}

// PasswordFunc returns the password to open a connection to host:port as
// user with.
type PasswordFunc func(ctx context.Context, host string, port uint16, user string) (string, error)

func (c *Config) setDefaults() {
	if c.ApplicationName == "" {
		c.ApplicationName = "chartstream"
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("database URL is required"))
	} else if raw, _, err := takeAuth(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("database URL: %w", err))
	} else if _, err := pgxpool.ParseConfig(raw); err != nil {
		errs = append(errs, errors.New("database URL is malformed"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("max connections must be positive"))
	}
	return errors.Join(errs...)
}

// DefaultMaxConns is a pool's size when neither Config.MaxConns nor the
// URL's pool_max_conns sets it.
const DefaultMaxConns = 32

// URLMaxConns returns the pool size the URL (or keyword/value string) sets
// with pool_max_conns, and whether it sets one.
func URLMaxConns(raw string) (int32, bool) {
	if !strings.Contains(raw, "pool_max_conns=") {
		return 0, false
	}
	pc, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return 0, false
	}
	return pc.MaxConns, true
}

// Connect opens a pool and checks that the database answers. Errors never
// include the URL, which may carry a password.
func Connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	raw, iam, err := takeAuth(cfg.URL)
	if err != nil {
		return nil, err
	}
	if iam && cfg.Password == nil {
		if cfg.Password, err = rdsIAMPasswords(ctx); err != nil {
			return nil, err
		}
	}
	pc, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, errors.New("database URL is malformed")
	}
	if password := cfg.Password; password != nil {
		pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			p, err := password(ctx, cc.Host, cc.Port, cc.User)
			cc.Password = p
			return err
		}
	}
	if _, set := URLMaxConns(cfg.URL); cfg.MaxConns > 0 || !set {
		pc.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	}
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pc.ConnConfig.RuntimeParams["application_name"] = cfg.ApplicationName
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Redact(cfg.URL), err)
	}
	if cfg.Lazy {
		return pool, nil
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", Redact(cfg.URL), err)
	}
	return pool, nil
}

// Redact returns the URL with its password replaced, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed URL)"
	}
	return u.Redacted()
}

// InTenantTx runs fn in a transaction on pool with the tenant set for
// row-level security, and commits if fn returns nil. The tenant is set with
// set_config(..., true): transaction-local, so it cannot leak to the next
// user of a pooled connection, and it is safe behind PgBouncer in
// transaction mode. It is the only code that sets app.tenant_id.
//
// fn must not keep tx after returning. An error from fn is returned as is
// (after rollback), so callers can match domain errors with errors.Is/As.
func InTenantTx(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, fn func(pgx.Tx) error) error {
	if tenant.IsZero() {
		return errors.New("postgres: InTenantTx without a tenant")
	}
	return inTx(ctx, pool, tenantSQL(tenant), fn)
}

// tenantSQL sets the tenant for the transaction it runs in. The tenant is a
// UUID in its canonical form (hex digits and hyphens), so writing it into
// the statement is safe; it lets the setting travel with BEGIN.
func tenantSQL(tenant chartstream.TenantID) string {
	return "SELECT set_config('app.tenant_id', '" + tenant.String() + "', true)"
}

// inTx runs fn in a transaction begun, and set up by setup, in a single
// round trip (BEGIN and setup as one simple-protocol query), and commits
// when fn returns nil.
func inTx(ctx context.Context, pool *pgxpool.Pool, setup string, fn func(pgx.Tx) error) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + setup})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ReadModelCopy chooses which of a tenant's two copies of the read models a
// transaction sees (migration 0005): the live one, which queries and the
// projector use, or the standby, which a rebuild or a verification fills
// before the copies switch.
type ReadModelCopy bool

// The two copies of a tenant's read models.
const (
	LiveReadModels    ReadModelCopy = false
	StandbyReadModels ReadModelCopy = true
)

// InReadModelTx is InTenantTx for the read models: the transaction also
// resolves their unqualified table names in the tenant's chosen copy (its
// search_path, set transaction-locally like the tenant). Everything else,
// the event store included, resolves as usual. The tenant and the copy are
// set in one round trip.
func InReadModelTx(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, which ReadModelCopy, fn func(pgx.Tx) error) error {
	if tenant.IsZero() {
		return errors.New("postgres: InReadModelTx without a tenant")
	}
	return inTx(ctx, pool, readModelSQL(tenant, which), fn)
}

// readModelSQL sets the tenant and the read models' copy.
func readModelSQL(tenant chartstream.TenantID, which ReadModelCopy) string {
	return tenantSQL(tenant) + "; SELECT set_config('search_path', chartstream_read_models('" + tenant.String() + "'::uuid, " +
		fmt.Sprint(bool(which)) + "), true)"
}

// InReadModelBatch is InReadModelTx for hot reads: the settings and the
// batch's queries go as one pipeline, one round trip (see InTenantBatch).
func InReadModelBatch(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, which ReadModelCopy, b *pgx.Batch, read ReadBatchFn) error {
	if tenant.IsZero() {
		return errors.New("postgres: InReadModelBatch without a tenant")
	}
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	full.Queue("SELECT set_config('search_path', chartstream_read_models($1, $2), true)", tenant, bool(which))
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	return InTenantBatch(ctx, pool, tenant, full, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("set read models: %w", err)
		}
		return read(br)
	})
}

// SQLSTATE codes chartstream maps to domain errors.
const (
	UniqueViolation       = "23505"
	CheckViolation        = "23514"
	ForeignKeyViolation   = "23503"
	InsufficientPrivilege = "42501"
	SerializationFailure  = "40001"
)

// IsConstraintError reports whether err is a PostgreSQL error with the given
// SQLSTATE and, when constraint is not empty, on that constraint. Errors are
// matched by code and constraint name, never by message text.
func IsConstraintError(err error, code, constraint string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == code && (constraint == "" || pgErr.ConstraintName == constraint)
}

// Unavailable reports whether err means the database could not be reached
// or could not serve the request now (connection failure, shutdown, too
// many connections, statement timeout): worth a retry later, a 503, not a
// bug.
func Unavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		// The connection went away mid-conversation (the server
		// restarted, the network dropped it).
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 53300 too many connections;
		// 57014 query canceled (statement timeout); 57P0x shutdown.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "53300" || pgErr.Code == "57014" || strings.HasPrefix(pgErr.Code, "57P0")
	}
	return pgconn.Timeout(err)
}
