package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

func newProjectionsCmd() *cobra.Command {
	var dbURL, adminURL, keyFile, tenantArg string
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Rebuild read models and show their progress",
	}
	pf := cmd.PersistentFlags()
	stringFlag(pf, &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(pf, &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL, to list tenants when --tenant is not given")
	stringFlag(pf, &keyFile, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key file (local key provider)")
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

	rebuild := &cobra.Command{
		Use:   "rebuild NAME|all",
		Short: "Replay the event store into fresh read model tables and swap them in",
		Long: `rebuild replays each tenant's history from the event store (not JetStream,
whose retention is limited) into the rebuild twins of the projection's tables,
then swaps them in per tenant in one short transaction. Reads keep working
throughout; the live projector waits only for the tenant being swapped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}); err != nil {
				return err
			}
			chosen, err := chooseProjections(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ids, err := scope(ctx)
			if err != nil {
				return err
			}
			store, pool, err := openStore(ctx, dbURL, keyFile, "chartstream-rebuild", commands.EventSpecs())
			if err != nil {
				return err
			}
			defer pool.Close()
			var total int64
			start := time.Now()
			for _, t := range ids {
				bar := newProgress(-1, "rebuilding "+t.String()[:8])
				stats, err := workers.Rebuild(ctx, pool, store, chosen, t, func(n int64) { _ = bar.Set64(n) })
				_ = bar.Finish()
				if err != nil {
					return fmt.Errorf("tenant %s: %w", t, err)
				}
				total += stats.Events
				fmt.Fprintf(cmd.OutOrStdout(), "tenant %s: %d events in %s (%.0f events/s)\n", t, stats.Events, stats.Duration.Round(time.Millisecond), rate(stats.Events, stats.Duration))
			}
			elapsed := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt %s for %d tenants: %d events in %s (%.0f events/s)\n", args[0], len(ids), total, elapsed.Round(time.Millisecond), rate(total, elapsed))
			return nil
		},
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Each projection's position and lag, per tenant",
		Args:  cobra.NoArgs,
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
	cmd.AddCommand(rebuild, status)
	return cmd
}

// chooseProjections returns the named read model, or all of them.
func chooseProjections(name string) ([]workers.RebuildProjection, error) {
	var out, all []workers.RebuildProjection
	var names []string
	for _, p := range readModels() {
		all = append(all, p)
		names = append(names, p.Name())
		if p.Name() == name {
			out = append(out, p)
		}
	}
	if name == "all" {
		return all, nil
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("unknown projection %q: one of %v or all", name, names)
	}
	return out, nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
