package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// benchPipeline is what the pipeline benchmarks share: a fresh bench
// tenant, a PHI key of their own, the event store as the app role (writer)
// and as the relay role (reader), NATS (NATS_URL or embedded), and a relay
// configuration of their own — own stream and subjects, starting at the
// event store's head — so a bench never touches the platform's stream.
type benchPipeline struct {
	tenant     tenants.Tenant
	keyFile    string
	writer     *eventstore.Store
	writerPool *pgxpool.Pool
	reader     *eventstore.Store
	relayPool  *pgxpool.Pool
	js         jetstream.JetStream
	nats       *messaging.Conn
	relayCfg   workers.RelayConfig
	// signer, when set, signs the relay's messages.
	signer  workers.Signer
	quiet   *slog.Logger // warnings and errors only, to the bench's log
	closers []func()
}

type benchURLs struct {
	db, relay, admin, nats string
	// natsAuth are NATS_URL's credentials; an embedded server takes none.
	natsAuth messaging.Config
}

// benchURLFlags defines the pipeline benches' connection flags.
func benchURLFlags(f *pflag.FlagSet, u *benchURLs) {
	stringFlag(f, &u.db, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(f, &u.relay, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role")
	stringFlag(f, &u.admin, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the bench tenant)")
	stringFlag(f, &u.nats, "nats-url", "NATS_URL", "", "external NATS; empty starts an embedded server")
	natsAuthFlags(f, &u.natsAuth)
}

func newBenchPipeline(ctx context.Context, log io.Writer, urls benchURLs, specs []chartstream.EventSpec) (b *benchPipeline, err error) {
	// The workers' warnings explain a bench that stalls (a relay retrying
	// a stream it cannot create); their routine logs would bury the results.
	b = &benchPipeline{quiet: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	admin, err := postgres.Connect(ctx, postgres.Config{URL: urls.admin, MaxConns: 2, ApplicationName: "chartstream-bench"})
	if err != nil {
		return b, err
	}
	defer admin.Close()
	if b.tenant, err = tenants.NewAdmin(admin).Create(ctx, tenants.NewTenant{Slug: "bench-" + uuid.NewString()[:8], Name: "Benchmark", Tier: chartstream.TierEnterprise}); err != nil {
		return b, err
	}
	fmt.Fprintf(log, "bench tenant %s (%s)\n", b.tenant.Slug, b.tenant.ID)
	dir, err := os.MkdirTemp("", "chartstream-bench-")
	if err != nil {
		return b, err
	}
	b.closers = append(b.closers, func() { os.RemoveAll(dir) })
	b.keyFile = filepath.Join(dir, "phi.key")
	if _, err := phi.CreateLocalKeyFile(b.keyFile); err != nil {
		return b, err
	}
	if b.writer, b.writerPool, err = openStore(ctx, urls.db, phiKeys{File: b.keyFile}, "chartstream-bench", specs); err != nil {
		return b, err
	}
	b.closers = append(b.closers, b.writerPool.Close)
	if b.reader, b.relayPool, err = openStore(ctx, urls.relay, phiKeys{File: b.keyFile}, "chartstream-bench-relay", specs); err != nil {
		return b, err
	}
	b.closers = append(b.closers, b.relayPool.Close)
	natsCfg := messaging.Config{StoreDir: filepath.Join(dir, "nats")}
	if urls.nats != "" {
		natsCfg = urls.natsAuth
		natsCfg.URL = urls.nats
	}
	nc, err := messaging.Connect(ctx, b.quiet, natsCfg)
	if err != nil {
		return b, err
	}
	b.closers = append(b.closers, nc.Close)
	b.nats = nc
	if b.js, err = jetstream.New(nc.Conn, jetstream.WithPublishAsyncMaxPending(512)); err != nil {
		return b, err
	}
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	// JetStream reserves MaxBytes on the server's disk; a bench's events
	// fit in 1 GiB, and the 10 GiB default may not fit beside the
	// platform's stream.
	b.relayCfg = workers.RelayConfig{Name: "bench-" + id, Stream: "BENCH_" + strings.ToUpper(id), SubjectPrefix: "bench" + id, MaxBytes: 1 << 30}
	b.closers = append(b.closers, func() { _ = b.js.DeleteStream(context.WithoutCancel(ctx), b.relayCfg.Stream) })
	head, err := b.reader.Head(ctx, eventstore.Filter{})
	if err != nil {
		return b, err
	}
	return b, workers.SaveCheckpoint(ctx, b.relayPool, b.relayCfg.Name, head)
}

// startRelay runs the bench's relay until the returned stop is called.
func (b *benchPipeline) startRelay(ctx context.Context, published workers.PublishedFn) (stop func(), err error) {
	relay, err := workers.NewRelay(workers.RelayDeps{Events: b.reader, DB: b.relayPool, JetStream: b.js, Signer: b.signer, Logger: b.quiet, Published: published}, b.relayCfg)
	if err != nil {
		return nil, err
	}
	return runInBackground(ctx, relay.Run), nil
}

// runInBackground runs fn until the returned stop cancels it and waits.
func runInBackground(ctx context.Context, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = fn(ctx) }()
	return func() { cancel(); <-stopped }
}

// Close releases everything, last acquired first.
func (b *benchPipeline) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}
