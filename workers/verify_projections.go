package workers

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// ProjectionReport is what VerifyProjections found for one tenant.
type ProjectionReport struct {
	Tenant chartstream.TenantID `json:"tenant_id"`
	// Events is how many events were replayed to compare against.
	Events int64 `json:"events"`
	// Rows is how many rows of the live read models were compared.
	Rows int64 `json:"rows"`
	// Differences counts rows that differ, are missing or are extra.
	Differences int64 `json:"differences"`
	// Examples are the first differing rows of each table, by key.
	Examples []RowDifference `json:"examples,omitempty"`
	// SetAside are events the live read models set aside: they are not
	// in the read models, which are therefore not exact either.
	SetAside []SetAside `json:"set_aside,omitempty"`
}

// OK reports whether the live read models equal the replay.
func (r ProjectionReport) OK() bool { return r.Differences == 0 && len(r.SetAside) == 0 }

// RowDifference is one row where the live read models and the replay of
// the event store disagree. Key holds the row's primary key columns other
// than the tenant: ids and codes, never PHI.
type RowDifference struct {
	Table string            `json:"table"`
	Key   map[string]string `json:"key"`
	// Kind is "missing" (the replay has the row, the live copy not),
	// "extra" (the live copy has a row the replay has not) or "differs".
	Kind string `json:"kind"`
}

// examplesPerTable caps the differences listed per table; all are counted.
const examplesPerTable = 20

// VerifyProjections replays the tenant's events from the event store into
// the standby copy of its read models and compares it with the live copy,
// row by row, each row by a digest of its content. Both are compared at
// the live copy's checkpoints: the standby is replayed up to exactly where
// each live projection claims to be, and nothing the checkpoint claims is
// taken on trust. While the standby catches up the last stretch and the
// copies are compared, the tenant's live projection is paused.
//
// Errors: ErrStandbyBusy when a rebuild or another verification of the
// tenant runs; others wrapped. The standby copy is left empty.
func VerifyProjections(ctx context.Context, deps CopyDeps, projections []RebuildProjection, tenant chartstream.TenantID, progress RebuildProgressFn) (ProjectionReport, error) {
	report := ProjectionReport{Tenant: tenant}
	hold, err := holdStandby(ctx, deps.sessions(), tenant)
	if err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	defer hold.release()
	if err := clearCopy(ctx, deps.DB, tenant, postgres.StandbyReadModels, projections); err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	defer func() {
		_ = clearCopy(context.WithoutCancel(ctx), deps.DB, tenant, postgres.StandbyReadModels, projections)
	}()
	projs := projectionsOf(projections)
	live := func() (checkpoints, error) {
		var cps checkpoints
		err := postgres.InReadModelTx(ctx, deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) (err error) {
			cps, err = readCheckpoints(ctx, tx, tenant, projs)
			return err
		})
		return cps, err
	}
	var r replayed
	// Most of the history while the live projector goes on, then the
	// rest with it paused, so both stand at the same events.
	upTo, err := live()
	if err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	if err := replayStandby(ctx, deps, projs, tenant, upTo, progress, &r); err != nil {
		return report, fmt.Errorf("verify: replay: %w", err)
	}
	if err := hold.pause(ctx); err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	if upTo, err = live(); err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	if err := replayStandby(ctx, deps, projs, tenant, upTo, progress, &r); err != nil {
		return report, fmt.Errorf("verify: replay: %w", err)
	}
	report.Events = r.events
	err = postgres.InTenantTx(ctx, deps.DB, tenant, func(tx pgx.Tx) error {
		var liveSchema, standbySchema string
		if err := tx.QueryRow(ctx, `SELECT split_part(chartstream_read_models($1, false), ',', 1),
			split_part(chartstream_read_models($1, true), ',', 1)`, tenant).Scan(&liveSchema, &standbySchema); err != nil {
			return err
		}
		for _, p := range projections {
			for _, table := range p.Tables() {
				if err := compareTable(ctx, tx, tenant, liveSchema, standbySchema, table, &report); err != nil {
					return fmt.Errorf("compare %s: %w", table, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, liveSchema+", public"); err != nil {
			return err
		}
		report.SetAside, err = deadLetters(ctx, tx, tenant)
		return err
	})
	hold.resume(ctx)
	if err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	return report, nil
}

// compareTable compares the tenant's rows of one read model table in the
// live and standby schemas by primary key and content digest.
func compareTable(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, liveSchema, standbySchema, table string, report *ProjectionReport) error {
	var keys []string
	err := tx.QueryRow(ctx, `SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))
		FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = format('%I.%I', $1::text, $2::text)::regclass AND i.indisprimary AND a.attname <> 'tenant_id'`,
		liveSchema, table).Scan(&keys)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("no primary key")
	}
	var n int64
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.%s WHERE tenant_id = $1`,
		pgx.Identifier{liveSchema}.Sanitize(), pgx.Identifier{table}.Sanitize()), tenant).Scan(&n); err != nil {
		return err
	}
	report.Rows += n
	cols := make([]string, len(keys))
	for i, k := range keys {
		cols[i] = pgx.Identifier{k}.Sanitize()
	}
	keyList := strings.Join(cols, ", ")
	texts := make([]string, len(keys))
	for i, c := range cols {
		texts[i] = c + "::text"
	}
	// Names come from the catalog and from code, quoted; never input.
	q := fmt.Sprintf(`SELECT %[1]s, l.digest IS NULL, s.digest IS NULL
		FROM (SELECT %[2]s, md5(t::text) AS digest FROM %[3]s.%[5]s t WHERE tenant_id = $1) AS l
		FULL JOIN (SELECT %[2]s, md5(t::text) AS digest FROM %[4]s.%[5]s t WHERE tenant_id = $1) AS s USING (%[2]s)
		WHERE l.digest IS DISTINCT FROM s.digest ORDER BY %[2]s`,
		strings.Join(texts, ", "), keyList, pgx.Identifier{liveSchema}.Sanitize(), pgx.Identifier{standbySchema}.Sanitize(), pgx.Identifier{table}.Sanitize())
	rows, err := tx.Query(ctx, q, tenant)
	if err != nil {
		return err
	}
	defer rows.Close()
	listed := 0
	for rows.Next() {
		vals := make([]any, len(keys)+2)
		key := make([]string, len(keys))
		var notLive, notReplayed bool
		for i := range key {
			vals[i] = &key[i]
		}
		vals[len(keys)], vals[len(keys)+1] = &notLive, &notReplayed
		if err := rows.Scan(vals...); err != nil {
			return err
		}
		report.Differences++
		if listed >= examplesPerTable {
			continue
		}
		listed++
		d := RowDifference{Table: table, Key: make(map[string]string, len(keys)), Kind: "differs"}
		for i, k := range keys {
			d.Key[k] = key[i]
		}
		switch {
		case notLive:
			d.Kind = "missing"
		case notReplayed:
			d.Kind = "extra"
		}
		report.Examples = append(report.Examples, d)
	}
	return rows.Err()
}
