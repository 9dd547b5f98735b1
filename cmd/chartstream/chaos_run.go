package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
)

// Timings of a run outside the faults.
const (
	startTimeout  = 60 * time.Second
	stopGrace     = 15 * time.Second
	settlePoll    = 2 * time.Second
	settleReport  = 10 * time.Second
	verifyTimeout = 10 * time.Minute
)

// chaosRun is one run's processes and state.
type chaosRun struct {
	cfg      chaosConfig
	log      io.Writer
	dir      string
	env      []string
	natsAddr string
	nats     *child
	serves   [2]*child
	workers  [2]*child
	lease    *leaseTracker
	// all and allBase are all-sigkill's one process and its API.
	all     *child
	allBase string
}

// logf prints a progress line.
func (r *chaosRun) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "chaos: "+format+"\n", args...)
}

// runChaos runs the whole thing and returns the report. An error means the
// run could not be carried out; the report says how the platform did.
func runChaos(ctx context.Context, cfg chaosConfig, log io.Writer) (*chaosReport, error) {
	dir, err := chaosRunDir(cfg.LocalDir, time.Now())
	if err != nil {
		return nil, err
	}
	r := &chaosRun{cfg: cfg, log: log, dir: dir, lease: newLeaseTracker()}
	r.logf("scenario %s; run directory %s (children's logs: nats-server.log, serve-*.log, work-*.log, all.log)", cfg.Scenario, dir)
	var passed bool
	defer func() {
		r.stopAll()
		if passed {
			// The JetStream store is large and proves nothing more.
			_ = os.RemoveAll(r.natsStore())
		}
	}()

	admin, err := postgres.Connect(ctx, postgres.Config{URL: cfg.DatabaseAdminURL, MaxConns: 2, ApplicationName: "chartstream-chaos"})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	tenant, err := tenants.NewAdmin(admin).Create(ctx, tenants.NewTenant{Slug: "chaos-" + uuid.NewString()[:8], Name: "Chaos run", Tier: chartstream.TierEnterprise})
	if err != nil {
		return nil, fmt.Errorf("create the chaos tenant: %w", err)
	}
	r.logf("tenant %s (%s)", tenant.Slug, tenant.ID)
	tokens, err := mintChaosTokens(cfg, tenant.ID)
	if err != nil {
		return nil, err
	}
	l := newLedger()
	var servers []string
	var load loadPlan
	schedule := faultSchedule(cfg.Duration)
	if cfg.Scenario == scenarioAllSIGKILL {
		servers, load, schedule, err = r.prepareAllSIGKILL(ctx, tokens, l)
	} else {
		servers, err = r.startProcesses(ctx)
	}
	if err != nil {
		return nil, err
	}

	// The load and the faults, side by side for the duration.
	if cfg.NoFaults {
		schedule = nil
	}
	var plan []string
	for _, f := range schedule {
		plan = append(plan, fmt.Sprintf("%s at %.0f%% (%.1fs)", f.Kind, f.Fraction*100, f.At.Seconds()))
	}
	if len(plan) == 0 {
		plan = []string{"none"}
	}
	r.logf("load: %d clients for %s; faults: %s", cfg.Clients, cfg.Duration, strings.Join(plan, ", "))
	stop := make(chan struct{})
	loaded := make(chan struct{})
	start := time.Now()
	go func() { runLoad(ctx, stop, servers, tokens, l, load); close(loaded) }()
	faults := r.injectFaults(ctx, start, schedule)
	_ = sleepCtx(ctx, time.Until(start.Add(cfg.Duration)))
	close(stop)
	stopped := time.Now()
	loadTime := stopped.Sub(start)
	r.logf("load stopped at %.1fs; waiting for commands in flight", loadTime.Seconds())
	<-loaded
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	acked, outcomes := l.snapshot()
	r.logf("%d commands acknowledged; checking", len(acked))

	report := &chaosReport{Scenario: cfg.Scenario, Tenant: tenant.ID.String(), DurationSeconds: cfg.Duration.Seconds(), Clients: cfg.Clients, RunDir: dir, Faults: faults}
	var v verdict
	var settled settleResult
	if cfg.Scenario == scenarioAllSIGKILL {
		o := outcomes[kindObservation]
		report.Pace = &paceResult{Target: sigkillRate, Sent: perSecond(o.Sent, loadTime), Acknowledged: perSecond(o.Acknowledged, loadTime)}
		v, settled, err = r.checkAfterAll(ctx, tenant.ID, acked, stopped)
		report.Observations = &v.Observations
		report.StreamRead = "after the run, from the JetStream store `all` left (embedded NATS), opened with --nats-server"
	} else {
		v, settled, err = r.checkLive(ctx, tenant.ID, acked)
	}
	if err != nil {
		return nil, err
	}
	report.Settle = settled
	report.Commands = map[commandKind]commandRow{}
	for _, k := range commandKinds {
		report.Commands[k] = newCommandRow(outcomes[k], v.Kinds[k])
	}
	report.Lost, report.Duplicated, report.OutOfOrder, report.Examples = v.Lost, v.Duplicated, v.OutOfOrder, v.Examples
	report.RelayVerify = r.verify(ctx, "relay", "verify", "--tenant", tenant.ID.String(), "--json")
	report.ProjectionsVerify = r.verify(ctx, "projections", "verify", "--tenant", tenant.ID.String(), "--json")
	report.judge()
	passed = report.Pass
	return report, nil
}

// startProcesses starts nats-server, the two workers and the two API
// processes, and returns the APIs' base URLs once they are ready and a
// worker holds the relay lease.
func (r *chaosRun) startProcesses(ctx context.Context) ([]string, error) {
	if err := r.startNATS(ctx); err != nil {
		return nil, err
	}
	r.env = r.childEnv("nats://" + r.natsAddr)
	for i := range r.workers {
		r.workers[i] = &child{name: fmt.Sprintf("work-%d", i+1), path: r.cfg.Binary, args: []string{"work"}, env: r.env,
			logPath: filepath.Join(r.dir, fmt.Sprintf("work-%d.log", i+1)), onLine: func(line []byte) { r.lease.observe(i, line) }}
		if err := r.workers[i].start(); err != nil {
			return nil, err
		}
	}
	var servers []string
	for i := range r.serves {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		r.serves[i] = &child{name: fmt.Sprintf("serve-%d", i+1), path: r.cfg.Binary, args: []string{"serve"},
			env: childEnv(r.env, map[string]string{"HTTP_ADDR": addr}), logPath: filepath.Join(r.dir, fmt.Sprintf("serve-%d.log", i+1))}
		if err := r.serves[i].start(); err != nil {
			return nil, err
		}
		servers = append(servers, "http://"+addr)
	}
	for i, base := range servers {
		if err := waitReady(ctx, base, startTimeout, r.serves[i].exited); err != nil {
			return nil, fmt.Errorf("%s: %w (see %s)", r.serves[i].name, err, r.serves[i].logPath)
		}
	}
	if _, err := r.lease.wait(ctx, startTimeout); err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, filepath.Join(r.dir, "work-*.log"))
	}
	r.logf("started nats-server on %s, %s and %s, 2 work processes", r.natsAddr, servers[0], servers[1])
	return servers, nil
}

// startNATS starts nats-server with JetStream on the run's store
// directory, on a free port, and waits until it accepts connections.
func (r *chaosRun) startNATS(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	r.natsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	r.nats = &child{name: "nats-server", path: r.cfg.NATSServer, logPath: filepath.Join(r.dir, "nats-server.log"), env: os.Environ(),
		args: []string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", r.natsStore()}}
	if err := r.nats.start(); err != nil {
		return err
	}
	if err := waitTCP(ctx, r.natsAddr, 30*time.Second); err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	return nil
}

// natsStore is the run's JetStream store directory, nats-server's or the
// embedded server's.
func (r *chaosRun) natsStore() string { return filepath.Join(r.dir, "nats-store") }

// childEnv is the environment of the run's chartstream processes: the
// stack's settings, natsURL (empty: embedded NATS) and the run's own.
func (r *chaosRun) childEnv(natsURL string) []string {
	return childEnv(os.Environ(), map[string]string{
		"NATS_URL": natsURL, "JWT_ALLOW_DEV_KEY": "true", "LOG_LEVEL": "info",
		// The run's nats-server (or the embedded one) takes no
		// credentials, unlike the stack's.
		"NATS_CREDS_FILE": "",
		"DATABASE_URL":    r.cfg.DatabaseURL, "DATABASE_RELAY_URL": r.cfg.DatabaseRelayURL, "DATABASE_ADMIN_URL": r.cfg.DatabaseAdminURL,
		"REDIS_URL": r.cfg.RedisURL, "PHI_KEY_FILE": r.cfg.PHIKeyFile, "JWT_DEV_KEY_FILE": r.cfg.JWTDevKeyFile,
		"RELAY_STREAM": r.cfg.RelayStream,
		// The stream of one run needs far less than the 10 GiB default
		// reservation.
		"RELAY_MAX_BYTES": fmt.Sprint(1 << 30),
	})
}

// stopAll stops every child: the APIs and workers first, nats-server last.
func (r *chaosRun) stopAll() {
	for _, c := range append(r.serves[:], r.workers[0], r.workers[1], r.all) {
		if c != nil {
			c.stop(stopGrace)
		}
	}
	if r.nats != nil {
		r.nats.stop(stopGrace)
	}
}

// childEnv returns env with the given variables set, replacing earlier
// values.
func childEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// mintChaosTokens mints one clinician token per client, each its own
// subject, valid well past the run.
func mintChaosTokens(cfg chaosConfig, tenant chartstream.TenantID) ([]string, error) {
	key, err := auth.LoadDevKey(cfg.JWTDevKeyFile)
	if err != nil {
		return nil, err
	}
	m := auth.NewMinter(key)
	tokens := make([]string, cfg.Clients)
	for i := range tokens {
		tokens[i], err = m.Mint(auth.MintParams{Tenant: tenant, Subject: fmt.Sprintf("chaos-client-%d", i+1), Roles: []chartstream.Role{chartstream.RoleClinician},
			TTL: cfg.Duration + time.Hour, Issuer: envOr("JWT_ISSUER", defaultJWTIssuer), Audience: envOr("JWT_AUDIENCE", defaultJWTAudience)})
		if err != nil {
			return nil, describe(err)
		}
	}
	return tokens, nil
}
