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

// settle polls until every acknowledged command is visible everywhere or
// the pipeline made no progress for the settle time, and returns the last
// classification.
func (r *chaosRun) settle(ctx context.Context, tenant chartstream.TenantID, acked []ackedCommand) (verdict, settleResult, error) {
	var v verdict
	nc, err := nats.Connect("nats://"+r.natsAddr, nats.Name("chartstream-chaos"))
	if err != nil {
		return v, settleResult{}, fmt.Errorf("connect to nats-server: %w", err)
	}
	defer nc.Close()
	store, relayPool, err := openStore(ctx, r.cfg.DatabaseRelayURL, r.cfg.PHIKeyFile, "chartstream-chaos", commands.EventSpecs())
	if err != nil {
		return v, settleResult{}, err
	}
	defer relayPool.Close()
	app, err := postgres.Connect(ctx, postgres.Config{URL: r.cfg.DatabaseURL, MaxConns: 2, ApplicationName: "chartstream-chaos"})
	if err != nil {
		return v, settleResult{}, err
	}
	defer app.Close()
	col, err := newCollector(ctx, nc, r.cfg.RelayStream, tenant, store, app)
	if err != nil {
		return v, settleResult{}, err
	}
	defer col.Close()

	start, progressed, best := time.Now(), time.Now(), -1
	var reported time.Time
	for {
		obs, err := col.poll(ctx)
		if err != nil {
			// A failed read is no progress; it ends the wait like none.
			if ctx.Err() != nil || time.Since(progressed) >= r.cfg.Settle {
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
		if missing == 0 {
			return v, settleResult{Seconds: time.Since(start).Seconds(), CaughtUp: true}, nil
		}
		if best < 0 || missing < best {
			best, progressed = missing, time.Now()
		}
		if time.Since(progressed) >= r.cfg.Settle {
			return v, settleResult{Seconds: time.Since(start).Seconds()}, nil
		}
		if time.Since(reported) >= settleReport {
			reported = time.Now()
			r.logf("settling: %d acknowledged commands not yet everywhere (store %d, stream %d, read models %d)", v.Lost.Commands, v.Lost.Store, v.Lost.Stream, v.Lost.ReadModels)
		}
		if err := sleepCtx(ctx, settlePoll); err != nil {
			return v, settleResult{}, err
		}
	}
}
