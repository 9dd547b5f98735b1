// Command chartstream is the platform's one binary: the API server, the
// workers, migrations, tenant administration, verification and benchmarks.
// It is the only place that reads configuration and wires packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		// One clear line, no stack trace: the error names the setting or
		// the step that failed.
		fmt.Fprintf(os.Stderr, "chartstream: %s\n", oneLine(err))
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(ex.code)
		}
		os.Exit(1)
	}
}

// oneLine renders err on a single line: Validate joins every problem it
// finds with errors.Join, which separates them with newlines.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// exitError asks main for a specific exit code (verify uses 1 for a broken
// chain, 3 for a partly verified file and 2 for everything else).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// badInput makes an argument check's refusal bad input: one line and
// exit 2.
func badInput(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return exitError{2, err}
		}
		return nil
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chartstream",
		Short: "Multi-tenant, event-sourced clinical data platform",
		Long: `chartstream records clinicians' commands as tenant-tagged clinical events in a
PostgreSQL event store, publishes them on NATS JetStream, and serves read models
guarded by row-level security.

Every setting is an environment variable (12-factor); a flag overrides it.
Each subcommand's --help lists the variables it reads.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: prepare,
	}
	root.AddCommand(
		newServeCmd(),
		newWorkCmd(),
		newAllCmd(),
		newMigrateCmd(),
		newTenantCmd(),
		newDevCmd(),
		newVerifyCmd(),
		newExportCmd(),
		newTokenCmd(),
		newBenchCmd(),
		newProjectionsCmd(),
		newPatientCmd(),
		newKeysCmd(),
		newRelayCmd(),
		newChaosCmd(),
		newSubscriberCmd(),
		newHealthcheckCmd(),
	)
	// A malformed or unknown flag is bad input: exit 2, like every
	// other refusal of input, whichever subcommand it is given to.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{2, err} })
	root.Long += "\n\nEnvironment variables read by the subcommands:\n  " + strings.Join(envVars(root), "\n  ")
	root.Long += "\n\nEach can instead be read from a file: X" + fileSuffix + " names a file holding X's value\n(for secrets mounted as files, such as DATABASE_URL" + fileSuffix + "); setting both is an error."
	strictInputs(root)
	return root
}
