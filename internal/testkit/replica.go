package testkit

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections/analytics"
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
	// Generous: a test of another package may freeze the standby's WAL
	// receiver for a few seconds (api's stalled-standby test).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done bool
		err := MustReplicaPool(tb).QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done)
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the replica has not replayed the primary's WAL up to %s within 30s (%v)", lsn, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MustApplyAnalytics applies events of tenant to the analytics tables on
// the primary as the app role, creating their months' partitions, as the
// analytics projector does (without its checkpoint: apply each event once).
func MustApplyAnalytics(tb testing.TB, tenant chartstream.TenantID, events []chartstream.Event) {
	tb.Helper()
	ctx := Context(tb)
	months, err := analytics.Months(events)
	if err != nil {
		tb.Fatal(err)
	}
	err = postgres.InTenantTx(ctx, MustAppPool(tb), tenant, func(tx pgx.Tx) error {
		for _, m := range months {
			if _, err := tx.Exec(ctx, `SELECT chartstream_analytics_partitions($1)`, m); err != nil {
				return err
			}
		}
		return analytics.Apply(ctx, tx, events)
	})
	if err != nil {
		tb.Fatalf("apply analytics: %v", err)
	}
}

// StallReplicaReceiver freezes the hot standby's WAL receiver (SIGSTOP):
// a real fault in which it still runs, and looks healthy to the standby,
// but receives nothing more from the primary until wal_receiver_timeout.
// The returned func resumes it (SIGCONT); so does the test's cleanup.
// Skips where this process may not signal the postgres OS user's
// processes. Tests that stall it must not run in parallel with others of
// their package that read the standby.
func StallReplicaReceiver(tb testing.TB) (resume func()) {
	tb.Helper()
	var pid *int
	if err := MustReplicaPool(tb).QueryRow(Context(tb), `SELECT pid FROM pg_stat_wal_receiver`).Scan(&pid); err != nil || pid == nil {
		tb.Fatalf("the standby's WAL receiver: pid %v (%v)", pid, err)
	}
	if err := syscall.Kill(*pid, syscall.SIGSTOP); err != nil {
		tb.Skipf("cannot stop the standby's WAL receiver (pid %d): %v", *pid, err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := syscall.Kill(*pid, syscall.SIGCONT); err != nil {
				tb.Errorf("resume the standby's WAL receiver (pid %d): %v", *pid, err)
			}
		})
	}
	tb.Cleanup(resume)
	return resume
}
