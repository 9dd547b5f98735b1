package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/workers"
)

// exportParams are export's settings.
type exportParams struct {
	dbURL, natsURL, stream, keyFiles, signingKeyFile string
	phiKeys                                          phiKeys
	nats                                             messaging.Config
	tenant, since, until, format, out, after         string
	streamType, eventType, patient                   string
	actor, purpose                                   string
	anchored                                         bool
}

// exportRoute names the CLI export in the PHI access log, where the API's
// entries carry "GET /v1/audit/events".
const exportRoute = "chartstream export"

// exportRole is the role the CLI export's access entry records: whoever
// runs it holds the app role's database URL and the PHI key, not a token.
const exportRole = "cli"

func newExportCmd() *cobra.Command {
	var p exportParams
	cmd := &cobra.Command{
		Use:   "export --tenant T [--since S] [--until U] [--format ndjson|csv] [--out F]",
		Short: "Export a tenant's history for auditors (NDJSON or CSV), PHI decrypted",
		Long: `export writes every event of the tenant (or those the filters select) in commit
order, as recorded: its metadata (actor, correlation id, recorded time), its
hash and its predecessor's, and its PHI decrypted (a shredded patient's PHI
reads as erased). NDJSON starts with a line describing the export and the
newest signed checkpoint, and ends with a line counting the events; a full
export (no filters) can be verified offline: chartstream verify --file F
--public-key K. Rows stream from the database to the file: memory stays
constant. The file holds PHI: it is created readable by its owner only.

Before it opens any PHI, export writes one entry to the PHI access log (who:
--actor, default the OS user; why: --purpose-of-use, an HL7 PurposeOfUse code,
default TREAT; route "chartstream export"); if the entry cannot be written,
nothing is exported.

--since and --until bound the recorded time (RFC 3339; since <= t < until);
--after resumes after an event: its line's cursor. --anchored ends the export
with the last event the newest signed checkpoint covers, so that verify --file
finds none unanchored (exit 0 rather than 3 while the tenant is written to).

Exit status: 0 when written, 2 for bad input or when the export could not run.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			params, err := p.parse()
			if err != nil {
				return exitError{2, err}
			}
			if err := runExport(cmd.Context(), p, params, cmd.OutOrStdout()); err != nil {
				return exitError{2, err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	stringFlag(f, &p.dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	phiKeyFlags(f, &p.phiKeys)
	stringFlag(f, &p.natsURL, "nats-url", "NATS_URL", "", "NATS server of CLINICAL_ANCHORS (for the newest checkpoint)")
	natsAuthFlags(f, &p.nats)
	stringFlag(f, &p.stream, "anchor-stream", "ANCHOR_STREAM", workers.DefaultAnchorStream, "JetStream stream of signed checkpoints")
	checkpointKeyFlag(f, &p.keyFiles, "checkpoint-verify-key-files")
	stringFlag(f, &p.signingKeyFile, "checkpoint-signing-key-file", "CHECKPOINT_SIGNING_KEY_FILE", "", "its .pub is the default public key")
	f.StringVar(&p.tenant, "tenant", "", "tenant id")
	f.StringVar(&p.since, "since", "", "first recorded time (RFC 3339)")
	f.StringVar(&p.until, "until", "", "recorded time to stop before (RFC 3339)")
	f.StringVar(&p.format, "format", audit.FormatNDJSON, "ndjson or csv")
	f.StringVar(&p.out, "out", "", "file to write (default standard output)")
	f.BoolVar(&p.anchored, "anchored", false, "end with the last event the newest checkpoint covers: a full export then verifies with none unanchored")
	f.StringVar(&p.after, "after", "", "resume after the event line with this cursor")
	f.StringVar(&p.streamType, "stream-type", "", "only streams of this type (patient, encounter, medication_order)")
	f.StringVar(&p.eventType, "event-type", "", "only events of this type")
	f.StringVar(&p.patient, "patient", "", "only this patient's streams (patient id)")
	f.StringVar(&p.actor, "actor", "", "who reads, for the PHI access log (default the OS user)")
	f.StringVar(&p.purpose, "purpose-of-use", accesslog.DefaultPurpose, "why, for the PHI access log: an HL7 PurposeOfUse code")
	return cmd
}

// parse checks the flags and returns what to export; every error is bad
// input.
func (p exportParams) parse() (audit.ExportParams, error) {
	var out audit.ExportParams
	var err error
	if err := required([2]string{"--tenant", p.tenant}); err != nil {
		return out, err
	}
	if out.Tenant, err = chartstream.ParseTenantID(p.tenant); err != nil {
		return out, errors.New("--tenant must be a tenant id (UUID)")
	}
	if out.Format, err = audit.ParseFormat(p.format); err != nil {
		return out, errors.New("--format must be ndjson or csv")
	}
	for _, t := range []struct {
		flag, value string
		dst         *time.Time
	}{{"--since", p.since, &out.Filter.Since}, {"--until", p.until, &out.Filter.Until}} {
		if t.value == "" {
			continue
		}
		if *t.dst, err = time.Parse(time.RFC3339Nano, t.value); err != nil {
			return out, fmt.Errorf("%s must be an RFC 3339 time, e.g. 2025-01-31T00:00:00Z", t.flag)
		}
	}
	if !out.Filter.Since.IsZero() && !out.Filter.Until.IsZero() && !out.Filter.Since.Before(out.Filter.Until) {
		return out, errors.New("--since must be before --until")
	}
	if p.patient != "" {
		id, err := uuid.Parse(p.patient)
		if err != nil {
			return out, errors.New("--patient must be a patient id (UUID)")
		}
		out.Filter.Patient = patient.Stream(id)
	}
	out.Filter.StreamType, out.Filter.EventType = p.streamType, p.eventType
	if !accesslog.ValidPurpose(p.purpose) {
		return out, errors.New("--purpose-of-use must be an HL7 PurposeOfUse code, e.g. TREAT, HOPERAT, HRESCH")
	}
	return out, nil
}

// accessEntry is the export's PHI access entry: the actor given or the
// OS user, the patient filtered on or all of them.
func (p exportParams) accessEntry(params audit.ExportParams) (accesslog.Entry, error) {
	actor := p.actor
	if actor == "" {
		u, err := user.Current()
		if err != nil || u.Username == "" {
			return accesslog.Entry{}, errors.New("--actor is required: the OS user is unknown")
		}
		actor = u.Username
	}
	e := accesslog.Entry{Tenant: params.Tenant, AccessedAt: time.Now().UTC(), Actor: actor, Roles: []string{exportRole},
		Route: exportRoute, Purpose: p.purpose, RequestID: uuid.NewString()}
	if id := params.Filter.Patient.ID; id != uuid.Nil {
		e.Patients = []uuid.UUID{id}
	} else {
		e.AllPatients = true
	}
	return e, nil
}

// runExport connects, picks the newest valid checkpoint and writes the
// export.
func runExport(ctx context.Context, p exportParams, params audit.ExportParams, stdout io.Writer) error {
	if err := required([2]string{"DATABASE_URL", p.dbURL}); err != nil {
		return err
	}
	keys, err := checkpointKeys(p.keyFiles, p.signingKeyFile)
	if err != nil {
		return err
	}
	if err := tenantExists(ctx, p.dbURL, params.Tenant); err != nil {
		return err
	}
	store, pool, err := openStore(ctx, p.dbURL, p.phiKeys, "chartstream-export", commands.EventSpecs())
	if err != nil {
		return err
	}
	defer pool.Close()
	cursors, err := store.CursorCodec(ctx, params.Tenant)
	if err != nil {
		return err
	}
	params.Cursors = cursors
	if p.after != "" {
		if params.Filter.After, err = cursors.Open(p.after); err != nil {
			return errors.New("--after must be the cursor of an event line of the tenant's export")
		}
	}
	v := audit.Verifier{History: store, Keys: keys}
	if p.natsURL != "" {
		nc, js, err := connectJetStream(ctx, p.nats, p.natsURL, "chartstream-export")
		if err != nil {
			return err
		}
		defer nc.Close()
		v.Anchors = workers.NewAnchorStream(js, workers.AnchorStreamConfig{Stream: p.stream})
	}
	if params.Checkpoint, err = v.Newest(ctx, params.Tenant); err != nil {
		return err
	}
	if p.anchored {
		if err := params.UpToCheckpoint(); err != nil {
			return err
		}
	}
	entry, err := p.accessEntry(params)
	if err != nil {
		return err
	}
	if err := accesslog.Write(ctx, pool, entry); err != nil {
		return fmt.Errorf("nothing exported: the PHI access log cannot be written: %w", err)
	}
	total := int64(-1)
	if progressVisible() { // counting reads the events once more
		if total, err = store.CountRecords(ctx, params.Tenant, params.Filter); err != nil {
			return err
		}
	}
	w := stdout
	if p.out != "" {
		f, err := os.OpenFile(p.out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer f.Close()
		w = f
	}
	bar := newProgress(total, "exporting")
	params.Progress = func(n int64) { _ = bar.Set64(n) }
	_, err = audit.Export(ctx, store, w, params)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		return f.Sync()
	}
	return nil
}
