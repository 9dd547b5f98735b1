package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// lockedWriter serialises writes: the workers' warnings and the bench's
// own lines share the log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// mintTokens mints n clinicians' tokens, subjects prefix-1 to prefix-n.
func mintTokens(s *commandsStack, prefix string, n int) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		var err error
		if tokens[i], err = s.token(fmt.Sprintf("%s-%d", prefix, i+1)); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// runClosedLoop runs one client per token, each sending mix's operations
// back to back for d, and returns the elapsed time.
func runClosedLoop(ctx context.Context, t *benchTarget, hc *http.Client, tokens []string, mix benchMix, d time.Duration, name string) time.Duration {
	stopBar := timeBar(d, name)
	defer stopBar()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			next := mixSequence(rng)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t.do(ctx, hc, token, mix.pick(next()), rng)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// registerBenchPatients registers n patients through the API with one client
// per token and returns their ids.
func registerBenchPatients(ctx context.Context, t *benchTarget, hc *http.Client, tokens []string, n int) ([]uuid.UUID, error) {
	bar := newProgress(int64(n), "registering patients")
	defer func() { _ = bar.Finish() }()
	var mu sync.Mutex
	var ids []uuid.UUID
	var firstErr error
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 0))
			for range next {
				req, _, _ := t.newRequest(ctx, opRegister, token, rng)
				status, body, _, err := send(hc, req, true)
				var id uuid.UUID
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("register a patient: status %d: %.200s", status, body)
				}
				if err == nil {
					id, err = commandID(body)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					ids = append(ids, id)
				}
				mu.Unlock()
				_ = bar.Add(1)
			}
		})
	}
	wg.Wait()
	return ids, firstErr
}

// timeBar shows a progress bar of d's seconds until stop.
func timeBar(d time.Duration, description string) (stop func()) {
	bar := newProgress(int64(d/time.Second), description)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = bar.Add(1)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		_ = bar.Finish()
	}
}
