package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
)

func newVerifyCmd() *cobra.Command {
	var keys phiKeys
	var dbURL, tenantArg string
	cmd := &cobra.Command{
		Use:   "verify --tenant T",
		Short: "Prove a tenant's event history was not altered (hash chains)",
		Long: `verify walks every event stream of the tenant in version order, recomputes each
event's hash from its stored fields and its predecessor's hash, and stops at the
first event that does not hold.

Exit status: 0 when every chain holds, 1 naming the first broken event (stream,
version, event id), 2 when the check could not run.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}, [2]string{"--tenant", tenantArg}); err != nil {
				return exitError{2, err}
			}
			tenant, err := chartstream.ParseTenantID(tenantArg)
			if err != nil {
				return exitError{2, errors.New("--tenant must be a tenant id (UUID)")}
			}
			store, pool, err := openStore(cmd.Context(), dbURL, keys, "chartstream-verify", commands.EventSpecs())
			if err != nil {
				return exitError{2, err}
			}
			defer pool.Close()
			bar := newProgress(-1, "verifying")
			report, err := store.Verify(cmd.Context(), tenant, func(done, total int64) {
				bar.ChangeMax64(total)
				_ = bar.Set64(done)
			})
			_ = bar.Finish()
			if err != nil {
				return exitError{2, err}
			}
			if b := report.Broken; b != nil {
				return exitError{1, fmt.Errorf("BROKEN: %s at stream %s/%s version %d event %s (after %d events in %d streams)",
					b.Reason, b.Stream.Type, b.Stream.ID, b.Version, b.EventID, report.Events, report.Streams)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %d events in %d streams verified\n", report.Events, report.Streams)
			return nil
		},
	}
	stringFlag(cmd.Flags(), &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	phiKeyFlags(cmd.Flags(), &keys)
	cmd.Flags().StringVar(&tenantArg, "tenant", "", "tenant id")
	return cmd
}
