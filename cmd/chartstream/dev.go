package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/tlsconfig"
)

func newDevCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Development helpers for the local stack",
	}
	var phiKeyFile, jwtKeyFile, signingKeyFile, checkpointKeyFile string
	initKeys := &cobra.Command{
		Use:   "init-keys",
		Short: "Create the dev PHI master key, JWT signing key, message and checkpoint signing keys if absent (never overwrites)",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"PHI_KEY_FILE", phiKeyFile}, [2]string{"JWT_DEV_KEY_FILE", jwtKeyFile}); err != nil {
				return err
			}
			created, err := phi.CreateLocalKeyFile(phiKeyFile)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "created PHI master key %s\n", phiKeyFile)
			}
			if err := auth.CreateDevKey(jwtKeyFile); err != nil {
				return err
			}
			for _, f := range []string{signingKeyFile, checkpointKeyFile} {
				if f == "" {
					continue
				}
				if _, err := signing.CreateKeyFiles(f); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dev keys ready: %s, %s, %s, %s\n", phiKeyFile, jwtKeyFile, signingKeyFile, checkpointKeyFile)
			return nil
		},
	}
	stringFlag(initKeys.Flags(), &phiKeyFile, "phi-key-file", "PHI_KEY_FILE", "", "local PHI master key file")
	stringFlag(initKeys.Flags(), &jwtKeyFile, "jwt-dev-key-file", "JWT_DEV_KEY_FILE", "", "dev JWT signing key (ES256 PEM)")
	stringFlag(initKeys.Flags(), &signingKeyFile, "message-signing-key-file", "MESSAGE_SIGNING_KEY_FILE", "", "relay's message signing key (Ed25519 PEM; its .pub beside it)")
	stringFlag(initKeys.Flags(), &checkpointKeyFile, "checkpoint-signing-key-file", "CHECKPOINT_SIGNING_KEY_FILE", "", "anchor worker's checkpoint signing key (Ed25519 PEM; its .pub beside it)")
	cmd.AddCommand(initKeys, newDevInitTLSCmd())
	return cmd
}

func newDevInitTLSCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init-tls",
		Short: "Create a development CA and a server certificate for localhost, 127.0.0.1 and ::1 if absent (the CA is never replaced)",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return exitError{2, errors.New("--dir is required")}
			}
			files, wrote, err := tlsconfig.EnsureDev(dir)
			if err != nil {
				return err
			}
			for _, f := range wrote {
				fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", f)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dev TLS ready: CA %s, server certificate %s, key %s\n", files.CACert, files.Cert, files.Key)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the dev CA and server certificate (the local stack uses .local/secrets/tls)")
	return cmd
}
