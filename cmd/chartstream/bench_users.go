package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// childAPIUsers is the most users whose connections the bench serves in
// its own process. Each user holds a connection, and in one process each
// connection is two file descriptors (the client's end and the server's):
// 10,000 users would need more than the 20,000 a process may have here,
// so above this the API runs in a child process.
const childAPIUsers = 4000

// connReport is what the users' connections did: Dialed counts every
// connection opened, PeakOpen the most open at once. With one connection
// per user kept alive, both are about the number of users.
type connReport struct {
	Users    int   `json:"users"`
	Dialed   int64 `json:"dialed"`
	PeakOpen int64 `json:"peak_open"`
}

// connCounter counts the connections its dialer opens and closes.
type connCounter struct {
	dialer             net.Dialer
	dialed, open, peak atomic.Int64
}

func (c *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.dialed.Add(1)
	open := c.open.Add(1)
	for p := c.peak.Load(); open > p && !c.peak.CompareAndSwap(p, open); p = c.peak.Load() {
	}
	return &countedConn{Conn: conn, c: c}, nil
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.open.Add(-1) })
	return cc.Conn.Close()
}

// userClient is one user's HTTP client: a transport of its own that holds
// at most one connection, kept alive between requests, so n users really
// are n connections.
func userClient(c *connCounter) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext:     c.dial,
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, MaxIdleConns: 1,
		// Longer than any think time the exponential will plausibly draw
		// (the server keeps idle connections 120 s).
		IdleConnTimeout:    110 * time.Second,
		DisableCompression: true,
	}}
}

// runUsers runs users simulated users for d, each on its own connection
// with its own token, sending the clinical mix with an exponential think
// time of mean think before each request (the first too, so that requests
// arrive at the steady rate from the start). It returns the elapsed time.
func runUsers(ctx context.Context, t *benchTarget, tokens []string, think, d time.Duration, conns *connCounter) time.Duration {
	start := time.Now()
	deadline, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()
	stopBar := timeBar(d, fmt.Sprintf("%d users", len(tokens)))
	defer stopBar()
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Go(func() {
			hc := userClient(conns)
			defer hc.CloseIdleConnections()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			next := mixSequence(rng)
			for sleepCtx(deadline, thinkTime(rng, think)) == nil {
				// The request itself may outlast the deadline: it counts.
				t.do(ctx, hc, token, clinicalMix.pick(next()), rng)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// ensureFileLimit raises this process's open file limit to its hard limit
// (the Go runtime does so at start on Linux; this says so when it could
// not) and fails when need descriptors would not fit.
func ensureFileLimit(need uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("open file limit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("raise the open file limit to %d: %w", rl.Max, err)
		}
	}
	if rl.Cur < need {
		return fmt.Errorf("this run needs about %d file descriptors and the limit is %d (ulimit -Hn): use fewer --users or --api child", need, rl.Cur)
	}
	return nil
}
