package testkit

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MustReplicaPool returns the shared pool of the hot standby as
// chartstream_analytics (DATABASE_REPLICA_URL).
func MustReplicaPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return MustPool(tb, "DATABASE_REPLICA_URL")
}

// WaitReplica waits until the hot standby has replayed everything the
// primary had written when it was called: what the test committed before
// is then readable there.
func WaitReplica(tb testing.TB) {
	tb.Helper()
	ctx := Context(tb)
	var lsn string
	if err := MustAdminPool(tb).QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		tb.Fatalf("primary's WAL position: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var done bool
		err := MustReplicaPool(tb).QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done)
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the replica has not replayed the primary's WAL up to %s within 10s (%v)", lsn, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
