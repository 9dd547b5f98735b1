package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// commandsStack is what bench commands measures: a fresh enterprise
// tenant and the real wiring of a process (Main) with workers of its own,
// serving the API in this process or in a child process.
type commandsStack struct {
	base   string
	tenant tenants.Tenant
	cfg    Config
	minter *auth.Minter
	// pool and store are the app role's: projection status, and the
	// history phase's appends straight to the event store.
	pool  *pgxpool.Pool
	store *eventstore.Store
	// main runs the workers (and the API, unless in a child).
	main *Main
	// api is the API's process when it runs in a child.
	api     *child
	log     io.Writer
	closers []func()
}

// stackOptions say how to run the stack.
type stackOptions struct {
	// adminURL is the owner's URL, which creates the bench tenant.
	adminURL string
	// childAPI serves the API from a child process (`chartstream serve`)
	// rather than this one; the workers stay here.
	childAPI bool
	// env are the settings given as flags, for the child (the
	// environment already holds the rest).
	env map[string]string
}

// openCommandsStack starts the stack for cfg. Its relay and projector have
// names, a stream and subjects of their own and start at the event store's
// head, and the projector projects only the bench tenant, so the bench
// never contends with the platform's workers or another bench's.
func openCommandsStack(ctx context.Context, log io.Writer, cfg Config, o stackOptions) (s *commandsStack, err error) {
	s = &commandsStack{log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if o.childAPI && cfg.NATSURL == "" {
		return s, errors.New("NATS_URL is required with the API in a child process: the bench's workers and the API's process cannot share an embedded NATS")
	}
	dir, err := os.MkdirTemp("", "chartstream-bench-")
	if err != nil {
		return s, err
	}
	s.closers = append(s.closers, func() { os.RemoveAll(dir) })
	// The dev key signs the bench's tokens; the stack's own when it has one.
	if cfg.Auth.DevKeyFile == "" {
		cfg.Auth.DevKeyFile = filepath.Join(dir, "jwt.pem")
		if err := auth.CreateDevKey(cfg.Auth.DevKeyFile); err != nil {
			return s, err
		}
	}
	cfg.Auth.AllowDevKey = true
	cfg.NATSStoreDir = filepath.Join(dir, "nats")
	cfg.HTTPAddr = "127.0.0.1:0"
	if o.childAPI {
		port, err := freePort()
		if err != nil {
			return s, err
		}
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	if err := cfg.Validate(!o.childAPI, true); err != nil {
		return s, err
	}
	key, err := auth.LoadDevKey(cfg.Auth.DevKeyFile)
	if err != nil {
		return s, err
	}
	s.minter = auth.NewMinter(key)

	admin, err := postgres.Connect(ctx, postgres.Config{URL: o.adminURL, MaxConns: 2, ApplicationName: "chartstream-bench"})
	if err != nil {
		return s, err
	}
	s.tenant, err = tenants.NewAdmin(admin).Create(ctx, tenants.NewTenant{Slug: "bench-" + uuid.NewString()[:8], Name: "Benchmark", Tier: chartstream.TierEnterprise})
	admin.Close()
	if err != nil {
		return s, err
	}
	fmt.Fprintf(log, "bench tenant %s (%s)\n", s.tenant.Slug, s.tenant.ID)
	if err := isolateBenchWorkers(ctx, &cfg, s.tenant.ID); err != nil {
		return s, err
	}
	if cfg.NATSURL != "" {
		s.closers = append(s.closers, func() {
			deleteBenchStream(log, cfg.natsConfig(), cfg.Relay.Stream)
			deleteBenchStream(log, cfg.natsConfig(), cfg.Anchor.Stream.Stream)
			deleteBenchStream(log, cfg.natsConfig(), cfg.Deid.Stream)
		})
	}
	if s.store, s.pool, err = openStore(ctx, cfg.DatabaseURL, cfg.Keys, "chartstream-bench", commands.EventSpecs()); err != nil {
		return s, err
	}
	s.closers = append(s.closers, s.pool.Close)

	quiet := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := &Main{Config: cfg, API: !o.childAPI, Workers: true, Logger: quiet}
	s.closers = append(s.closers, m.Close)
	if err := m.Open(ctx); err != nil {
		return s, err
	}
	s.cfg, s.main = m.Config, m
	s.closers = append(s.closers, s.runWorkers(ctx, m))
	if !o.childAPI {
		s.base = "http://" + m.Addr().String()
		return s, nil
	}
	return s, s.startAPIProcess(ctx, dir, o.env)
}

// Stopping the workers: how long to let them finish what the bench wrote,
// and how long to wait for them to stop.
const (
	benchSettle      = 30 * time.Second
	benchStopTimeout = 20 * time.Second
)

// runWorkers runs m until the returned stop. Stop lets the projector apply
// what the bench wrote first: a projector stopped while it still holds a
// tenant's messages may not return (its lanes keep taking the tenant
// again, see workers/schedule.go next), so stop waits a bounded time and
// otherwise leaves the workers to the process's exit.
func (s *commandsStack) runWorkers(ctx context.Context, m *Main) (stop func()) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(runCtx) }()
	return func() {
		if ctx.Err() == nil {
			if err := s.waitProjected(ctx, "projecting before stopping", benchSettle); err != nil {
				fmt.Fprintf(s.log, "stopping: %v\n", err)
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(benchStopTimeout):
			fmt.Fprintf(s.log, "the bench's workers did not stop within %s; left to the process's exit\n", benchStopTimeout)
		}
	}
}

// startAPIProcess runs `chartstream serve` from this binary with the
// stack's settings, the bench's address and dev key, and waits until it is
// ready.
func (s *commandsStack) startAPIProcess(ctx context.Context, dir string, flags map[string]string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	set := map[string]string{"HTTP_ADDR": s.cfg.HTTPAddr, "JWT_ALLOW_DEV_KEY": "true", "JWT_DEV_KEY_FILE": s.cfg.Auth.DevKeyFile, "LOG_LEVEL": "warn"}
	for k, v := range flags {
		if _, ok := set[k]; !ok {
			set[k] = v
		}
	}
	s.api = &child{name: "API", path: exe, args: []string{"serve"}, env: childEnv(os.Environ(), set), logPath: filepath.Join(dir, "api.log")}
	if err := s.api.start(); err != nil {
		return err
	}
	s.closers = append(s.closers, func() {
		s.api.stop(15 * time.Second)
		s.printAPILog()
	})
	s.base = "http://" + s.cfg.HTTPAddr
	fmt.Fprintf(s.log, "API in a child process (pid %d) at %s\n", s.api.pid(), s.base)
	if err := waitReady(ctx, s.base, 30*time.Second, s.api.exited); err != nil {
		return fmt.Errorf("the API's child process: %w", err)
	}
	return nil
}

// printAPILog shows the child's last log lines (warnings and errors only).
func (s *commandsStack) printAPILog() {
	b, err := os.ReadFile(s.api.logPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	fmt.Fprintf(s.log, "API process log, last %d of %d lines:\n", min(10, len(lines)), len(lines))
	for _, l := range lines[max(0, len(lines)-10):] {
		fmt.Fprintln(s.log, "  "+l)
	}
}

// isolateBenchWorkers gives the relay and projector of cfg fresh names, a
// stream and subjects, starting at the event store's head, and limits the
// projector to tenant.
func isolateBenchWorkers(ctx context.Context, cfg *Config, tenant chartstream.TenantID) error {
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	cfg.Relay.Name, cfg.Relay.Stream, cfg.Relay.SubjectPrefix = "bench-"+id, "BENCH_"+strings.ToUpper(id), "bench"+id
	// JetStream reserves MaxBytes on the server's disk; a bench's events
	// fit in 1 GiB.
	cfg.Relay.MaxBytes = 1 << 30
	cfg.Projector.Consumer = "bench-" + id
	cfg.Projector.Tenants = []chartstream.TenantID{tenant}
	cfg.Anchor.Name, cfg.Anchor.Tenants = "bench-"+id, []chartstream.TenantID{tenant}
	cfg.Anchor.Stream.Stream, cfg.Anchor.Stream.SubjectPrefix = "BENCH_ANCHORS_"+strings.ToUpper(id), "benchanchors"+id
	cfg.Deid.Name, cfg.Deid.Stream, cfg.Deid.SubjectPrefix = "bench-deid-"+id, cfg.Relay.Stream+"_DEID", "benchd"+id
	cfg.Deid.Tenants = cfg.Projector.Tenants
	cfg.Analytics.Tenants = cfg.Projector.Tenants
	reader, pool, err := openStore(ctx, cfg.DatabaseRelayURL, cfg.Keys, "chartstream-bench-relay", commands.EventSpecs())
	if err != nil {
		return err
	}
	defer pool.Close()
	head, err := reader.Head(ctx, eventstore.Filter{})
	if err != nil {
		return err
	}
	if err := workers.SaveCheckpoint(ctx, pool, "anchor."+cfg.Anchor.Name, head); err != nil {
		return err
	}
	return workers.SaveCheckpoint(ctx, pool, cfg.Relay.Name, head)
}

// deleteBenchStream removes the bench's stream (and its consumer) from a
// shared NATS server.
func deleteBenchStream(log io.Writer, cfg messaging.Config, stream string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := messaging.Connect(ctx, logging.New(io.Discard, slog.LevelError), cfg)
	if err == nil {
		defer nc.Close()
		var js jetstream.JetStream
		if js, err = jetstream.New(nc.Conn); err == nil {
			err = js.DeleteStream(ctx, stream)
		}
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		fmt.Fprintf(log, "delete stream %s: %v\n", stream, err)
	}
}

// token mints a clinician's bearer token for the bench tenant.
func (s *commandsStack) token(subject string) (string, error) {
	return s.minter.Mint(auth.MintParams{Tenant: s.tenant.ID, Subject: subject, Roles: []chartstream.Role{chartstream.RoleClinician},
		TTL: 24 * time.Hour, Issuer: s.cfg.Auth.Issuer, Audience: s.cfg.Auth.Audience})
}

// waitProjected waits until the tenant's projections have applied every
// committed event, showing the lag in a progress bar.
func (s *commandsStack) waitProjected(ctx context.Context, what string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	bar := newProgress(-1, what)
	defer func() { _ = bar.Finish() }()
	names := projectionNames()
	for {
		st, err := workers.Status(ctx, s.pool, names, s.tenant.ID)
		if err != nil {
			return err
		}
		var lag int64
		for _, p := range st {
			lag = max(lag, p.LagEvents)
		}
		if lag == 0 {
			return nil
		}
		_ = bar.Set64(lag)
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d events still not projected after %s", what, lag, timeout)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// Close stops the stack, last started first.
func (s *commandsStack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
