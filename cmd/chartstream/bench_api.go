package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/tenants"
)

// benchAPIParams say what a bench's API serves.
type benchAPIParams struct {
	Pool     *pgxpool.Pool
	Store    *eventstore.Store
	Tenant   chartstream.TenantID
	Dir      string // for its dev keys
	RedisURL string
	Logger   *slog.Logger
	// Access is the PHI access log; nil for a real one on Pool.
	Access api.AccessLog
}

// benchAPI is the API served on a loopback port for a bench's reads, with
// a dev key of its own and a token of the tenant (clinician).
type benchAPI struct {
	base, token string
	client      *http.Client
	closers     []func()
}

// startBenchAPI serves the API until Close.
func startBenchAPI(ctx context.Context, p benchAPIParams) (a *benchAPI, err error) {
	a = &benchAPI{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	keyFile := filepath.Join(p.Dir, "jwt-"+uuid.NewString()[:8]+".pem")
	if err := auth.CreateDevKey(keyFile); err != nil {
		return a, err
	}
	key, err := auth.LoadDevKey(keyFile)
	if err != nil {
		return a, err
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{Issuer: "bench", Audience: "bench", DevKeyFile: keyFile, AllowDevKey: true, Logger: p.Logger})
	if err != nil {
		return a, err
	}
	a.closers = append(a.closers, verifier.Close)
	opts, err := redis.ParseURL(p.RedisURL)
	if err != nil {
		return a, err
	}
	rdb := redis.NewClient(opts)
	a.closers = append(a.closers, func() { _ = rdb.Close() })
	prefix := "bench:" + uuid.NewString() + ":"
	limits, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix + "rl:"})
	if err != nil {
		return a, err
	}
	idem, err := idempotency.New(rdb, idempotency.Config{Prefix: prefix + "idem:"})
	if err != nil {
		return a, err
	}
	if p.Access == nil {
		access, err := accesslog.New(p.Pool, p.Logger, accesslog.Config{})
		if err != nil {
			return a, err
		}
		a.closers = append(a.closers, func() { _ = access.Close(context.Background()) })
		p.Access = access
	}
	checkpointKey := filepath.Join(p.Dir, "checkpoint-"+uuid.NewString()[:8]+".pem")
	if _, err := signing.CreateKeyFiles(checkpointKey); err != nil {
		return a, err
	}
	signer, err := signing.LoadSigner(checkpointKey)
	if err != nil {
		return a, err
	}
	srv, err := api.NewServer(api.Deps{Logger: p.Logger, Commands: commands.New(p.Store, nil), Tokens: verifier, Tenants: tenants.NewDirectory(p.Pool),
		Revocations: revocation.New(rdb, prefix+"revoked:"), Limits: limits, Idempotency: idem, ReadModels: p.Pool,
		Access: p.Access, History: p.Store, Auditor: audit.Verifier{History: p.Store, Keys: signer.Public()}},
		api.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return a, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return a, err
	}
	a.closers = append(a.closers, runInBackground(ctx, func(ctx context.Context) error { return srv.Serve(ctx, ln) }))
	if a.token, err = auth.NewMinter(key).Mint(auth.MintParams{Tenant: p.Tenant, Subject: "bench", Roles: []chartstream.Role{chartstream.RoleClinician},
		TTL: time.Hour, Issuer: "bench", Audience: "bench"}); err != nil {
		return a, err
	}
	a.base = "http://" + ln.Addr().String()
	return a, nil
}

// get sends a GET and returns its latency in milliseconds; anything but
// 200 is an error.
func (a *benchAPI) get(ctx context.Context, path string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return float64(time.Since(start).Microseconds()) / 1000, nil
}

// Close stops the server and releases what it holds, in reverse order.
func (a *benchAPI) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.client.CloseIdleConnections()
}
