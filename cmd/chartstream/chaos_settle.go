package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/postgres"
)

// checkLive follows the stream of the run's nats-server while it settles
// (the mixed scenario).
func (r *chaosRun) checkLive(ctx context.Context, tenant chartstream.TenantID, acked []ackedCommand) (verdict, settleResult, error) {
	col, done, err := r.openCollector(ctx, tenant)
	if err != nil {
		return verdict{}, settleResult{}, err
	}
	defer done()
	unfollow, err := r.followStream(ctx, col)
	if err != nil {
		return verdict{}, settleResult{}, err
	}
	defer unfollow()
	return r.settle(ctx, col, acked, time.Time{})
}

// openCollector connects to the event store and the read models for the
// checks; done closes what it opened.
func (r *chaosRun) openCollector(ctx context.Context, tenant chartstream.TenantID) (*collector, func(), error) {
	store, relayPool, err := openStore(ctx, r.cfg.DatabaseRelayURL, phiKeys{File: r.cfg.PHIKeyFile}, "chartstream-chaos", commands.EventSpecs())
	if err != nil {
		return nil, nil, err
	}
	app, err := postgres.Connect(ctx, postgres.Config{URL: r.cfg.DatabaseURL, MaxConns: 2, ApplicationName: "chartstream-chaos"})
	if err != nil {
		relayPool.Close()
		return nil, nil, err
	}
	return newCollector(tenant, store, app), func() { app.Close(); relayPool.Close() }, nil
}

// followStream connects to the run's nats-server and has col follow the
// relay's stream; unfollow stops that and closes the connection.
func (r *chaosRun) followStream(ctx context.Context, col *collector) (unfollow func(), err error) {
	nc, err := nats.Connect("nats://"+r.natsAddr, nats.Name("chartstream-chaos"))
	if err != nil {
		return nil, fmt.Errorf("connect to nats-server: %w", err)
	}
	if err := col.follow(ctx, nc, r.cfg.RelayStream); err != nil {
		nc.Close()
		return nil, err
	}
	return func() { col.Close(); nc.Close() }, nil
}

// settle polls until every acknowledged command is visible everywhere
// (with all-sigkill, and the observation counts agree) or the pipeline
// made no progress for the settle time, or deadline (when not zero) has
// passed, and returns the last classification.
func (r *chaosRun) settle(ctx context.Context, col *collector, acked []ackedCommand, deadline time.Time) (verdict, settleResult, error) {
	var v verdict
	start, progressed, best := time.Now(), time.Now(), -1
	var reported time.Time
	late := func() bool { return !deadline.IsZero() && time.Now().After(deadline) }
	for {
		obs, err := col.poll(ctx)
		if err != nil {
			// A failed read is no progress; it ends the wait like none.
			if ctx.Err() != nil || time.Since(progressed) >= r.cfg.Settle || late() {
				return v, settleResult{}, err
			}
			r.logf("settling: %v; retrying", err)
			if err := sleepCtx(ctx, settlePoll); err != nil {
				return v, settleResult{}, err
			}
			continue
		}
		v = classify(acked, obs)
		missing := v.Lost.Store + v.Lost.Stream + v.Lost.ReadModels
		if r.cfg.Scenario == scenarioAllSIGKILL {
			missing += v.Observations.gap()
		}
		if missing == 0 {
			return v, settleResult{Seconds: time.Since(start).Seconds(), CaughtUp: true}, nil
		}
		if best < 0 || missing < best {
			best, progressed = missing, time.Now()
		}
		if time.Since(progressed) >= r.cfg.Settle {
			return v, settleResult{Seconds: time.Since(start).Seconds()}, nil
		}
		if late() {
			return v, settleResult{Seconds: time.Since(start).Seconds(), TimedOut: true}, nil
		}
		if time.Since(reported) >= settleReport {
			reported = time.Now()
			r.logf("settling: %d acknowledged commands not yet everywhere (store %d, stream %d, read models %d)%s", v.Lost.Commands, v.Lost.Store, v.Lost.Stream, v.Lost.ReadModels, r.observationNote(v))
		}
		if err := sleepCtx(ctx, settlePoll); err != nil {
			return v, settleResult{}, err
		}
	}
}

// observationNote is the comparison for a progress line, in the
// scenario that makes it.
func (r *chaosRun) observationNote(v verdict) string {
	if r.cfg.Scenario != scenarioAllSIGKILL {
		return ""
	}
	return fmt.Sprintf("; observations: %d in the event store, %d in the read model", v.Observations.Store, v.Observations.ReadModel)
}
