package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// Config is the configuration of the long-running process (serve, work,
// all). Each field is set by an environment variable or its flag.
type Config struct {
	// HTTPAddr is the API's listen address (HTTP_ADDR). Default
	// 127.0.0.1:18080.
	HTTPAddr string
	// DatabaseURL is the app role's PostgreSQL URL (DATABASE_URL). Required.
	DatabaseURL string
	// DatabaseRelayURL is the relay role's URL (DATABASE_RELAY_URL): it
	// reads every tenant's events. Required for the workers.
	DatabaseRelayURL string
	// PHIKeyFile is the local PHI master key (PHI_KEY_FILE). Required.
	PHIKeyFile string
	// Relay configures the JetStream stream and the relay (RELAY_*).
	Relay workers.RelayConfig
	// Projector configures the read model projector (PROJECTOR_*).
	Projector workers.ProjectorConfig
	// Auth configures bearer token verification (JWT_*).
	Auth auth.Config
	// RateStandard, RatePremium and RateEnterprise are each tier's
	// requests per second per tenant (RATE_LIMIT_*). Defaults 200, 1000,
	// 5000.
	RateStandard, RatePremium, RateEnterprise int
	// RateOverrides sets single tenants' rates (RATE_LIMIT_OVERRIDES),
	// "tenant-id=rps,..."; empty for none.
	RateOverrides string
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

// rateLimits is the rate limit configuration from the RATE_LIMIT_* settings.
func (c Config) rateLimits() (ratelimit.Config, error) {
	cfg := ratelimit.DefaultConfig()
	for tier, rate := range map[chartstream.Tier]int{chartstream.TierStandard: c.RateStandard, chartstream.TierPremium: c.RatePremium, chartstream.TierEnterprise: c.RateEnterprise} {
		l := cfg.Tiers[tier]
		l.PerSecond, l.Burst = rate, rate
		cfg.Tiers[tier] = l
	}
	overrides, err := ratelimit.ParseOverrides(c.RateOverrides)
	if err != nil {
		return cfg, err
	}
	cfg.Tenants = overrides
	return cfg, cfg.Validate()
}

// authConfig is the token verification config. The dev key file is set in
// every dev environment; it counts only when the dev key is allowed.
func (c Config) authConfig() auth.Config {
	a := c.Auth
	if !a.AllowDevKey {
		a.DevKeyFile = ""
	}
	return a
}

func (c *Config) flags(fs *pflag.FlagSet) {
	stringFlag(fs, &c.HTTPAddr, "http-addr", "HTTP_ADDR", "127.0.0.1:18080", "API listen address")
	stringFlag(fs, &c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role (required)")
	stringFlag(fs, &c.DatabaseRelayURL, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role (required for workers)")
	stringFlag(fs, &c.PHIKeyFile, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key file of the local key provider (required)")
	stringFlag(fs, &c.Relay.Stream, "relay-stream", "RELAY_STREAM", "CLINICAL", "JetStream stream the relay publishes to")
	intFlag(fs, &c.Relay.Replicas, "relay-replicas", "RELAY_REPLICAS", 1, "stream replicas: 1 single node, 3 in a cluster")
	durationFlag(fs, &c.Relay.DuplicateWindow, "relay-duplicate-window", "RELAY_DUPLICATE_WINDOW", 10*time.Minute, "JetStream duplicate window")
	durationFlag(fs, &c.Relay.MaxAge, "relay-max-age", "RELAY_MAX_AGE", 30*24*time.Hour, "stream retention by age")
	intFlag(fs, &c.Projector.Lanes, "projector-lanes", "PROJECTOR_LANES", 4, "tenants' events applied concurrently (each tenant in order)")
	int64Flag(fs, &c.Relay.MaxBytes, "relay-max-bytes", "RELAY_MAX_BYTES", 10<<30, "stream retention by size in bytes (-1 unlimited)")
	stringFlag(fs, &c.NATSURL, "nats-url", "NATS_URL", "", "external NATS URL; empty starts an embedded JetStream server")
	stringFlag(fs, &c.NATSStoreDir, "nats-store-dir", "NATS_STORE_DIR", ".local/nats-embedded", "embedded NATS JetStream store directory")
	stringFlag(fs, &c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (required for the API)")
	stringFlag(fs, &c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	durationFlag(fs, &c.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 15*time.Second, "how long to drain on SIGTERM")
	stringFlag(fs, &c.Auth.Issuer, "jwt-issuer", "JWT_ISSUER", defaultJWTIssuer, "accepted token issuer (iss)")
	stringFlag(fs, &c.Auth.Audience, "jwt-audience", "JWT_AUDIENCE", defaultJWTAudience, "required token audience (aud)")
	stringFlag(fs, &c.Auth.JWKSURL, "jwt-jwks-url", "JWT_JWKS_URL", "", "identity provider's JWKS URL (https)")
	stringFlag(fs, &c.Auth.PublicKeyFile, "jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", "", "static PEM public key, instead of a JWKS URL")
	stringFlag(fs, &c.Auth.DevKeyFile, "jwt-dev-key-file", "JWT_DEV_KEY_FILE", "", "dev signing key; used only with JWT_ALLOW_DEV_KEY")
	boolFlag(fs, &c.Auth.AllowDevKey, "jwt-allow-dev-key", "JWT_ALLOW_DEV_KEY", false, "accept tokens from the dev key (development only)")
	stringFlag(fs, &c.Auth.TenantClaim, "jwt-tenant-claim", "JWT_TENANT_CLAIM", auth.DefaultTenantClaim, "claim holding the tenant id (e.g. custom:tenant_id)")
	stringFlag(fs, &c.Auth.RolesClaim, "jwt-roles-claim", "JWT_ROLES_CLAIM", auth.DefaultRolesClaim, "claim holding the roles")
	durationFlag(fs, &c.Auth.Leeway, "jwt-leeway", "JWT_LEEWAY", auth.DefaultLeeway, "clock skew allowed on exp and nbf")
	intFlag(fs, &c.RateStandard, "rate-limit-standard", "RATE_LIMIT_STANDARD", 200, "requests/s per standard-tier tenant")
	intFlag(fs, &c.RatePremium, "rate-limit-premium", "RATE_LIMIT_PREMIUM", 1000, "requests/s per premium-tier tenant")
	intFlag(fs, &c.RateEnterprise, "rate-limit-enterprise", "RATE_LIMIT_ENTERPRISE", 5000, "requests/s per enterprise-tier tenant")
	stringFlag(fs, &c.RateOverrides, "rate-limit-overrides", "RATE_LIMIT_OVERRIDES", "", "per-tenant requests/s: tenant-id=rps,...")
}

// Validate reports every problem with the configuration for the given roles.
func (c Config) Validate(api, workers bool) error {
	var errs []error
	checkURL := func(name, url string) {
		if url == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		} else if _, err := pgxpool.ParseConfig(url); err != nil {
			errs = append(errs, fmt.Errorf("%s is malformed", name))
		}
	}
	checkURL("DATABASE_URL", c.DatabaseURL)
	if workers {
		checkURL("DATABASE_RELAY_URL", c.DatabaseRelayURL)
	}
	if c.PHIKeyFile == "" {
		errs = append(errs, errors.New("PHI_KEY_FILE is required"))
	}
	if api {
		if err := c.authConfig().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("JWT settings: %w", err))
		}
		if _, err := c.rateLimits(); err != nil {
			errs = append(errs, fmt.Errorf("RATE_LIMIT settings: %w", err))
		}
		if c.RedisURL == "" {
			errs = append(errs, errors.New("REDIS_URL is required"))
		} else if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, errors.New("REDIS_URL is malformed"))
		}
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, errors.New("HTTP_ADDR must be host:port"))
		}
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must not be negative"))
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

	pool      *pgxpool.Pool
	relayPool *pgxpool.Pool
	nats      *messaging.Conn
	redis     *redis.Client
	server    *api.Server
	ln        net.Listener
	relay     *workers.Relay
	projector *workers.Projector
	// history is the event store as the relay role: every tenant's events.
	history  *eventstore.Store
	verifier *auth.Verifier
	// closing ends background work started by Open (JWKS refresh).
	closing context.Context
	close   context.CancelFunc
}

// Open validates the configuration, connects to every dependency and, for
// the API, starts listening. Close releases whatever Open acquired, also
// after a failed Open.
func (m *Main) Open(ctx context.Context) error {
	if err := m.Config.Validate(m.API, m.Workers); err != nil {
		return err
	}
	m.closing, m.close = context.WithCancel(context.WithoutCancel(ctx))
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
	if m.Workers {
		if err := m.openWorkers(ctx); err != nil {
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

func (m *Main) openWorkers(ctx context.Context) error {
	var err error
	if m.history, m.relayPool, err = openStore(ctx, m.Config.DatabaseRelayURL, m.Config.PHIKeyFile, "chartstream-relay", commands.EventSpecs()); err != nil {
		return err
	}
	js, err := jetstream.New(m.nats.Conn, jetstream.WithPublishAsyncMaxPending(max(m.Config.Relay.MaxInFlight, 512)))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if m.relay, err = workers.NewRelay(workers.RelayDeps{Events: m.history, DB: m.relayPool, JetStream: js, Logger: m.Logger}, m.Config.Relay); err != nil {
		return err
	}
	// Projectors open PHI and write read models as the app role, each
	// event in its tenant's transaction.
	opener, err := newStore(m.pool, m.Config.PHIKeyFile, commands.EventSpecs())
	if err != nil {
		return err
	}
	m.Config.Projector.Stream, m.Config.Projector.SubjectPrefix = m.Config.Relay.Stream, m.Config.Relay.SubjectPrefix
	m.projector, err = workers.NewProjector(workers.ProjectorDeps{
		JetStream: js, DB: m.pool, Events: opener, Projections: liveProjections(), Logger: m.Logger,
	}, m.Config.Projector)
	return err
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
	// NATS is reported, not required: with NATS down the API keeps
	// committing and the relay catches up when it returns.
	info := map[string]api.StatusFn{}
	if m.nats != nil {
		info["nats"] = func(ctx context.Context) any {
			if err := m.nats.Check(ctx); err != nil {
				return "unavailable: " + err.Error()
			}
			return "ok"
		}
	}
	if m.relay != nil {
		info["relay_lag"] = func(ctx context.Context) any {
			lag, err := m.relay.Lag(ctx)
			if err != nil {
				return "unknown"
			}
			return lag
		}
		// Committed events an open transaction keeps from every reader
		// (eventstore.Store.Horizon): the relay cannot publish past it.
		info["event_store_horizon_lag"] = func(ctx context.Context) any {
			lag, err := m.history.Horizon(ctx, eventstore.Filter{})
			if err != nil {
				return "unknown"
			}
			return map[string]any{"events": lag.Events, "seconds": lag.Age.Seconds()}
		}
	}
	store, err := newStore(m.pool, m.Config.PHIKeyFile, commands.EventSpecs())
	if err != nil {
		return err
	}
	rateCfg, err := m.Config.rateLimits()
	if err != nil {
		return err
	}
	limits, err := ratelimit.New(m.redis, rateCfg)
	if err != nil {
		return err
	}
	idem, err := idempotency.New(m.redis, idempotency.Config{})
	if err != nil {
		return err
	}
	authCfg := m.Config.authConfig()
	authCfg.Logger = m.Logger
	// The verifier refreshes JWKS in the background until m.closing ends.
	if m.verifier, err = auth.NewVerifier(m.closing, authCfg); err != nil {
		return fmt.Errorf("JWT settings: %w", err)
	}
	m.server, err = api.NewServer(api.Deps{
		Logger: m.Logger, Ready: ready, Info: info,
		Events: store, Tokens: m.verifier, Tenants: tenants.NewDirectory(m.pool), Revocations: revocation.New(m.redis, ""),
		Limits: limits, Idempotency: idem, ReadModels: m.pool,
	},
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

// Run serves and runs the workers until ctx is cancelled, then drains
// in-flight requests and waits for the workers to stop. It does not Close.
func (m *Main) Run(ctx context.Context) error {
	m.Logger.Info("chartstream running", "api", m.API, "workers", m.Workers, "addr", fmt.Sprint(m.Addr()))
	var wg sync.WaitGroup
	if m.relay != nil {
		wg.Add(2)
		go func() { defer wg.Done(); _ = m.relay.Run(ctx) }()
		go func() { defer wg.Done(); _ = m.projector.Run(ctx) }()
	}
	var err error
	if m.server != nil {
		err = m.server.Serve(ctx, m.ln)
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	return err
}

// Close stops consumers and closes connections and pools.
func (m *Main) Close() {
	if m.close != nil {
		m.close()
	}
	if m.verifier != nil {
		m.verifier.Close()
	}
	if m.nats != nil {
		m.nats.Close()
	}
	if m.redis != nil {
		_ = m.redis.Close()
	}
	if m.pool != nil {
		m.pool.Close()
	}
	if m.relayPool != nil {
		m.relayPool.Close()
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
