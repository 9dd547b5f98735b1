package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/metrics"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/internal/tlsconfig"
	"github.com/chartstream/chartstream/workers"
)

// Main is one chartstream process: the API, the workers, or both. Tests
// reuse it to run the real server end to end.
type Main struct {
	Config Config
	// API and Workers choose what the process runs.
	API, Workers bool
	// Logger defaults to JSON on stderr at Config.LogLevel.
	Logger *slog.Logger
	// TracerProvider traces requests, commands, writes, publishing and
	// projecting. Default: the OTLP exporter's when tracing is configured
	// (see newTracerProvider), none otherwise. Tests set their own.
	TracerProvider trace.TracerProvider

	pool      *pgxpool.Pool
	relayPool *pgxpool.Pool
	// sessions is the app role's session-mode pool: leases, LISTEN and
	// the worker topology. It is pool unless DATABASE_SESSION_URL differs.
	sessions *pgxpool.Pool
	topology *workers.TopologyHold
	nats     *messaging.Conn
	redis    *redis.Client
	server   *api.Server
	ln       net.Listener
	// access is the PHI access log the API writes; Run flushes it once
	// the server has drained.
	access    *accesslog.Log
	relay     *workers.Relay
	projector *workers.Projector
	anchor    *workers.Anchor
	analytics *workers.AnalyticsProjector
	// replica is the hot standby's pool (chartstream_analytics), nil when
	// DATABASE_REPLICA_URL is not set.
	replica *pgxpool.Pool
	// deidentifier is nil when DEID_ENABLED is false.
	deidentifier *workers.Deidentifier
	// history is the event store as the relay role: every tenant's events.
	history *eventstore.Store
	// keys is the PHI key provider every event store shares.
	keys phi.KeyProvider
	// phiStores are the event stores that open PHI: their key caches must
	// hear of every shredding (eventstore.Store.WatchKeys).
	phiStores []*eventstore.Store
	verifier  *auth.Verifier
	// metrics is nil unless configured; metricsLn is its listener.
	metrics   *metrics.Metrics
	metricsLn net.Listener
	// sdkTracing is the provider newTracerProvider made, flushed at Close.
	sdkTracing *sdktrace.TracerProvider
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
	if err := m.openTelemetry(ctx); err != nil {
		return err
	}
	var err error
	if m.keys, err = m.Config.Keys.open(ctx); err != nil {
		return err
	}
	if m.pool, err = postgres.Connect(ctx, postgres.Config{URL: m.Config.DatabaseURL, ApplicationName: "chartstream", MaxConns: int32(m.Config.DatabaseMaxConns)}); err != nil {
		return err
	}
	m.sessions = m.pool
	if url := m.Config.DatabaseSessionURL; url != "" && url != m.Config.DatabaseURL {
		if m.sessions, err = postgres.Connect(ctx, postgres.Config{URL: url, ApplicationName: "chartstream-sessions", MaxConns: 8}); err != nil {
			return err
		}
	}
	// The API process does not need NATS unless it was told where it is;
	// workers need it, embedded if no URL is given.
	if m.Workers || m.Config.NATSURL != "" {
		if m.nats, err = messaging.Connect(ctx, m.Logger, m.Config.natsConfig()); err != nil {
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
	m.watchResources()
	return nil
}

func (m *Main) openWorkers(ctx context.Context) error {
	var err error
	if m.topology, err = workers.HoldTopology(ctx, m.sessions, workers.TopologyScope(m.Config.Relay, m.Config.Projector), m.nats.Embedded(), m.Logger); err != nil {
		return err
	}
	if m.relayPool, err = postgres.Connect(ctx, postgres.Config{URL: m.Config.DatabaseRelayURL, ApplicationName: "chartstream-relay"}); err != nil {
		return err
	}
	if m.history, err = newStore(m.relayPool, m.keys, commands.EventSpecs(), eventstore.Config{}); err != nil {
		return err
	}
	js, err := jetstream.New(m.nats.Conn, jetstream.WithPublishAsyncMaxPending(max(m.Config.Relay.MaxInFlight, 512)))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	signer, err := signing.LoadSigner(m.Config.MessageSigningKeyFile)
	if err != nil {
		return fmt.Errorf("MESSAGE_SIGNING_KEY_FILE: %w", err)
	}
	verifier := signer.Public()
	if files := m.Config.MessageVerifyKeyFiles; files != "" {
		if verifier, err = signing.LoadVerifier(strings.Split(files, ",")...); err != nil {
			return fmt.Errorf("MESSAGE_VERIFY_KEY_FILES: %w", err)
		}
	}
	relayDeps := workers.RelayDeps{Events: m.history, DB: m.relayPool, Sessions: m.sessions, JetStream: js,
		Signer: signer, Logger: m.Logger, TracerProvider: m.TracerProvider}
	if m.anchor, err = m.newAnchor(js); err != nil {
		return err
	}
	// Projectors open PHI and write read models as the app role, each
	// event in its tenant's transaction.
	opener, err := newStore(m.pool, m.keys, commands.EventSpecs(), m.storeConfig())
	if err != nil {
		return err
	}
	m.phiStores = append(m.phiStores, opener)
	m.Config.Projector.Stream, m.Config.Projector.SubjectPrefix = m.Config.Relay.Stream, m.Config.Relay.SubjectPrefix
	projectorDeps := workers.ProjectorDeps{
		JetStream: js, DB: m.pool, Sessions: m.sessions, Events: opener, Heads: m.history,
		Projections: liveProjections(), Verifier: verifier, Logger: m.Logger, TracerProvider: m.TracerProvider,
	}
	if m.metrics != nil {
		relayDeps.Published, projectorDeps.Applied = m.metrics.Published, m.metrics.Applied
	}
	if m.relay, err = workers.NewRelay(relayDeps, m.Config.Relay); err != nil {
		return err
	}
	if m.projector, err = workers.NewProjector(projectorDeps, m.Config.Projector); err != nil {
		return err
	}
	// The analytics read no PHI: the store is only for gaps, never opened.
	m.Config.Analytics.Stream, m.Config.Analytics.SubjectPrefix = m.Config.Relay.Stream, m.Config.Relay.SubjectPrefix
	m.analytics, err = workers.NewAnalyticsProjector(workers.AnalyticsDeps{
		Dial: func() (*nats.Conn, error) { return m.nats.Dial("chartstream-analytics") },
		DB:   m.pool, Sessions: m.sessions, Events: opener, Heads: m.history, Verifier: verifier, Logger: m.Logger,
	}, m.Config.Analytics)
	if err != nil {
		return err
	}
	return m.openDeidentifier(js, opener, signer, verifier)
}

// newAnchor returns the worker that signs checkpoints. It reads every
// tenant's events as the relay role; the private key stays in this
// process (CHECKPOINT_SIGNING_KEY_FILE).
func (m *Main) newAnchor(js jetstream.JetStream) (*workers.Anchor, error) {
	signer, err := signing.LoadSigner(m.Config.CheckpointSigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("CHECKPOINT_SIGNING_KEY_FILE: %w", err)
	}
	keys := signer.Public()
	if m.Config.CheckpointVerifyKeyFiles != "" {
		if keys, err = checkpointKeys(m.Config.CheckpointVerifyKeyFiles, ""); err != nil {
			return nil, err
		}
	}
	return workers.NewAnchor(workers.AnchorDeps{Events: m.history, DB: m.relayPool, Sessions: m.sessions,
		Stream: workers.NewAnchorStream(js, m.Config.Anchor.Stream), Signer: signer, Keys: keys, Logger: m.Logger}, m.Config.Anchor)
}

func (m *Main) openAPI(ctx context.Context) error {
	opts, err := m.Config.redisOptions()
	if err != nil {
		return err
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
				m.Logger.WarnContext(ctx, "readiness: NATS unavailable", logging.Error(err))
				return "unavailable"
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
	store, err := newStore(m.pool, m.keys, commands.EventSpecs(), m.storeConfig())
	if err != nil {
		return err
	}
	m.phiStores = append(m.phiStores, store)
	reader, err := m.openAnalytics(ctx, info)
	if err != nil {
		return err
	}
	var runner commands.Runner = commands.New(store, nil)
	if m.TracerProvider != nil {
		runner = commands.Traced(runner, m.TracerProvider)
	}
	deps := api.Deps{
		Logger: m.Logger, Ready: ready, Info: info,
		Commands: commands.Logged(runner, m.Logger), Tenants: tenants.NewDirectory(m.pool), Revocations: revocation.New(m.redis, ""),
		ReadModels: m.pool, Analytics: reader, TracerProvider: m.TracerProvider,
	}
	if m.metrics != nil {
		deps.Observer, deps.Metrics = m.metrics, m.metrics.Handler()
	}
	rateCfg, err := m.Config.rateLimits()
	if err != nil {
		return err
	}
	// No tenant may hold more than half of the pool with requests in
	// flight, whatever its tier.
	rateCfg.InFlightCeiling = max(1, int(m.pool.Config().MaxConns)/2)
	limits, err := ratelimit.New(m.redis, rateCfg)
	if err != nil {
		return err
	}
	idem, err := idempotency.New(m.redis, idempotency.Config{})
	if err != nil {
		return err
	}
	if m.access, err = accesslog.New(m.pool, m.Logger, m.Config.AccessLog); err != nil {
		return err
	}
	keys, err := checkpointKeys(m.Config.CheckpointVerifyKeyFiles, m.Config.CheckpointSigningKeyFile)
	if err != nil {
		return err
	}
	auditor := audit.Verifier{History: store, Keys: keys, AnchorGrace: m.Config.AnchorGrace}
	if m.nats != nil {
		js, err := jetstream.New(m.nats.Conn)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		auditor.Anchors = workers.NewAnchorStream(js, m.Config.Anchor.Stream)
	}
	authCfg := m.Config.authConfig()
	authCfg.Logger = m.Logger
	// The verifier refreshes JWKS in the background until m.closing ends.
	if m.verifier, err = auth.NewVerifier(m.closing, authCfg); err != nil {
		return fmt.Errorf("JWT settings: %w", err)
	}
	var tlsCfg *tls.Config
	if m.Config.TLSCertFile != "" {
		if tlsCfg, err = tlsconfig.Server(m.Config.TLSCertFile, m.Config.TLSKeyFile, m.Logger); err != nil {
			return err
		}
	}
	if deps.AsyncAPI, err = m.Config.asyncAPI(); err != nil {
		return fmt.Errorf("asyncapi document: %w", err)
	}
	deps.Tokens, deps.Limits, deps.Idempotency = m.verifier, limits, idem
	deps.Access, deps.History, deps.Auditor = m.access, store, auditor
	m.server, err = api.NewServer(deps, api.Config{Addr: m.Config.HTTPAddr, ShutdownTimeout: m.Config.ShutdownTimeout,
		RequestTimeout: m.Config.RequestTimeout, LongRequestTimeout: m.Config.LongRequestTimeout,
		ConsistencyWait: m.Config.ConsistencyWait, MetricsToken: m.Config.Metrics.Token, TLS: tlsCfg})
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
	// Workers that lost their place in the topology to a process with
	// another NATS stop, and so does the process.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, s := range m.phiStores {
		wg.Add(1)
		go func() { defer wg.Done(); s.WatchKeys(ctx, m.sessions) }()
	}
	m.runTelemetry(ctx, &wg)
	if m.relay != nil {
		go func() {
			select {
			case <-m.topology.Lost():
				cancel()
			case <-ctx.Done():
			}
		}()
		wg.Add(4)
		go func() { defer wg.Done(); _ = m.relay.Run(ctx) }()
		go func() { defer wg.Done(); _ = m.projector.Run(ctx) }()
		go func() { defer wg.Done(); _ = m.anchor.Run(ctx) }()
		go func() { defer wg.Done(); _ = m.analytics.Run(ctx) }()
		if m.deidentifier != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = m.deidentifier.Run(ctx) }()
		}
	}
	var err error
	if m.server != nil {
		err = m.server.Serve(ctx, m.ln)
		// Drained: every PHI read has recorded its entry; write them all
		// before the pools close.
		flushCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), m.Config.ShutdownTimeout)
		if ferr := m.access.Close(flushCtx); ferr != nil {
			m.Logger.Error("PHI access entries lost at shutdown", logging.Error(ferr))
			err = errors.Join(err, ferr)
		}
		stop()
	} else {
		<-ctx.Done()
	}
	cancel() // the server may stop on its own: the rest follows
	wg.Wait()
	return err
}

// Close stops consumers and closes connections and pools.
func (m *Main) Close() {
	if m.close != nil {
		m.close()
	}
	m.closeTelemetry()
	if m.verifier != nil {
		m.verifier.Close()
	}
	if m.access != nil {
		if err := m.access.Close(context.Background()); err != nil && m.Logger != nil {
			m.Logger.Error("PHI access entries lost at close", logging.Error(err))
		}
	}
	if m.topology != nil {
		m.topology.Release()
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
	if m.replica != nil {
		m.replica.Close()
	}
	if m.sessions != nil && m.sessions != m.pool {
		m.sessions.Close()
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
		Args:  badInput(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMain(cmd, m) },
	}
	m.Config.flags(cmd.Flags())
	return cmd
}

func newWorkCmd() *cobra.Command {
	m := &Main{Workers: true}
	cmd := &cobra.Command{
		Use:   "work",
		Short: "Run the workers (relay, read model and analytics projectors)",
		Args:  badInput(cobra.NoArgs),
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
		Args:  badInput(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMain(cmd, m) },
	}
	m.Config.flags(cmd.Flags())
	return cmd
}
