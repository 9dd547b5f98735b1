package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The attacks of issue 13, each by the database owner after the history
// was anchored: verify must exit 1 naming what was done, and exit 0 on the
// untouched history. Not parallel: the owner's attacks disable triggers,
// which locks the tables for the length of their transaction.
func TestVerifyCatchesTheOwnersAttacks(t *testing.T) {
	const (
		noDeleteTrigger       = `ALTER TABLE events DISABLE TRIGGER events_no_update_delete`
		deleteTriggerBack     = `ALTER TABLE events ENABLE TRIGGER events_no_update_delete`
		noCheckpointTrigger   = `ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only`
		checkpointTriggerBack = `ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only`
	)
	event := func(f *auditFixture, p, version int) string { return "'" + f.events[p][version-1].String() + "'" }
	cases := []struct {
		name   string
		attack func(f *auditFixture)
		want   []string // finding kinds
		detail string   // and what one of them says
	}{
		{"delete a middle event", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 1, 2), deleteTriggerBack)
		}, []string{audit.KindBrokenChain, audit.KindMissingEvents}, "version gap at patient"},
		{"truncate a tail", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id IN (`+event(f, 1, 3)+`, `+event(f, 1, 4)+`)`, deleteTriggerBack)
		}, []string{audit.KindMissingEvents}, "2 of the 9 events anchored by checkpoint 2"},
		{"delete a stream", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE stream_id = '`+f.patients[2].ID.String()+`'`, deleteTriggerBack)
		}, []string{audit.KindMissingEvents}, "2 of the 9 events anchored by checkpoint 2"},
		{"rewrite an event and re-chain its stream", func(f *auditFixture) {
			stmts := []string{noDeleteTrigger, `UPDATE events SET metadata = '{"actor": "someone else"}' WHERE event_id = ` + event(f, 1, 2)}
			for v := 2; v <= 4; v++ { // the database's own function, in version order
				stmts = append(stmts, fmt.Sprintf(`UPDATE events e SET prev_hash = p.hash,
					hash = chartstream_event_hash(p.hash, e.tenant_id, e.stream_type, e.stream_id, e.version, e.event_id, e.event_type,
						e.schema_version, e.payload, e.phi, e.subject_id, e.metadata, e.recorded_at)
					FROM events p WHERE e.event_id = %s AND p.tenant_id = e.tenant_id AND p.stream_id = e.stream_id AND p.version = e.version - 1`, event(f, 1, v)))
			}
			f.owner(append(stmts, deleteTriggerBack)...)
		}, []string{audit.KindAlteredEvents}, "re-chained"},
		{"replace the latest checkpoint row", func(f *auditFixture) {
			// Truncate a tail, then make the newest row say so: the
			// owner can compute the running hash, but not sign it.
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 2, 2), deleteTriggerBack,
				noCheckpointTrigger, `UPDATE audit_checkpoints SET events = events - 1, chain_hash = sha256('forged')
					WHERE tenant_id = '`+f.tenant.String()+`' AND seq = (SELECT max(seq) FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`')`,
				checkpointTriggerBack)
		}, []string{audit.KindBadCheckpoint, audit.KindCheckpointDiffers, audit.KindMissingEvents}, "checkpoint 2 in the table is not validly signed"},
		{"delete the latest checkpoint row", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 2, 2), deleteTriggerBack,
				noCheckpointTrigger, `DELETE FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`'
					AND seq = (SELECT max(seq) FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`')`,
				checkpointTriggerBack)
		}, []string{audit.KindCheckpointMissing, audit.KindMissingEvents}, "checkpoint 2, published on CLINICAL_ANCHORS, is missing from the table"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuditFixture(t)
			f.addPatient(3)
			f.addPatient(4)
			f.anchor()
			f.addPatient(2)
			f.anchor() // a second checkpoint, over the third patient too
			if out, err := f.verify(); exitCode(err) != 0 || !strings.Contains(out, "OK") {
				t.Fatalf("untouched history: exit %d (%v): %s", exitCode(err), err, out)
			}
			tc.attack(f)
			out, err := f.verify()
			if exitCode(err) != 1 {
				t.Fatalf("after the attack: exit %d (%v), want 1: %s", exitCode(err), err, out)
			}
			for _, kind := range tc.want {
				if !strings.Contains(out, "FINDING "+kind+":") {
					t.Errorf("the report does not name %s:\n%s", kind, out)
				}
			}
			if !strings.Contains(out, tc.detail) {
				t.Errorf("the report does not say %q:\n%s", tc.detail, out)
			}
		})
	}
}

// Crypto-shredding destroys a key, not events: the history still verifies.
// Events committed after the newest checkpoint are reported as not yet
// anchored, never as tampering.
func TestVerifyAfterErasureAndUnanchoredEvents(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	f.addPatient(3)
	f.addPatient(2)
	f.anchor()
	if err := f.store.ShredSubject(testkit.Context(t), f.tenant, f.patients[0].ID); err != nil {
		t.Fatal(err)
	}
	f.addPatient(2)
	out, err := f.verify("--json")
	if exitCode(err) != 0 {
		t.Fatalf("exit %d (%v): %s", exitCode(err), err, out)
	}
	var r audit.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Events != 7 || r.Anchored != 5 || r.Unanchored != 2 || !r.AnchorsConsulted || r.Checkpoint == nil || r.Checkpoint.Events != 5 {
		t.Errorf("report %+v, want 7 events, 5 anchored by the checkpoint, 2 not yet", r)
	}
}
