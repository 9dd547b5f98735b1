package workers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream/internal/logging"
)

// Process topology. Workers of one database must share one JetStream: the
// relay's lease and the projector's may land in different processes, and
// with an embedded NATS server each process has a JetStream of its own, so
// the projector would wait forever for events the relay published
// elsewhere. An embedded server is therefore for a single `chartstream all`
// only. Every worker process holds a session-level advisory lock for its
// life: shared when its NATS is external, exclusive when embedded, so a
// process whose NATS does not fit the others' cannot start its workers.
// The lock is scoped by the leases the processes would share (the relay's
// name and the projector's consumer): workers that never compete for a
// lease do not need one JetStream.

// ErrTopology is returned when a worker process's NATS does not fit the
// other worker processes of the database.
var ErrTopology = errors.New("worker topology")

func topologyKey(scope string) int64 {
	h := fnv.New64a()
	h.Write([]byte("chartstream.worker-topology." + scope))
	return int64(h.Sum64())
}

// TopologyScope names the leases of a relay and a projector, whose
// processes must share a JetStream.
func TopologyScope(relay RelayConfig, projector ProjectorConfig) string {
	relay.setDefaults()
	projector.setDefaults()
	return "relay." + relay.Name + "/projector." + projector.Consumer
}

// TopologyHold is a worker process's place in the topology.
type TopologyHold struct {
	conn *pgxpool.Conn
	lost chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// HoldTopology registers this worker process (sessions: a session-mode
// pool). It fails with ErrTopology when an embedded-NATS process runs
// workers on the database, or, with embedded, when any other worker
// process does. Lost is closed if the registration is lost (the session
// broke) and cannot be taken again.
func HoldTopology(ctx context.Context, sessions *pgxpool.Pool, scope string, embedded bool, log *slog.Logger) (*TopologyHold, error) {
	conn, err := acquireTopology(ctx, sessions, scope, embedded)
	if err != nil {
		return nil, err
	}
	watch, stop := context.WithCancel(context.WithoutCancel(ctx))
	h := &TopologyHold{conn: conn, lost: make(chan struct{}), stop: stop, done: make(chan struct{})}
	go h.watch(watch, sessions, scope, embedded, log)
	return h, nil
}

func acquireTopology(ctx context.Context, sessions *pgxpool.Pool, scope string, embedded bool) (*pgxpool.Conn, error) {
	conn, err := sessions.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker topology: %w", err)
	}
	lock := `SELECT pg_try_advisory_lock_shared($1)`
	if embedded {
		lock = `SELECT pg_try_advisory_lock($1)`
	}
	var got bool
	if err := conn.QueryRow(ctx, lock, topologyKey(scope)).Scan(&got); err != nil {
		conn.Release()
		return nil, fmt.Errorf("worker topology: %w", err)
	}
	if got {
		return conn, nil
	}
	conn.Release()
	if embedded {
		return nil, fmt.Errorf("%w: other chartstream processes run workers on this database; embedded NATS is only for a single `chartstream all` (set NATS_URL to a shared NATS server)", ErrTopology)
	}
	return nil, fmt.Errorf("%w: a `chartstream all` with embedded NATS runs the workers on this database (stop it, or give it NATS_URL too)", ErrTopology)
}

// watch re-registers after a broken session, and closes lost when it
// cannot.
func (h *TopologyHold) watch(ctx context.Context, sessions *pgxpool.Pool, scope string, embedded bool, log *slog.Logger) {
	defer close(h.done)
	for ctx.Err() == nil {
		sleep(ctx, time.Second)
		if err := h.conn.Ping(ctx); err == nil || ctx.Err() != nil {
			continue
		}
		h.conn.Release()
		h.conn = nil
		for ctx.Err() == nil {
			conn, err := acquireTopology(ctx, sessions, scope, embedded)
			if err == nil {
				h.conn = conn
				break
			}
			if errors.Is(err, ErrTopology) {
				log.Error("worker topology lost", logging.Error(err))
				close(h.lost)
				return
			}
			sleep(ctx, time.Second) // the database is down: try again
		}
	}
}

// Lost is closed when the registration was lost to another process.
func (h *TopologyHold) Lost() <-chan struct{} { return h.lost }

// Release gives the registration up.
func (h *TopologyHold) Release() {
	h.stop()
	<-h.done
	if h.conn != nil {
		_, _ = h.conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
		h.conn.Release()
	}
}
