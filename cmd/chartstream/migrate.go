package main

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/migrations"
)

func newMigrateCmd() *cobra.Command {
	var adminURL string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded database migrations (as the owner role)",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_ADMIN_URL", adminURL}); err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := pgx.Connect(ctx, adminURL)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", postgres.Redact(adminURL), err)
			}
			defer conn.Close(ctx)
			n, err := migrations.Up(ctx, conn)
			if err != nil {
				return err
			}
			current, _, err := migrations.Version(ctx, conn)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "migrations: applied %d, schema at version %d\n", n, current)
			return nil
		},
	}
	stringFlag(cmd.Flags(), &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "PostgreSQL URL of the owner role")
	return cmd
}
