package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/natsauth"
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
	var natsDir, natsConf, resolverDir string
	initNATS := &cobra.Command{
		Use:   "init-nats --dir D --conf F --resolver-dir R",
		Short: "Create the dev NATS operator, accounts and users if absent (never replaces them), and write nats-server's auth config",
		Long: `init-nats sets up decentralized (JWT) authentication for the local nats-server:
an operator with a signing key, a system account and its user, the platform
account CHARTSTREAM (JetStream) with a signing key, and the platform user whose
.creds every chartstream process connects with. Keys go to --dir (0700; seeds
0600); nats-server's config, with a full account resolver in --resolver-dir, to
--conf. Existing keys are kept: the resolver holds the account JWT with the
subscribers' revocations.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if natsDir == "" || natsConf == "" || resolverDir == "" {
				return exitError{2, errors.New("--dir, --conf and --resolver-dir are required")}
			}
			created, err := natsauth.DevSetup(natsDir, natsConf, resolverDir)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "created NATS operator, accounts and users in %s\n", natsDir)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "NATS auth config ready: %s\n", natsConf)
			return nil
		},
	}
	initNATS.Flags().StringVar(&natsDir, "dir", "", "directory of the keys and creds")
	initNATS.Flags().StringVar(&natsConf, "conf", "", "nats-server auth config to write")
	initNATS.Flags().StringVar(&resolverDir, "resolver-dir", "", "nats-server's account resolver directory")
	cmd.AddCommand(initKeys, initNATS, newDevInitTLSCmd())
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
