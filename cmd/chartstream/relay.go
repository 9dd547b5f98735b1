package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

func newRelayCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "relay", Short: "Check the relay's work"}
	cmd.AddCommand(newRelayVerifyCmd())
	return cmd
}

// relayVerifyParams are relay verify's settings.
type relayVerifyParams struct {
	relayURL, dbURL, natsURL, stream, tenant string
	nats                                     messaging.Config
}

func newRelayVerifyCmd() *cobra.Command {
	var p relayVerifyParams
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--tenant T] [--json]",
		Short: "Check that JetStream holds every committed event once, in order",
		Long: `verify reads the relay's stream (headers only) and the event store up to its
head when the check begins, and compares them: events missing from the stream,
duplicated in it, out of the store's commit order, and messages naming no stored
event. Events older than the stream's first message (removed by retention) and
messages for events committed during the check are counted, not errors. It
reads the data, never the relay's checkpoint, and prints event ids only.

Exit status: 0 when the stream matches the store, 1 listing each kind of
discrepancy with example event ids, 2 when the check could not run.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitError{2, fmt.Errorf("relay verify takes no arguments, got %q", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			bar := newProgress(-1, "verifying relay")
			report, err := relayVerify(cmd.Context(), p, func(done, total int64) {
				bar.ChangeMax64(total)
				_ = bar.Set64(done)
			})
			_ = bar.Finish()
			if err != nil {
				return exitError{2, err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := json.NewEncoder(out).Encode(struct {
					OK bool `json:"ok"`
					workers.RelayReport
				}{report.OK(), report}); err != nil {
					return exitError{2, err}
				}
			} else {
				printRelayReport(out, report)
			}
			if !report.OK() {
				return exitError{1, fmt.Errorf("relay verify: %d missing, %d duplicated, %d out of order, %d extra",
					report.Missing.Count, report.Duplicated.Count, report.OutOfOrder.Count, report.Extra.Count)}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(flagError)
	f := cmd.Flags()
	stringFlag(f, &p.relayURL, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role (reads every tenant's events)")
	stringFlag(f, &p.dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role, to check that --tenant exists")
	stringFlag(f, &p.natsURL, "nats-url", "NATS_URL", "", "NATS server of the relay's stream")
	natsAuthFlags(f, &p.nats)
	stringFlag(f, &p.stream, "relay-stream", "RELAY_STREAM", workers.DefaultStream, "JetStream stream the relay publishes to")
	f.StringVar(&p.tenant, "tenant", "", "one tenant's id; default every tenant")
	f.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	return cmd
}

// relayVerify connects to the event store and NATS and runs the check.
// Every error means the check could not run.
func relayVerify(ctx context.Context, p relayVerifyParams, progress eventstore.ProgressFn) (workers.RelayReport, error) {
	var none workers.RelayReport
	if err := required([2]string{"DATABASE_RELAY_URL", p.relayURL}, [2]string{"NATS_URL", p.natsURL}); err != nil {
		return none, err
	}
	var tenant chartstream.TenantID
	if p.tenant != "" {
		var err error
		if tenant, err = chartstream.ParseTenantID(p.tenant); err != nil {
			return none, errors.New("--tenant must be a tenant id (UUID)")
		}
		if err := tenantExists(ctx, p.dbURL, tenant); err != nil {
			return none, err
		}
	}
	pool, err := postgres.Connect(ctx, postgres.Config{URL: p.relayURL, MaxConns: 2, ApplicationName: "chartstream-relay-verify"})
	if err != nil {
		return none, err
	}
	defer pool.Close()
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		return none, err
	}
	store, err := eventstore.New(pool, reg, noPHIKeys{}, eventstore.Config{})
	if err != nil {
		return none, err
	}
	natsCfg := p.nats
	natsCfg.URL, natsCfg.Name = p.natsURL, "chartstream-relay-verify"
	nc, err := messaging.Connect(ctx, logging.New(io.Discard, slog.LevelError), natsCfg)
	if err != nil {
		return none, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		return none, err
	}
	return workers.VerifyRelay(ctx, workers.RelayVerifyDeps{Events: store, JetStream: js},
		workers.RelayVerifyOptions{Stream: p.stream, Tenant: tenant, Progress: progress})
}

// tenantExists looks the tenant up as the app role, which sees a tenant's
// own row only (the relay role cannot read tenants).
func tenantExists(ctx context.Context, dbURL string, tenant chartstream.TenantID) error {
	if err := required([2]string{"DATABASE_URL (to check --tenant)", dbURL}); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, postgres.Config{URL: dbURL, MaxConns: 1, ApplicationName: "chartstream-relay-verify"})
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = tenants.NewDirectory(pool).Lookup(ctx, tenant)
	if chartstream.ErrorCode(err) == chartstream.ENOTFOUND {
		return fmt.Errorf("no tenant %s", tenant)
	}
	return err
}

// noPHIKeys is the key provider of a store that reads events as stored:
// relay verify compares ids and order, and has no business opening PHI.
type noPHIKeys struct{}

var errNoPHIKeys = errors.New("relay verify holds no PHI keys")

func (noPHIKeys) WrapKey(context.Context, chartstream.TenantID, []byte) ([]byte, error) {
	return nil, errNoPHIKeys
}

func (noPHIKeys) UnwrapKey(context.Context, chartstream.TenantID, []byte) ([]byte, error) {
	return nil, errNoPHIKeys
}

// printRelayReport prints the report for a person: a summary, then each
// kind of discrepancy found with its example event ids.
func printRelayReport(w io.Writer, r workers.RelayReport) {
	verdict := "OK"
	if !r.OK() {
		verdict = "DISCREPANCIES"
	}
	fmt.Fprintf(w, "%s: %d events in the store, %d messages in stream %s compared (up to txid %d position %d)\n",
		verdict, r.StoreEvents, r.StreamMessages, r.Stream, r.Head.TxID, r.Head.Position)
	for _, k := range []struct {
		name string
		d    workers.RelayDiscrepancy
	}{
		{"missing (in the store, not in the stream)", r.Missing},
		{"duplicated (in the stream more than once)", r.Duplicated},
		{"out of order (published before an event committed earlier)", r.OutOfOrder},
		{"extra (in the stream, not in the store)", r.Extra},
		{"expired from the stream by retention (not an error)", r.Expired},
	} {
		if k.d.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d", k.name, k.d.Count)
		if len(k.d.Examples) > 0 {
			ids := make([]string, len(k.d.Examples))
			for i, id := range k.d.Examples {
				ids[i] = id.String()
			}
			fmt.Fprintf(w, ", e.g. %s", strings.Join(ids, " "))
		}
		fmt.Fprintln(w)
	}
	if r.NewerMessages > 0 {
		fmt.Fprintf(w, "newer than the check, not compared: %d messages\n", r.NewerMessages)
	}
}
