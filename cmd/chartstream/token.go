package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/auth"
)

// Dev token defaults; the server's JWT_ISSUER and JWT_AUDIENCE default to
// the same values.
const (
	defaultJWTIssuer   = "chartstream-dev"
	defaultJWTAudience = "chartstream"
)

func newTokenCmd() *cobra.Command {
	var keyFile, issuer, audience, tenantArg, sub string
	var roles []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --tenant T --role R --sub S [--ttl D]",
		Short: "Mint a bearer token with the dev signing key (development only)",
		Long: `token mints an ES256 JWT signed by the dev key that make up creates. The API
accepts it only when told to (JWT_ALLOW_DEV_KEY=true, which make run sets);
production verifies tokens from the identity provider's JWKS instead.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"JWT_DEV_KEY_FILE", keyFile}, [2]string{"--tenant", tenantArg}, [2]string{"--sub", sub}); err != nil {
				return err
			}
			tenant, err := chartstream.ParseTenantID(tenantArg)
			if err != nil {
				return errors.New("--tenant must be a tenant id (UUID)")
			}
			key, err := auth.LoadDevKey(keyFile)
			if err != nil {
				return err
			}
			rs := make([]chartstream.Role, len(roles))
			for i, r := range roles {
				rs[i] = chartstream.Role(r)
			}
			tok, err := auth.NewMinter(key).Mint(auth.MintParams{Tenant: tenant, Subject: sub, Roles: rs, TTL: ttl, Issuer: issuer, Audience: audience})
			if err != nil {
				return describe(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	stringFlag(cmd.Flags(), &keyFile, "jwt-dev-key-file", "JWT_DEV_KEY_FILE", "", "dev JWT signing key (ES256 PEM)")
	stringFlag(cmd.Flags(), &issuer, "jwt-issuer", "JWT_ISSUER", defaultJWTIssuer, "iss claim")
	stringFlag(cmd.Flags(), &audience, "jwt-audience", "JWT_AUDIENCE", defaultJWTAudience, "aud claim")
	cmd.Flags().StringVar(&tenantArg, "tenant", "", "tenant id")
	cmd.Flags().StringVar(&sub, "sub", "", "subject (user id)")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "role: clinician, nurse, tenant_admin, auditor, analyst (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "lifetime")
	return cmd
}
