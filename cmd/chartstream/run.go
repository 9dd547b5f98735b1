package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Config is the configuration of the long-running process (serve, work,
// all). Each field is set by an environment variable or its flag.
type Config struct {
	// HTTPAddr is the API's listen address (HTTP_ADDR). Default
	// 127.0.0.1:18080.
	HTTPAddr string
	// DatabaseURL is the app role's PostgreSQL URL (DATABASE_URL). Required.
	DatabaseURL string
	// NATSURL is an external NATS server or cluster (NATS_URL). Empty
	// starts an embedded server for work and all.
	NATSURL string
	// NATSStoreDir is the embedded server's JetStream store
	// (NATS_STORE_DIR). Default .local/nats-embedded.
	NATSStoreDir string
	// RedisURL is Redis for idempotency keys, revocation and rate limits
	// (REDIS_URL). Required for serve and all.
	RedisURL string
	// LogLevel is debug, info, warn or error (LOG_LEVEL). Default info.
	LogLevel string
	// ShutdownTimeout bounds draining on SIGTERM (SHUTDOWN_TIMEOUT).
	// Default 15s.
	ShutdownTimeout time.Duration
}

func (c *Config) flags(fs *pflag.FlagSet) {
	stringFlag(fs, &c.HTTPAddr, "http-addr", "HTTP_ADDR", "127.0.0.1:18080", "API listen address")
	stringFlag(fs, &c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role (required)")
	stringFlag(fs, &c.NATSURL, "nats-url", "NATS_URL", "", "external NATS URL; empty starts an embedded JetStream server")
	stringFlag(fs, &c.NATSStoreDir, "nats-store-dir", "NATS_STORE_DIR", ".local/nats-embedded", "embedded NATS JetStream store directory")
	stringFlag(fs, &c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (required for the API)")
	stringFlag(fs, &c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	durationFlag(fs, &c.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 15*time.Second, "how long to drain on SIGTERM")
}

// Validate reports every problem with the configuration for the given roles.
func (c Config) Validate(api bool) error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, errors.New("DATABASE_URL is malformed"))
	}
	if api {
		if c.RedisURL == "" {
			errs = append(errs, errors.New("REDIS_URL is required"))
		} else if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, errors.New("REDIS_URL is malformed"))
		}
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, errors.New("HTTP_ADDR must be host:port"))
		}
	}
	if _, ok := logging.ParseLevel(c.LogLevel); !ok {
		errs = append(errs, errors.New("LOG_LEVEL must be debug, info, warn or error"))
	}
	return errors.Join(errs...)
}

// Main is one chartstream process: the API, the workers, or both. Tests
// reuse it to run the real server end to end.
type Main struct {
	Config Config
	// API and Workers choose what the process runs.
	API, Workers bool
	// Logger defaults to JSON on stderr at Config.LogLevel.
	Logger *slog.Logger

	pool   *pgxpool.Pool
	nats   *messaging.Conn
	redis  *redis.Client
	server *api.Server
	ln     net.Listener
}

// Open validates the configuration, connects to every dependency and, for
// the API, starts listening. Close releases whatever Open acquired, also
// after a failed Open.
func (m *Main) Open(ctx context.Context) error {
	if err := m.Config.Validate(m.API); err != nil {
		return err
	}
	if m.Logger == nil {
		level, _ := logging.ParseLevel(m.Config.LogLevel)
		m.Logger = logging.New(os.Stderr, level)
	}
	var err error
	if m.pool, err = postgres.Connect(ctx, postgres.Config{URL: m.Config.DatabaseURL, ApplicationName: "chartstream"}); err != nil {
		return err
	}
	// The API process does not need NATS unless it was told where it is;
	// workers need it, embedded if no URL is given.
	if m.Workers || m.Config.NATSURL != "" {
		if m.nats, err = messaging.Connect(ctx, m.Logger, messaging.Config{URL: m.Config.NATSURL, StoreDir: m.Config.NATSStoreDir}); err != nil {
			return err
		}
	}
	if m.API {
		if err := m.openAPI(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (m *Main) openAPI(ctx context.Context) error {
	opts, err := redis.ParseURL(m.Config.RedisURL)
	if err != nil {
		return errors.New("REDIS_URL is malformed")
	}
	m.redis = redis.NewClient(opts)
	if err := m.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connect to Redis: %w", err)
	}
	ready := []api.ReadinessCheck{
		{Name: "postgres", Check: m.pool.Ping},
		{Name: "redis", Check: func(ctx context.Context) error { return m.redis.Ping(ctx).Err() }},
	}
	if m.nats != nil {
		ready = append(ready, api.ReadinessCheck{Name: "nats", Check: m.nats.Check})
	}
	m.server, err = api.NewServer(api.Deps{Logger: m.Logger, Ready: ready},
		api.Config{Addr: m.Config.HTTPAddr, ShutdownTimeout: m.Config.ShutdownTimeout})
	if err != nil {
		return err
	}
	m.ln, err = m.server.Listen()
	return err
}

// Addr is the API's listen address (useful with port 0), nil without API.
func (m *Main) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Run serves until ctx is cancelled, then drains in-flight requests. It
// does not Close.
func (m *Main) Run(ctx context.Context) error {
	m.Logger.Info("chartstream running", "api", m.API, "workers", m.Workers, "addr", fmt.Sprint(m.Addr()))
	if m.server == nil {
		<-ctx.Done()
		return nil
	}
	return m.server.Serve(ctx, m.ln)
}

// Close stops consumers and closes connections and pools.
func (m *Main) Close() {
	if m.nats != nil {
		m.nats.Close()
	}
	if m.redis != nil {
		_ = m.redis.Close()
	}
	if m.pool != nil {
		m.pool.Close()
	}
}

func runMain(cmd *cobra.Command, m *Main) error {
	defer m.Close()
	if err := m.Open(cmd.Context()); err != nil {
		return err
	}
	err := m.Run(cmd.Context())
	m.Logger.Info("chartstream stopped")
	return err
}

func newServeCmd() *cobra.Command {
	m := &Main{API: true}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMain(cmd, m) },
	}
	m.Config.flags(cmd.Flags())
	return cmd
}

func newWorkCmd() *cobra.Command {
	m := &Main{Workers: true}
	cmd := &cobra.Command{
		Use:   "work",
		Short: "Run the workers (relay and projectors)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMain(cmd, m) },
	}
	m.Config.flags(cmd.Flags())
	return cmd
}

func newAllCmd() *cobra.Command {
	m := &Main{API: true, Workers: true}
	cmd := &cobra.Command{
		Use:   "all",
		Short: "Run the API and the workers in one process",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMain(cmd, m) },
	}
	m.Config.flags(cmd.Flags())
	return cmd
}
