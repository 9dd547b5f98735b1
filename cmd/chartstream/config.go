package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/tlsconfig"
	"github.com/chartstream/chartstream/projections/analytics"
	"github.com/chartstream/chartstream/workers"
)

// defaultHTTPAddr is the API's listen address when HTTP_ADDR is unset.
const defaultHTTPAddr = "127.0.0.1:18080"

// Config is the configuration of the long-running process (serve, work,
// all). Each field is set by an environment variable or its flag.
type Config struct {
	// HTTPAddr is the API's listen address (HTTP_ADDR). Default
	// 127.0.0.1:18080.
	HTTPAddr string
	// TLSCertFile and TLSKeyFile are the API's certificate (chain) and
	// key, PEM (TLS_CERT_FILE, TLS_KEY_FILE): both set, the API speaks
	// HTTPS only, TLS 1.2 at least, and picks up a renewed pair without a
	// restart. Default neither: plain HTTP (behind a TLS-terminating load
	// balancer, or on loopback).
	TLSCertFile, TLSKeyFile string
	// DatabaseURL is the app role's PostgreSQL URL (DATABASE_URL). Required.
	DatabaseURL string
	// DatabaseRelayURL is the relay role's URL (DATABASE_RELAY_URL): it
	// reads every tenant's events. Required for the workers.
	DatabaseRelayURL string
	// DatabaseSessionURL is the app role's URL in session mode
	// (DATABASE_SESSION_URL), for what needs a session rather than a
	// transaction: the workers' leases, the relay's LISTEN, and the LISTEN
	// that tells every process's key cache of a shredding. Behind
	// PgBouncer in transaction mode, point it at PostgreSQL directly or
	// at a session-mode pool. Default DATABASE_URL.
	DatabaseSessionURL string
	// DatabaseReplicaURL is the hot standby's URL as chartstream_analytics
	// (DATABASE_REPLICA_URL): the analytics API reads it, never the
	// primary. Optional: without it /v1/analytics answers 503.
	DatabaseReplicaURL string
	// AnalyticsMaxReplicaLag is how far behind the primary the standby may
	// be for the analytics API to answer (ANALYTICS_MAX_REPLICA_LAG).
	// Default 30s.
	AnalyticsMaxReplicaLag time.Duration
	// AnalyticsMinCell is the small-cell threshold of the analytics API
	// (ANALYTICS_MIN_CELL): counts from 1 to it minus one are suppressed.
	// Default 11.
	AnalyticsMinCell int
	// DatabaseMaxConns sizes the app role's pool (DATABASE_MAX_CONNS).
	// Default: the URL's pool_max_conns, else 32. Each tenant may hold at
	// most half of it with requests in flight in one API process.
	DatabaseMaxConns int
	// Keys is the PHI key provider (PHI_KEY_PROVIDER, default local, with
	// PHI_KEY_FILE; or aws-kms with AWS_KMS_*).
	Keys phiKeys
	// MessageSigningKeyFile is the relay's Ed25519 private key
	// (MESSAGE_SIGNING_KEY_FILE, PKCS #8 PEM): it signs every event message.
	// Required for the workers.
	MessageSigningKeyFile string
	// MessageVerifyKeyFiles are the public keys the projector accepts
	// messages signed by (MESSAGE_VERIFY_KEY_FILES, comma-separated PEM
	// files; the old and the new while rotating). Default the signing
	// key's own public half.
	MessageVerifyKeyFiles string
	// CheckpointSigningKeyFile is the anchor worker's Ed25519 private key
	// (CHECKPOINT_SIGNING_KEY_FILE, PKCS #8 PEM): it signs each tenant's
	// checkpoints. Required for the workers. The database never sees it.
	CheckpointSigningKeyFile string
	// CheckpointVerifyKeyFiles are the public keys checkpoints are
	// verified with (CHECKPOINT_VERIFY_KEY_FILES, comma-separated PEM
	// files; the old and the new while rotating). Default the signing
	// key file's public half beside it (".pub").
	CheckpointVerifyKeyFiles string
	// AccessLog tunes the PHI access log; its defaults (a flush every
	// 100ms) need no setting.
	AccessLog accesslog.Config
	// Anchor configures the anchor worker and CLINICAL_ANCHORS
	// (ANCHOR_INTERVAL, ANCHOR_STREAM).
	Anchor workers.AnchorConfig
	// AnchorGrace is how old an event may be before GET /v1/audit/verify
	// expects a signed checkpoint to cover it (ANCHOR_GRACE). Default
	// audit.DefaultAnchorGrace.
	AnchorGrace time.Duration
	// EventStore tunes the event store: AppendConcurrency is the append
	// transactions in flight at once (APPEND_CONCURRENCY), default 2;
	// about the database's cores.
	EventStore eventstore.Config
	// Relay configures the JetStream stream and the relay (RELAY_*).
	Relay workers.RelayConfig
	// Projector configures the read model projector (PROJECTOR_*).
	Projector workers.ProjectorConfig
	// Analytics configures the analytics projector (defaults only; its
	// stream is the relay's).
	Analytics workers.AnalyticsConfig
	// Deid configures the de-identifier (DEID_*).
	Deid deidSettings
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
	// starts an embedded server for all.
	NATSURL string
	// NATS are the NATS connection's credentials and TLS (NATS_USER,
	// NATS_PASSWORD, NATS_CREDS_FILE, NATS_NKEY_SEED_FILE, NATS_TLS_*).
	NATS messaging.Config
	// NATSStoreDir is the embedded server's JetStream store
	// (NATS_STORE_DIR). Default .local/nats-embedded.
	NATSStoreDir string
	// RedisURL is Redis for idempotency keys, revocation and rate limits
	// (REDIS_URL); rediss:// for TLS. Required for serve and all.
	RedisURL string
	// RedisTLSCAFile is the CA that signed Redis's certificate
	// (REDIS_TLS_CA_FILE), with a rediss:// URL. Default the system's CAs.
	RedisTLSCAFile string
	// LogLevel is debug, info, warn or error (LOG_LEVEL). Default info.
	LogLevel string
	// RequestTimeout is every API request's deadline (REQUEST_TIMEOUT).
	// Default 10s.
	RequestTimeout time.Duration
	// LongRequestTimeout is the deadline of the long requests, exports and
	// verification (LONG_REQUEST_TIMEOUT). Default 10m.
	LongRequestTimeout time.Duration
	// ConsistencyWait bounds how long a read with a consistency token
	// waits for the projections before answering stale (CONSISTENCY_WAIT).
	// Default 2s.
	ConsistencyWait time.Duration
	// ShutdownTimeout bounds draining on SIGTERM (SHUTDOWN_TIMEOUT).
	// Default 15s.
	ShutdownTimeout time.Duration
	// Metrics configures the Prometheus metrics (METRICS_*): off unless
	// METRICS_ADDR or METRICS_TOKEN is set.
	Metrics MetricsConfig
	// OTLPEndpoint is the OpenTelemetry collector's base URL
	// (OTEL_EXPORTER_OTLP_ENDPOINT; traces go to its /v1/traces). Traces
	// are off unless it or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; the
	// exporter reads the other OTEL_* variables itself.
	OTLPEndpoint string
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

// redisOptions are the Redis client's options from REDIS_URL, trusting
// REDIS_TLS_CA_FILE for a rediss:// URL. Errors name the setting, never
// the URL (it holds the password).
func (c Config) redisOptions() (*redis.Options, error) {
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, errors.New("REDIS_URL is malformed")
	}
	if opts.TLSConfig != nil {
		opts.TLSConfig.MinVersion = tlsconfig.MinVersion
		if c.RedisTLSCAFile != "" {
			if opts.TLSConfig.RootCAs, err = tlsconfig.CAPool(c.RedisTLSCAFile); err != nil {
				return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
			}
		}
	}
	return opts, nil
}

// analyticsConfig is the analytics API's reader configuration.
func (c Config) analyticsConfig() analytics.ReaderConfig {
	return analytics.ReaderConfig{MaxLag: c.AnalyticsMaxReplicaLag, MinCell: c.AnalyticsMinCell}
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
	stringFlag(fs, &c.HTTPAddr, "http-addr", "HTTP_ADDR", defaultHTTPAddr, "API listen address")
	stringFlag(fs, &c.TLSCertFile, "tls-cert-file", "TLS_CERT_FILE", "", "API certificate (PEM, chain); with --tls-key-file the API serves HTTPS only")
	stringFlag(fs, &c.TLSKeyFile, "tls-key-file", "TLS_KEY_FILE", "", "API certificate's private key (PEM)")
	stringFlag(fs, &c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role (required)")
	stringFlag(fs, &c.DatabaseRelayURL, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role (required for workers)")
	stringFlag(fs, &c.DatabaseSessionURL, "database-session-url", "DATABASE_SESSION_URL", "", "app role URL in session mode, for leases and LISTEN (default DATABASE_URL)")
	stringFlag(fs, &c.DatabaseReplicaURL, "database-replica-url", "DATABASE_REPLICA_URL", "", "hot standby URL as chartstream_analytics, for the analytics API (optional)")
	durationFlag(fs, &c.AnalyticsMaxReplicaLag, "analytics-max-replica-lag", "ANALYTICS_MAX_REPLICA_LAG", 30*time.Second, "analytics answers 503 when the standby lags more")
	intFlag(fs, &c.AnalyticsMinCell, "analytics-min-cell", "ANALYTICS_MIN_CELL", 11, "analytics suppress counts from 1 to this minus one")
	phiKeyFlags(fs, &c.Keys)
	stringFlag(fs, &c.MessageSigningKeyFile, "message-signing-key-file", "MESSAGE_SIGNING_KEY_FILE", "", "Ed25519 key the relay signs event messages with (required for workers)")
	stringFlag(fs, &c.MessageVerifyKeyFiles, "message-verify-key-files", "MESSAGE_VERIFY_KEY_FILES", "", "public keys whose signatures the projector accepts, comma-separated (default: the signing key's)")
	stringFlag(fs, &c.CheckpointSigningKeyFile, "checkpoint-signing-key-file", "CHECKPOINT_SIGNING_KEY_FILE", "", "Ed25519 key the anchor worker signs checkpoints with (required for workers)")
	checkpointKeyFlag(fs, &c.CheckpointVerifyKeyFiles, "checkpoint-verify-key-files")
	durationFlag(fs, &c.Anchor.Interval, "anchor-interval", "ANCHOR_INTERVAL", 5*time.Second, "how often each tenant with new events gets a signed checkpoint")
	anchorGraceFlag(fs, &c.AnchorGrace)
	stringFlag(fs, &c.Anchor.Stream.Stream, "anchor-stream", "ANCHOR_STREAM", workers.DefaultAnchorStream, "JetStream stream of signed checkpoints")
	intFlag(fs, &c.EventStore.AppendConcurrency, "append-concurrency", "APPEND_CONCURRENCY", 2, "append transactions in flight; appends arriving meanwhile share the next one")
	stringFlag(fs, &c.Relay.Stream, "relay-stream", "RELAY_STREAM", workers.DefaultStream, "JetStream stream the relay publishes to")
	intFlag(fs, &c.Relay.Replicas, "relay-replicas", "RELAY_REPLICAS", 1, "stream replicas: 1 single node, 3 in a cluster")
	durationFlag(fs, &c.Relay.DuplicateWindow, "relay-duplicate-window", "RELAY_DUPLICATE_WINDOW", 10*time.Minute, "JetStream duplicate window")
	durationFlag(fs, &c.Relay.MaxAge, "relay-max-age", "RELAY_MAX_AGE", 30*24*time.Hour, "stream retention by age")
	intFlag(fs, &c.Projector.Lanes, "projector-lanes", "PROJECTOR_LANES", 4, "tenants' events applied concurrently (each tenant in order)")
	c.Deid.flags(fs)
	int64Flag(fs, &c.Relay.MaxBytes, "relay-max-bytes", "RELAY_MAX_BYTES", 10<<30, "stream retention by size in bytes (-1 unlimited)")
	stringFlag(fs, &c.NATSURL, "nats-url", "NATS_URL", "", "external NATS URL; empty starts an embedded JetStream server")
	natsAuthFlags(fs, &c.NATS)
	stringFlag(fs, &c.NATSStoreDir, "nats-store-dir", "NATS_STORE_DIR", ".local/nats-embedded", "embedded NATS JetStream store directory")
	stringFlag(fs, &c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL, rediss:// for TLS (required for the API)")
	stringFlag(fs, &c.RedisTLSCAFile, "redis-tls-ca-file", "REDIS_TLS_CA_FILE", "", "CA that signed Redis's certificate (with rediss://; default the system's)")
	stringFlag(fs, &c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	intFlag(fs, &c.DatabaseMaxConns, "database-max-conns", "DATABASE_MAX_CONNS", 0, "app role pool size (default: the URL's pool_max_conns, else 32)")
	durationFlag(fs, &c.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", 10*time.Second, "every API request's deadline")
	durationFlag(fs, &c.LongRequestTimeout, "long-request-timeout", "LONG_REQUEST_TIMEOUT", 10*time.Minute, "the deadline of exports and verifications")
	durationFlag(fs, &c.ConsistencyWait, "consistency-wait", "CONSISTENCY_WAIT", 2*time.Second, "how long a read with a consistency token waits for the projections")
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
	boolFlag(fs, &c.Auth.AllowNoJTI, "jwt-allow-no-jti", "JWT_ALLOW_NO_JTI", false, "accept tokens without a jti (they cannot be revoked)")
	intFlag(fs, &c.RateStandard, "rate-limit-standard", "RATE_LIMIT_STANDARD", 200, "requests/s per standard-tier tenant")
	intFlag(fs, &c.RatePremium, "rate-limit-premium", "RATE_LIMIT_PREMIUM", 1000, "requests/s per premium-tier tenant")
	intFlag(fs, &c.RateEnterprise, "rate-limit-enterprise", "RATE_LIMIT_ENTERPRISE", 5000, "requests/s per enterprise-tier tenant")
	stringFlag(fs, &c.RateOverrides, "rate-limit-overrides", "RATE_LIMIT_OVERRIDES", "", "per-tenant requests/s: tenant-id=rps,...")
	stringFlag(fs, &c.Metrics.Addr, "metrics-addr", "METRICS_ADDR", "", "Prometheus metrics listener, host:port (default none)")
	stringFlag(fs, &c.Metrics.Token, "metrics-token", "METRICS_TOKEN", "", "bearer token that also serves /metrics on the API listener")
	stringFlag(fs, &c.Metrics.TenantLabels, "metrics-tenant-labels", "METRICS_TENANT_LABELS", "", "tenant ids whose metrics carry their own tenant label, comma-separated")
	intFlag(fs, &c.Metrics.TopTenants, "metrics-tenant-top", "METRICS_TENANT_TOP", 10, "the busiest tenants also given their own tenant label (0 to 100)")
	durationFlag(fs, &c.Metrics.SampleInterval, "metrics-sample-interval", "METRICS_SAMPLE_INTERVAL", 15*time.Second, "how often relay and projection lags are measured")
	stringFlag(fs, &c.OTLPEndpoint, "otel-exporter-otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "", "OpenTelemetry collector base URL (OTLP/HTTP); traces are off without it")
}

// checkpointKeyFlag defines the flag of the public keys checkpoints are
// verified with (CHECKPOINT_VERIFY_KEY_FILES).
func checkpointKeyFlag(fs *pflag.FlagSet, p *string, name string) {
	stringFlag(fs, p, name, "CHECKPOINT_VERIFY_KEY_FILES", "", "public keys checkpoints are verified with, comma-separated PEM files (default: CHECKPOINT_SIGNING_KEY_FILE's .pub)")
}

// checkpointKeys loads the public keys checkpoints are verified with: the
// files given, or else the signing key's public half beside it.
func checkpointKeys(files, signingKeyFile string) (*signing.Verifier, error) {
	if files == "" {
		if signingKeyFile == "" {
			return nil, errors.New("CHECKPOINT_VERIFY_KEY_FILES is required (or CHECKPOINT_SIGNING_KEY_FILE, whose .pub is used)")
		}
		files = signingKeyFile + ".pub"
	}
	v, err := signing.LoadVerifier(strings.Split(files, ",")...)
	if err != nil {
		return nil, fmt.Errorf("CHECKPOINT_VERIFY_KEY_FILES: %w", err)
	}
	return v, nil
}

// natsAuthFlags defines the NATS connection's credential and TLS flags.
func natsAuthFlags(fs *pflag.FlagSet, c *messaging.Config) {
	stringFlag(fs, &c.User, "nats-user", "NATS_USER", "", "NATS user (with NATS_PASSWORD)")
	stringFlag(fs, &c.Password, "nats-password", "NATS_PASSWORD", "", "NATS password")
	stringFlag(fs, &c.CredsFile, "nats-creds-file", "NATS_CREDS_FILE", "", "NATS user JWT and NKey seed (.creds file)")
	stringFlag(fs, &c.NKeySeedFile, "nats-nkey-seed-file", "NATS_NKEY_SEED_FILE", "", "NATS NKey seed file")
	stringFlag(fs, &c.TLSCAFile, "nats-tls-ca-file", "NATS_TLS_CA_FILE", "", "CA that signed the NATS server's certificate")
	stringFlag(fs, &c.TLSCertFile, "nats-tls-cert-file", "NATS_TLS_CERT_FILE", "", "client certificate for mutual TLS with NATS")
	stringFlag(fs, &c.TLSKeyFile, "nats-tls-key-file", "NATS_TLS_KEY_FILE", "", "client key for mutual TLS with NATS")
}

// natsConfig is the NATS connection's configuration.
func (c Config) natsConfig() messaging.Config {
	n := c.NATS
	n.URL, n.StoreDir = c.NATSURL, c.NATSStoreDir
	return n
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
	if c.AnchorGrace <= c.Anchor.Interval {
		errs = append(errs, errors.New("ANCHOR_GRACE must be longer than ANCHOR_INTERVAL"))
	}
	if c.DatabaseSessionURL != "" {
		checkURL("DATABASE_SESSION_URL", c.DatabaseSessionURL)
	}
	if workers {
		checkURL("DATABASE_RELAY_URL", c.DatabaseRelayURL)
		if c.MessageSigningKeyFile == "" {
			errs = append(errs, errors.New("MESSAGE_SIGNING_KEY_FILE is required for the workers"))
		}
		if c.CheckpointSigningKeyFile == "" {
			errs = append(errs, errors.New("CHECKPOINT_SIGNING_KEY_FILE is required for the workers"))
		}
		if c.Anchor.Interval < 100*time.Millisecond {
			errs = append(errs, errors.New("ANCHOR_INTERVAL must be at least 100ms"))
		}
		if !api && c.NATSURL == "" {
			errs = append(errs, errors.New("NATS_URL is required for `chartstream work`: the embedded NATS server is only for a single `chartstream all`"))
		}
	}
	if err := c.Keys.Validate(); err != nil {
		errs = append(errs, err)
	}
	if api {
		if c.DatabaseReplicaURL != "" {
			checkURL("DATABASE_REPLICA_URL", c.DatabaseReplicaURL)
		}
		if err := c.analyticsConfig().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("ANALYTICS settings: %w", err))
		}
		if err := c.authConfig().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("JWT settings: %w", err))
		}
		if _, err := c.rateLimits(); err != nil {
			errs = append(errs, fmt.Errorf("RATE_LIMIT settings: %w", err))
		}
		if c.RedisURL == "" {
			errs = append(errs, errors.New("REDIS_URL is required"))
		} else if opts, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, errors.New("REDIS_URL is malformed"))
		} else if c.RedisTLSCAFile != "" && opts.TLSConfig == nil {
			errs = append(errs, errors.New("REDIS_TLS_CA_FILE needs a rediss:// REDIS_URL"))
		}
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, errors.New("HTTP_ADDR must be host:port"))
		}
		if err := tlsconfig.CheckPair("TLS", c.TLSCertFile, c.TLSKeyFile); err != nil {
			errs = append(errs, err)
		}
		if c.CheckpointVerifyKeyFiles == "" && c.CheckpointSigningKeyFile == "" {
			errs = append(errs, errors.New("CHECKPOINT_VERIFY_KEY_FILES is required for the API (the public keys its verification trusts)"))
		}
	}
	if err := c.natsConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Deid.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.EventStore.AppendConcurrency < 1 {
		errs = append(errs, errors.New("APPEND_CONCURRENCY must be at least 1"))
	}
	if n, set := postgres.URLMaxConns(c.DatabaseURL); c.DatabaseMaxConns < 0 || c.DatabaseMaxConns > math.MaxInt32 {
		errs = append(errs, errors.New("DATABASE_MAX_CONNS must be a positive number"))
	} else if set && c.DatabaseMaxConns > 0 && int32(c.DatabaseMaxConns) != n {
		errs = append(errs, fmt.Errorf("DATABASE_MAX_CONNS=%d disagrees with pool_max_conns=%d in DATABASE_URL", c.DatabaseMaxConns, n))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("REQUEST_TIMEOUT must not be negative"))
	}
	if c.ConsistencyWait < 0 || (c.RequestTimeout > 0 && c.ConsistencyWait >= c.RequestTimeout) {
		errs = append(errs, errors.New("CONSISTENCY_WAIT must not be negative, and shorter than REQUEST_TIMEOUT"))
	}
	if c.LongRequestTimeout < 0 {
		errs = append(errs, errors.New("LONG_REQUEST_TIMEOUT must not be negative"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must not be negative"))
	}
	errs = append(errs, c.Metrics.validate()...)
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL"))
		}
	}
	if _, ok := logging.ParseLevel(c.LogLevel); !ok {
		errs = append(errs, errors.New("LOG_LEVEL must be debug, info, warn or error"))
	}
	return errors.Join(errs...)
}
