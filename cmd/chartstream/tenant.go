package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
)

func newTenantCmd() *cobra.Command {
	var adminURL string
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Administer tenants (hospitals and clinics); uses the owner role",
	}
	stringFlag(cmd.PersistentFlags(), &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "PostgreSQL URL of the owner role")

	admin := func(cmd *cobra.Command) (*tenants.Admin, func(), error) {
		if err := required([2]string{"DATABASE_ADMIN_URL", adminURL}); err != nil {
			return nil, nil, err
		}
		pool, err := postgres.Connect(cmd.Context(), postgres.Config{URL: adminURL, MaxConns: 2, ApplicationName: "chartstream-tenant"})
		if err != nil {
			return nil, nil, err
		}
		return tenants.NewAdmin(pool), pool.Close, nil
	}

	var slug, name, tier string
	var ifNotExists bool
	create := &cobra.Command{
		Use:   "create --slug S --name N --tier T",
		Short: "Create a tenant and print its id",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, done, err := admin(cmd)
			if err != nil {
				return err
			}
			defer done()
			t, err := a.Create(cmd.Context(), tenants.NewTenant{Slug: slug, Name: name, Tier: chartstream.Tier(tier)})
			if ifNotExists && chartstream.ErrorCode(err) == chartstream.ECONFLICT {
				t, err = a.BySlug(cmd.Context(), slug)
			}
			if err != nil {
				return describe(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.ID)
			return nil
		},
	}
	create.Flags().StringVar(&slug, "slug", "", "short unique name: lowercase letters, digits, dashes")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringVar(&tier, "tier", string(chartstream.TierStandard), "standard, premium or enterprise")
	create.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "print the existing tenant's id when the slug is taken")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, done, err := admin(cmd)
			if err != nil {
				return err
			}
			defer done()
			all, err := a.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(all)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSLUG\tTIER\tSTATUS\tNAME")
			for _, t := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Slug, t.Tier, t.Status, t.Name)
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	setStatus := func(use, short string, status chartstream.TenantStatus) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID|SLUG",
			Short: short,
			Args:  badInput(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				a, done, err := admin(cmd)
				if err != nil {
					return err
				}
				defer done()
				t, err := a.SetStatus(cmd.Context(), args[0], status)
				if err != nil {
					return describe(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", t.ID, t.Status)
				return nil
			},
		}
	}
	cmd.AddCommand(create, list,
		setStatus("suspend", "Suspend a tenant: its tokens are refused", chartstream.TenantSuspended),
		setStatus("activate", "Reactivate a suspended tenant", chartstream.TenantActive),
	)
	return cmd
}

// describe renders a domain error with its field problems on one line.
func describe(err error) error {
	var e *chartstream.Error
	if !errors.As(err, &e) || len(e.Fields) == 0 {
		return err
	}
	msg := e.Message
	for _, f := range e.Fields {
		msg += fmt.Sprintf("; %s %s", f.Field, f.Reason)
	}
	return errors.New(msg)
}
