package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/workers"
)

// verifyParams are verify's settings.
type verifyParams struct {
	dbURL, natsURL, stream, tenant, file, keyFiles, signingKeyFile string
	nats                                                           messaging.Config
	asJSON                                                         bool
	grace                                                          time.Duration
	minSeq                                                         int64
}

func newVerifyCmd() *cobra.Command {
	var p verifyParams
	cmd := &cobra.Command{
		Use:   "verify --tenant T | --file F",
		Short: "Prove a tenant's history was not altered or removed (signed checkpoints, hash chains)",
		Long: `verify --tenant reads every event of the tenant once, in commit order, recomputes
each event's hash from its content and its stream's chain, and the tenant's
running hash up to the newest validly signed checkpoint (the table's, or the
newer one on CLINICAL_ANCHORS when NATS_URL is set), and compares count and
hash with what the checkpoint signed. It also checks every checkpoint row's
signature and sequence. Events committed after the checkpoint are reported as
not yet anchored, not as tampering.

Events older than --anchor-grace that no signed checkpoint covers are a
finding (anchor_overdue): the anchor signs every few seconds, so old
unanchored history means deleted checkpoints or a stopped anchor worker.

verify --file checks an NDJSON export (chartstream export, GET
/v1/audit/events) offline, against the checkpoint it carries, with the public
key given by --public-key; it needs no database. Only a validly signed
checkpoint vouches for events: a file without one, or with one older than
--checkpoint-seq, is not verified, and events after the file's checkpoint are
named as covered by nothing.

Exit status: 0 when everything holds (for a file: every event covered by its
signed checkpoint), 1 naming each finding (a stream's broken chain, events
missing, added or altered since the checkpoint, a checkpoint replaced, deleted,
absent or overdue), 2 when the check could not run, 3 when a file is only
partly verified: what its checkpoint covers holds, and nothing vouches for the
events after it.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var report audit.Report
			var err error
			if p.file != "" {
				report, err = verifyFile(p)
			} else {
				bar := newProgress(-1, "verifying")
				report, err = verifyTenant(cmd.Context(), p, func(done, total int64) {
					bar.ChangeMax64(total)
					_ = bar.Set64(done)
				})
				_ = bar.Finish()
			}
			if err != nil {
				return exitError{2, err}
			}
			return printVerifyReport(cmd.OutOrStdout(), report, p.asJSON)
		},
	}
	f := cmd.Flags()
	stringFlag(f, &p.dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(f, &p.natsURL, "nats-url", "NATS_URL", "", "NATS server of CLINICAL_ANCHORS (without it, the newest checkpoint rows' deletion goes unnoticed)")
	natsAuthFlags(f, &p.nats)
	stringFlag(f, &p.stream, "anchor-stream", "ANCHOR_STREAM", workers.DefaultAnchorStream, "JetStream stream of signed checkpoints")
	checkpointKeyFlag(f, &p.keyFiles, "public-key")
	stringFlag(f, &p.signingKeyFile, "checkpoint-signing-key-file", "CHECKPOINT_SIGNING_KEY_FILE", "", "its .pub is the default public key")
	f.StringVar(&p.tenant, "tenant", "", "tenant id")
	f.StringVar(&p.file, "file", "", "an NDJSON export to verify offline")
	f.BoolVar(&p.asJSON, "json", false, "print the report as one JSON object")
	anchorGraceFlag(f, &p.grace)
	f.Int64Var(&p.minSeq, "checkpoint-seq", 0, "with --file: the oldest checkpoint the file may carry (one you hold from CLINICAL_ANCHORS or an earlier export)")
	return cmd
}

// anchorGraceFlag declares --anchor-grace (ANCHOR_GRACE).
func anchorGraceFlag(f *pflag.FlagSet, p *time.Duration) {
	durationFlag(f, p, "anchor-grace", "ANCHOR_GRACE", audit.DefaultAnchorGrace,
		"how old an event may be before a signed checkpoint must cover it (several ANCHOR_INTERVALs)")
}

// verifyTenant checks a tenant's history in the database.
func verifyTenant(ctx context.Context, p verifyParams, progress eventstore.ProgressFn) (audit.Report, error) {
	var none audit.Report
	if err := required([2]string{"--tenant (or --file)", p.tenant}, [2]string{"DATABASE_URL", p.dbURL}); err != nil {
		return none, err
	}
	tenant, err := chartstream.ParseTenantID(p.tenant)
	if err != nil {
		return none, errors.New("--tenant must be a tenant id (UUID)")
	}
	if p.grace <= 0 {
		return none, errors.New("--anchor-grace must be a positive duration, e.g. 1m")
	}
	keys, err := checkpointKeys(p.keyFiles, p.signingKeyFile)
	if err != nil {
		return none, err
	}
	if err := tenantExists(ctx, p.dbURL, tenant); err != nil {
		return none, err
	}
	store, pool, err := openSealedStore(ctx, p.dbURL, "chartstream-verify")
	if err != nil {
		return none, err
	}
	defer pool.Close()
	v := audit.Verifier{History: store, Keys: keys, AnchorGrace: p.grace}
	if p.natsURL != "" {
		nc, js, err := connectJetStream(ctx, p.nats, p.natsURL, "chartstream-verify")
		if err != nil {
			return none, err
		}
		defer nc.Close()
		v.Anchors = workers.NewAnchorStream(js, workers.AnchorStreamConfig{Stream: p.stream})
	}
	return v.Verify(ctx, tenant, progress)
}

// verifyFile checks an export offline.
func verifyFile(p verifyParams) (audit.Report, error) {
	if p.tenant != "" {
		return audit.Report{}, errors.New("--file and --tenant exclude each other")
	}
	if p.minSeq < 0 {
		return audit.Report{}, errors.New("--checkpoint-seq must be a checkpoint's sequence number (1 or more)")
	}
	keys, err := checkpointKeys(p.keyFiles, p.signingKeyFile)
	if err != nil {
		return audit.Report{}, err
	}
	f, err := os.Open(p.file)
	if err != nil {
		return audit.Report{}, fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	report, err := audit.VerifyFile(f, audit.FileParams{Keys: keys, MinSeq: p.minSeq})
	if errors.Is(err, audit.ErrNotVerifiable) {
		return report, fmt.Errorf("--file %s: %w", p.file, err)
	}
	return report, err
}

// printVerifyReport prints the report and returns exit 1 when it has
// findings.
func printVerifyReport(out io.Writer, r audit.Report, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(out).Encode(r); err != nil {
			return exitError{2, err}
		}
	} else {
		anchored := "no signed checkpoint yet"
		if c := r.Checkpoint; c != nil {
			anchored = fmt.Sprintf("checkpoint %d (%s, signed %s) anchors %d", c.Seq, r.CheckpointSource, c.SignedAt.Format("2006-01-02T15:04:05Z"), r.Anchored)
		}
		fmt.Fprintf(out, "%d events in %d streams; %s; %d committed since, not yet anchored\n", r.Events, r.Streams, anchored, r.Unanchored)
		if r.CheckpointSource != "file" && !r.AnchorsConsulted {
			fmt.Fprintln(out, "CLINICAL_ANCHORS not consulted (no NATS_URL): a deleted newest checkpoint row would go unnoticed")
		}
		for _, f := range r.Findings {
			fmt.Fprintf(out, "FINDING %s: %s\n", f.Kind, f.Detail)
		}
		if r.OK {
			fmt.Fprintln(out, "OK")
		}
	}
	if r.Partial {
		return exitError{3, fmt.Errorf("PARTIALLY VERIFIED: the %d events checkpoint %d covers hold; nothing vouches for the %d after it", r.Anchored, r.Checkpoint.Seq, r.Unanchored)}
	}
	if !r.OK {
		return exitError{1, fmt.Errorf("BROKEN: %d findings, the first: %s: %s", len(r.Findings), r.Findings[0].Kind, r.Findings[0].Detail)}
	}
	return nil
}
