package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDevCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Development helpers for the local stack",
	}
	var phiKeyFile, jwtKeyFile string
	initKeys := &cobra.Command{
		Use:   "init-keys",
		Short: "Create the dev PHI master key and JWT signing key if absent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"PHI_KEY_FILE", phiKeyFile}, [2]string{"JWT_DEV_KEY_FILE", jwtKeyFile}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "dev keys: TODO")
			return nil
		},
	}
	stringFlag(initKeys.Flags(), &phiKeyFile, "phi-key-file", "PHI_KEY_FILE", "", "local PHI master key file")
	stringFlag(initKeys.Flags(), &jwtKeyFile, "jwt-dev-key-file", "JWT_DEV_KEY_FILE", "", "dev JWT signing key (ES256 PEM)")
	cmd.AddCommand(initKeys)
	return cmd
}
