package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	tokenbucket "golang.org/x/time/rate"

	"github.com/chartstream/chartstream"
)

// The all-sigkill scenario, as the issue reported it: `chartstream all`
// with embedded NATS, SIGKILLed twice 6 s apart and restarted each time,
// while 16 clients recorded observations at about 450 a second over 100
// patients; 45 s after the load the tenant's observation events and its
// observations rows differed.
const (
	// sigkillPatients are registered before the load starts.
	sigkillPatients = 100
	// sigkillRate is the load's pace, in commands a second, all clients
	// together.
	sigkillRate = 450.0
	// sigkillFirst is when the first kill comes, as a fraction of the
	// duration; the second comes sigkillGap later.
	sigkillFirst = 0.30
	sigkillGap   = 6 * time.Second
	// sigkillSettle is the default --settle: the issue compared 45 s after
	// the load ended.
	sigkillSettle = 45 * time.Second
	// streamReadTimeout bounds the reading of the stream after the run.
	streamReadTimeout = 2 * time.Minute
)

// sigkillSchedule returns the two kills of `all` in a run of duration d.
func sigkillSchedule(d time.Duration) []scheduledFault {
	first := time.Duration(sigkillFirst * float64(d)).Round(100 * time.Millisecond)
	second := first + sigkillGap
	return []scheduledFault{
		{Fraction: float64(first) / float64(d), At: first, Kind: faultKillAll},
		{Fraction: float64(second) / float64(d), At: second, Kind: faultKillAll},
	}
}

// newPacer returns the token bucket that paces the clients' commands
// together to perSecond. Its burst is one command per client: each can
// start at once, and the time a killed process stalls them is not made up
// afterwards by a burst above the pace.
func newPacer(perSecond float64, clients int) *tokenbucket.Limiter {
	return tokenbucket.NewLimiter(tokenbucket.Limit(perSecond), clients)
}

// perSecond is n over d, zero for no time.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// prepareAllSIGKILL starts `all`, registers the patients and returns the
// API, the load and the faults of the scenario.
func (r *chaosRun) prepareAllSIGKILL(ctx context.Context, tokens []string, l *ledger) ([]string, loadPlan, []scheduledFault, error) {
	servers, err := r.startAll(ctx)
	if err != nil {
		return nil, loadPlan{}, nil, err
	}
	patients, err := registerPatients(ctx, servers, tokens, l, sigkillPatients)
	if err != nil {
		return nil, loadPlan{}, nil, fmt.Errorf("%w (see %s)", err, r.all.logPath)
	}
	r.logf("registered %d patients; the load records observations on them, paced to %.0f/s", len(patients), sigkillRate)
	return servers, loadPlan{Patients: patients, Pace: newPacer(sigkillRate, r.cfg.Clients), RetriesAside: true}, sigkillSchedule(r.cfg.Duration), nil
}

// startAll starts one `chartstream all` with embedded NATS, its JetStream
// store in the run directory so that it survives the kills, and returns
// its API's base URL once it is ready.
func (r *chaosRun) startAll(ctx context.Context) ([]string, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r.allBase = "http://" + addr
	// No NATS_URL: the embedded server, as the issue ran it. The stack's
	// env names its own NATS, which this process must not use.
	r.env = r.childEnv("")
	r.all = &child{name: "all", path: r.cfg.Binary, args: []string{"all"}, logPath: filepath.Join(r.dir, "all.log"),
		env: childEnv(r.env, map[string]string{"HTTP_ADDR": addr, "NATS_STORE_DIR": r.natsStore()})}
	if err := r.all.start(); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, r.allBase, startTimeout, r.all.exited); err != nil {
		return nil, fmt.Errorf("all: %w (see %s)", err, r.all.logPath)
	}
	r.logf("started all (embedded NATS, store %s) on %s", r.natsStore(), r.allBase)
	return []string{r.allBase}, nil
}

// registerPatients registers n patients through the API before the load,
// spread over the clients. They are acknowledged commands like the load's
// and are checked with them.
func registerPatients(ctx context.Context, servers, tokens []string, l *ledger, n int) ([]uuid.UUID, error) {
	clients, done := newLoadClients(servers, tokens, l, loadPlan{})
	defer done()
	var wg sync.WaitGroup
	for i, c := range clients {
		count := n / len(clients)
		if i < n%len(clients) {
			count++
		}
		wg.Go(func() {
			for range count {
				c.send(ctx, c.registration("chaos-"+uuid.NewString()))
			}
		})
	}
	wg.Wait()
	var patients []uuid.UUID
	for _, c := range clients {
		patients = append(patients, c.patients...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(patients) < n {
		return nil, fmt.Errorf("registered %d of %d patients before the load", len(patients), n)
	}
	return patients, nil
}

// checkAfterAll checks an all-sigkill run. While `all` runs, its embedded
// NATS listens on no port, so the settle (at most --settle after the load
// stopped) watches the event store and the read models only. Then `all`
// is stopped and the JetStream store it left is opened with nats-server
// (the version go.mod pins, as the embedded one) on a free port: the
// stream is read to its end and classified with the rest, and relay verify
// reads it there.
func (r *chaosRun) checkAfterAll(ctx context.Context, tenant chartstream.TenantID, acked []ackedCommand, stopped time.Time) (verdict, settleResult, error) {
	col, done, err := r.openCollector(ctx, tenant)
	if err != nil {
		return verdict{}, settleResult{}, err
	}
	defer done()
	v, settled, err := r.settle(ctx, col, acked, stopped.Add(r.cfg.Settle))
	if err != nil {
		return v, settled, err
	}
	r.logf("settled after %.1fs%s; stopping all to read its stream", settled.Seconds, r.observationNote(v))
	r.all.stop(stopGrace)
	if err := r.startNATS(ctx); err != nil {
		return v, settled, fmt.Errorf("open the JetStream store all left: %w", err)
	}
	r.env = r.childEnv("nats://" + r.natsAddr)
	unfollow, err := r.followStream(ctx, col)
	if err != nil {
		return v, settled, fmt.Errorf("the JetStream store all left: %w", err)
	}
	defer unfollow()
	deadline := time.Now().Add(streamReadTimeout)
	for {
		behind, err := col.streamBehind(ctx)
		if err != nil {
			return v, settled, err
		}
		if behind <= 0 {
			break
		}
		if time.Now().After(deadline) {
			return v, settled, errors.New("the stream was not read to its end within " + streamReadTimeout.String())
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return v, settled, err
		}
	}
	obs, err := col.poll(ctx)
	if err != nil {
		return v, settled, err
	}
	r.logf("read %d of the tenant's messages from the stream", len(obs.Stream))
	return classify(acked, obs), settled, nil
}
