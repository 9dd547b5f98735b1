package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// export runs chartstream export for the fixture's tenant into a file and
// returns the file.
func (f *auditFixture) export(extra ...string) (string, error) {
	f.t.Helper()
	file := filepath.Join(f.t.TempDir(), "export")
	_, err := execute(testkit.Context(f.t), append([]string{"export", "--tenant", f.tenant.String(), "--out", file,
		"--nats-url", f.nats.URL(), "--anchor-stream", f.stream, "--checkpoint-verify-key-files", f.pub,
		"--database-url", testkit.Env(f.t, "DATABASE_URL"), "--phi-key-file", testkit.Env(f.t, "PHI_KEY_FILE")}, extra...)...)
	return file, err
}

// exportRaw runs a full export and returns its file and content.
func (f *auditFixture) exportRaw() (string, []byte) {
	f.t.Helper()
	file, err := f.export()
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		f.t.Fatal(err)
	}
	return file, raw
}

// storedHashes are the tenant's event hashes in commit order, as stored.
func (f *auditFixture) storedHashes() []string {
	f.t.Helper()
	var out []string
	ctx := testkit.Context(f.t)
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(f.t), f.tenant, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT encode(hash, 'hex') FROM events ORDER BY txid, position`)
		var err error
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// The export of a tenant equals the event store, event for event (count,
// order and hashes), opens PHI for the auditor, marks a shredded patient's
// PHI erased, and verifies offline against its checkpoint; a file changed
// afterwards does not.
func TestExportEqualsTheStoreAndVerifiesOffline(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	f.addPatient(3)
	f.addPatient(2)
	f.anchor()
	if err := f.store.ShredSubject(testkit.Context(t), f.tenant, f.patients[1].ID); err != nil {
		t.Fatal(err)
	}
	f.addPatient(2) // after the checkpoint
	file, raw := f.exportRaw()
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	want := f.storedHashes()
	if len(lines) != len(want)+2 {
		t.Fatalf("%d lines, want a header, %d events and an end", len(lines), len(want))
	}
	for i, line := range lines[1 : len(lines)-1] {
		var e struct {
			Hash   string          `json:"hash"`
			Type   string          `json:"event_type"`
			Stream string          `json:"stream_id"`
			PHI    json.RawMessage `json:"phi"`
			Erased []string        `json:"erased"`
			Meta   map[string]any  `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d: %v", i+2, err)
		}
		if e.Hash != want[i] {
			t.Errorf("event %d: hash %s, the store has %s", i+1, e.Hash, want[i])
		}
		if e.Meta["actor"] == nil {
			t.Errorf("event %d has no actor in its metadata: %s", i+1, line)
		}
		if e.Type == "patient.registered" {
			shredded := e.Stream == f.patients[1].ID.String()
			if shredded != (string(e.PHI) == "null") || shredded != (len(e.Erased) > 0) || !shredded && !strings.Contains(string(e.PHI), "Lovelace") {
				t.Errorf("registration of %s: phi %s erased %v (shredded %t)", e.Stream, e.PHI, e.Erased, shredded)
			}
		}
	}
	// The 2 events after the checkpoint: nothing vouches for them yet.
	out, err := execute(testkit.Context(t), "verify", "--file", file, "--public-key", f.pub)
	if exitCode(err) != 3 || !strings.Contains(out, "anchors 5; 2 committed since") || !strings.Contains(out, "FINDING unanchored_events: 2 events, from line 7") {
		t.Fatalf("verify --file before the anchor covers every event: exit %d (%v), want 3: %s", exitCode(err), err, out)
	}
	// Ended with the checkpoint's last event, the same history verifies
	// whole.
	upTo, err := f.export("--anchored")
	if err != nil {
		t.Fatal(err)
	}
	out, err = execute(testkit.Context(t), "verify", "--file", upTo, "--public-key", f.pub)
	if exitCode(err) != 0 || !strings.Contains(out, "anchors 5; 0 committed since") {
		t.Fatalf("verify --file of an export --anchored: exit %d (%v), want 0: %s", exitCode(err), err, out)
	}
	f.anchor()
	file, raw = f.exportRaw()
	out, err = execute(testkit.Context(t), "verify", "--file", file, "--public-key", f.pub)
	if exitCode(err) != 0 || !strings.Contains(out, "anchors 7; 0 committed since") || !strings.Contains(out, "OK") {
		t.Fatalf("verify --file: exit %d (%v): %s", exitCode(err), err, out)
	}
	// Change one byte of one event's stored payload: the file no longer
	// verifies.
	tampered := bytes.Replace(raw, []byte(`"value": 61`), []byte(`"value": 99`), 1)
	if bytes.Equal(tampered, raw) {
		t.Fatal("found no value to change")
	}
	if err := os.WriteFile(file, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = execute(testkit.Context(t), "verify", "--file", file, "--public-key", f.pub)
	if exitCode(err) != 1 || !strings.Contains(out, "FINDING broken_chain: hash mismatch") || !strings.Contains(out, "FINDING altered_events") {
		t.Fatalf("verify --file after a change: exit %d (%v): %s", exitCode(err), err, out)
	}
}

// CSV: a header row and a row per event with who and when; filters
// select, and bad input is one line and exit 2.
func TestExportCSVFiltersAndBadInput(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	f.addPatient(3)
	f.addPatient(2)
	file, err := f.export("--format", "csv", "--patient", f.patients[0].ID.String())
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(bufio.NewReader(fh)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	actor, hash := slices.Index(rows[0], "actor"), slices.Index(rows[0], "hash")
	if len(rows) != 4 || actor < 0 || hash < 0 || rows[1][actor] != "dr-a" || rows[2][actor] != "nurse-b" {
		t.Fatalf("rows %q, want a header and the first patient's 3 events", rows)
	}
	if h, err := hex.DecodeString(rows[1][hash]); err != nil || len(h) != 32 {
		t.Errorf("hash column %q", rows[1][hash])
	}
	// A filtered export is not one a checkpoint vouches for.
	file, err = f.export("--patient", f.patients[0].ID.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := execute(testkit.Context(t), "verify", "--file", file, "--public-key", f.pub); exitCode(err) != 2 || !strings.Contains(err.Error(), "not a full NDJSON export") {
		t.Errorf("verify --file of a filtered export: %v, want exit 2", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "xml"}, "--format must be ndjson or csv"},
		{[]string{"--since", "yesterday"}, "--since must be an RFC 3339 time"},
		{[]string{"--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01T00:00:00Z"}, "--since must be before --until"},
		{[]string{"--after", "12"}, "--after must be the cursor of an event line"},
		{[]string{"--patient", "ada"}, "--patient must be a patient id"},
	} {
		_, err := f.export(tc.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want exit 2 and one line with %q", tc.args, err, tc.want)
		}
	}
}
