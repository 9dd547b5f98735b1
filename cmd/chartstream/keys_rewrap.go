package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/tenants"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Administer the PHI keys' wrapping",
	}
	cmd.AddCommand(newKeysRewrapCmd())
	return cmd
}

func newKeysRewrapCmd() *cobra.Command {
	var keys phiKeys
	var adminURL, tenantArg, fromKeyFile string
	cmd := &cobra.Command{
		Use:   "rewrap [--tenant T]",
		Short: "Wrap every live data and tenant key again under the current key-encryption key",
		Long: `Wrap every live key again: each patient's data key (erased ones stay erased)
and each tenant key is unwrapped and wrapped anew by the configured key
provider, for the key-encryption key it now uses for the tenant.

With aws-kms, run it after moving a tenant's KMS alias (or AWS_KMS_KEY_ID)
to a new key: the wrapped keys name the KMS key that made them, so the
running platform reads both meanwhile. Once it has finished nothing needs
the old key, which can be disabled and scheduled for deletion, so that the
copies of the wrapped keys in backups and WAL archives can no longer be
opened.

With the local provider, --from-phi-key-file names the master key being
retired and PHI_KEY_FILE the new one; stop every process first (they know
only the old key) and start them with the new one after.

Safe to run again (keys already under the new key are counted current).
Runs as the owner role (DATABASE_ADMIN_URL): the app role may not replace
tenant keys. Exit status: 0 done, 1 failed part way (run it again), 2 bad
input.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_ADMIN_URL", adminURL}); err != nil {
				return exitError{2, err}
			}
			if err := keys.Validate(); err != nil {
				return exitError{2, err}
			}
			var only []chartstream.TenantID
			if tenantArg != "" {
				t, err := chartstream.ParseTenantID(tenantArg)
				if err != nil {
					return exitError{2, errors.New("--tenant must be a tenant id (UUID)")}
				}
				only = append(only, t)
			}
			ctx := cmd.Context()
			store, pool, err := openStore(ctx, adminURL, keys, "chartstream-rewrap", commands.EventSpecs())
			if err != nil {
				return err
			}
			defer pool.Close()
			// The retiring local master key, or the configured provider
			// itself (a KMS alias moved: its wrapped keys name their key).
			retiring := keys
			if fromKeyFile != "" {
				retiring = phiKeys{Provider: keyProviderLocal, File: fromKeyFile}
			}
			old, err := retiring.open(ctx)
			if err != nil {
				return exitError{2, fmt.Errorf("the retiring key: %w", err)}
			}
			if only == nil {
				all, err := tenants.NewAdmin(pool).List(ctx)
				if err != nil {
					return err
				}
				for _, t := range all {
					only = append(only, t.ID)
				}
			}
			for _, tenant := range only {
				bar := newProgress(-1, "rewrapping "+tenant.String())
				stats, err := store.Rewrap(ctx, tenant, old, func(s eventstore.RewrapStats) { _ = bar.Set(s.Rewrapped + s.Current) })
				_ = bar.Finish()
				if err != nil {
					return fmt.Errorf("tenant %s: %w", tenant, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "tenant %s: %d keys wrapped again, %d current already\n", tenant, stats.Rewrapped, stats.Current)
			}
			return nil
		},
	}
	stringFlag(cmd.Flags(), &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "PostgreSQL URL of the owner role")
	phiKeyFlags(cmd.Flags(), &keys)
	cmd.Flags().StringVar(&fromKeyFile, "from-phi-key-file", "", "local master key being retired (local provider); default: the configured provider unwraps")
	cmd.Flags().StringVar(&tenantArg, "tenant", "", "one tenant's id; default every tenant")
	return cmd
}
