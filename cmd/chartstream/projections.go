package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

func newProjectionsCmd() *cobra.Command {
	var keys phiKeys
	var dbURL, adminURL, tenantArg string
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Rebuild read models and show their progress",
	}
	pf := cmd.PersistentFlags()
	stringFlag(pf, &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(pf, &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL, to list tenants when --tenant is not given")
	phiKeyFlags(pf, &keys)
	pf.StringVar(&tenantArg, "tenant", "", "one tenant's id; default every tenant")

	// scope returns the tenants to work on.
	scope := func(ctx context.Context) ([]chartstream.TenantID, error) {
		if tenantArg != "" {
			t, err := chartstream.ParseTenantID(tenantArg)
			if err != nil {
				return nil, errors.New("--tenant must be a tenant id (UUID)")
			}
			return []chartstream.TenantID{t}, nil
		}
		if err := required([2]string{"DATABASE_ADMIN_URL", adminURL}); err != nil {
			return nil, err
		}
		pool, err := postgres.Connect(ctx, postgres.Config{URL: adminURL, MaxConns: 2, ApplicationName: "chartstream-projections"})
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		all, err := tenants.NewAdmin(pool).List(ctx)
		if err != nil {
			return nil, err
		}
		ids := make([]chartstream.TenantID, len(all))
		for i, t := range all {
			ids[i] = t.ID
		}
		return ids, nil
	}

	// copies opens what working on the tenants' standby copies needs.
	copies := func(ctx context.Context, appName string) (workers.CopyDeps, func(), error) {
		if err := required([2]string{"DATABASE_URL", dbURL}); err != nil {
			return workers.CopyDeps{}, nil, exitError{2, err}
		}
		store, pool, err := openStore(ctx, dbURL, keys, appName, commands.EventSpecs())
		if err != nil {
			return workers.CopyDeps{}, nil, exitError{2, err}
		}
		return workers.CopyDeps{DB: pool, History: store}, pool.Close, nil
	}

	rebuild := &cobra.Command{
		Use:   "rebuild [all]",
		Short: "Replay the event store into the read models' standby copy and switch to it",
		Long: `rebuild replays each tenant's history from the event store (not JetStream,
whose retention is limited) into the standby copy of its read models, in short
transactions, then makes that copy the live one in one tiny transaction. Reads
keep working on the live copy throughout, and the relay keeps publishing; the
live projector pauses only for the tenant being switched, and only while the
standby catches up its last events. Every read model is replayed: the copies
switch as a whole.

Events a projection cannot apply are set aside and listed, not fatal.`,
		Args: badInput(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] != "all" {
				return exitError{2, fmt.Errorf("a rebuild replays every read model of a tenant together (they switch as one copy): use %q or no argument", "all")}
			}
			ctx := cmd.Context()
			ids, err := scope(ctx)
			if err != nil {
				return exitError{2, err}
			}
			deps, closeDeps, err := copies(ctx, "chartstream-rebuild")
			if err != nil {
				return err
			}
			defer closeDeps()
			var total int64
			start := time.Now()
			for _, t := range ids {
				bar := newProgress(-1, "rebuilding "+t.String()[:8])
				stats, err := workers.Rebuild(ctx, deps, readModels(), t, func(n int64) { _ = bar.Set64(n) })
				_ = bar.Finish()
				if err != nil {
					return fmt.Errorf("tenant %s: %w", t, err)
				}
				total += stats.Events
				fmt.Fprintf(cmd.OutOrStdout(), "tenant %s: %d events in %s (%.0f events/s)\n", t, stats.Events, stats.Duration.Round(time.Millisecond), rate(stats.Events, stats.Duration))
				for _, a := range stats.SetAside {
					fmt.Fprintf(cmd.OutOrStdout(), "  set aside: event %s (%s, position %d) in %s: %s\n", a.EventID, a.EventType, a.Position, a.Projection, a.Reason)
				}
			}
			elapsed := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt the read models of %d tenants: %d events in %s (%.0f events/s)\n", len(ids), total, elapsed.Round(time.Millisecond), rate(total, elapsed))
			return nil
		},
	}

	var verifyJSON bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Replay the event store and compare it with the live read models, row by row",
		Long: `verify replays each tenant's history from the event store into the standby copy
of its read models, up to exactly where the live read models' checkpoints say
they are, and compares the two copies row by row (a digest of each row's
content). It trusts no checkpoint: a read model that missed an event its
checkpoint claims shows as a missing or differing row.

Exit status: 0 when every tenant's read models equal the replay; 1 naming each
differing table and row key (ids only), and events set aside; 2 when the check
could not run.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ids, err := scope(ctx)
			if err != nil {
				return exitError{2, err}
			}
			deps, closeDeps, err := copies(ctx, "chartstream-verify")
			if err != nil {
				return err
			}
			defer closeDeps()
			if err := knownTenants(ctx, deps.DB, ids); err != nil {
				return exitError{2, err}
			}
			var reports []workers.ProjectionReport
			ok := true
			for _, t := range ids {
				bar := newProgress(-1, "verifying "+t.String()[:8])
				r, err := workers.VerifyProjections(ctx, deps, readModels(), t, func(n int64) { _ = bar.Set64(n) })
				_ = bar.Finish()
				if err != nil {
					return exitError{2, fmt.Errorf("tenant %s: %w", t, err)}
				}
				reports = append(reports, r)
				ok = ok && r.OK()
			}
			if verifyJSON {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"ok": ok, "tenants": reports}); err != nil {
					return err
				}
			} else {
				printProjectionReports(cmd.OutOrStdout(), reports)
			}
			if !ok {
				return exitError{1, errors.New("the read models differ from the event store")}
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&verifyJSON, "json", false, "print one JSON object")

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Each projection's position and lag, per tenant",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}); err != nil {
				return err
			}
			ctx := cmd.Context()
			ids, err := scope(ctx)
			if err != nil {
				return err
			}
			pool, err := postgres.Connect(ctx, postgres.Config{URL: dbURL, MaxConns: 2, ApplicationName: "chartstream-projections"})
			if err != nil {
				return err
			}
			defer pool.Close()
			var names []string
			for _, p := range readModels() {
				names = append(names, p.Name())
			}
			var all []workers.ProjectionStatus
			for _, t := range ids {
				s, err := workers.Status(ctx, pool, names, t)
				if err != nil {
					return err
				}
				all = append(all, s...)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(all)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TENANT\tPROJECTION\tPOSITION\tLAG EVENTS\tLAG SECONDS")
			for _, s := range all {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%.1f\n", s.Tenant, s.Projection, s.Position, s.LagEvents, s.LagSeconds)
			}
			return w.Flush()
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(rebuild, verify, status)
	return cmd
}

// knownTenants fails with one line for the first id that names no tenant.
func knownTenants(ctx context.Context, pool *pgxpool.Pool, ids []chartstream.TenantID) error {
	dir := tenants.NewDirectory(pool)
	for _, id := range ids {
		if _, err := dir.Lookup(ctx, id); err != nil {
			if chartstream.ErrorCode(err) == chartstream.ENOTFOUND {
				return fmt.Errorf("unknown tenant %s", id)
			}
			return err
		}
	}
	return nil
}

// printProjectionReports writes a line per tenant and one per difference.
func printProjectionReports(w io.Writer, reports []workers.ProjectionReport) {
	for _, r := range reports {
		status := "OK"
		if !r.OK() {
			status = "DIFFERS"
		}
		fmt.Fprintf(w, "%s: tenant %s: %d rows compared with a replay of %d events, %d differences, %d events set aside\n",
			status, r.Tenant, r.Rows, r.Events, r.Differences, len(r.SetAside))
		for _, d := range r.Examples {
			keys := make([]string, 0, len(d.Key))
			for _, k := range slices.Sorted(maps.Keys(d.Key)) {
				keys = append(keys, k+"="+d.Key[k])
			}
			fmt.Fprintf(w, "  %s row %s: %s\n", d.Table, strings.Join(keys, " "), d.Kind)
		}
		for _, a := range r.SetAside {
			fmt.Fprintf(w, "  set aside: event %s (%s, position %d) in %s: %s\n", a.EventID, a.EventType, a.Position, a.Projection, a.Reason)
		}
	}
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
