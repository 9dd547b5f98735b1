package main

import (
	"cmp"
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
	event := (*auditFixture).event
	cases := []struct {
		name   string
		attack func(f *auditFixture)
		want   []string // finding kinds
		detail string   // and what one of them says
		where  string   // and where the difference lies, when one is placed
	}{
		{"delete a middle event", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 1, 2), deleteTriggerBack)
		}, []string{audit.KindBrokenChain, audit.KindMissingEvents}, "version gap at patient", "p1"},
		{"truncate a tail", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id IN (`+event(f, 1, 3)+`, `+event(f, 1, 4)+`)`, deleteTriggerBack)
		}, []string{audit.KindMissingEvents}, "2 of the 9 events anchored by checkpoint 3", "p1"},
		{"delete a stream", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE stream_id = '`+f.patients[2].ID.String()+`'`, deleteTriggerBack)
		}, []string{audit.KindMissingEvents}, "2 of the 9 events anchored by checkpoint 3", "the difference lies after checkpoint 2 (whose 7 events still match) and by checkpoint 3, and no event is left there"},
		{"rewrite an event and re-chain its stream", func(f *auditFixture) {
			stmts := []string{noDeleteTrigger, `UPDATE events SET metadata = '{"actor": "someone else"}' WHERE event_id = ` + event(f, 1, 2)}
			f.owner(append(append(stmts, f.rechain(1, 2)...), deleteTriggerBack)...)
		}, []string{audit.KindAlteredEvents}, "re-chained", "p1"},
		{"replace the latest checkpoint row", func(f *auditFixture) {
			// Truncate a tail, then make the newest row say so: the
			// owner can compute the running hash, but not sign it.
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 2, 2), deleteTriggerBack,
				noCheckpointTrigger, `UPDATE audit_checkpoints SET events = events - 1, chain_hash = sha256('forged')
					WHERE tenant_id = '`+f.tenant.String()+`' AND seq = (SELECT max(seq) FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`')`,
				checkpointTriggerBack)
		}, []string{audit.KindBadCheckpoint, audit.KindCheckpointDiffers, audit.KindMissingEvents}, "checkpoint 3 in the table is not validly signed", "p2"},
		{"delete the latest checkpoint row", func(f *auditFixture) {
			f.owner(noDeleteTrigger, `DELETE FROM events WHERE event_id = `+event(f, 2, 2), deleteTriggerBack,
				noCheckpointTrigger, `DELETE FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`'
					AND seq = (SELECT max(seq) FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`')`,
				checkpointTriggerBack)
		}, []string{audit.KindCheckpointMissing, audit.KindMissingEvents}, "checkpoint 3, published on CLINICAL_ANCHORS, is missing from the table", "p2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuditFixture(t)
			for _, n := range []int{3, 4, 2} { // a checkpoint after each patient
				f.addPatient(n)
				f.anchor()
			}
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
			where := map[string]string{ // the first event after the last checkpoint that still matches
				"p1": "the difference lies after checkpoint 1 (whose 3 events still match) and by checkpoint 2: the first event found there is patient " +
					f.patients[1].ID.String() + " version 1",
				"p2": "the difference lies after checkpoint 2 (whose 7 events still match) and by checkpoint 3: the first event found there is patient " +
					f.patients[2].ID.String() + " version 1",
			}
			for _, w := range []string{tc.detail, cmp.Or(where[tc.where], tc.where)} {
				if !strings.Contains(out, w) {
					t.Errorf("the report does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// Where the chain resumes is kept open, unsigned, beside the signed and
// sealed copy: the owner can move it in the table. Verification names the
// row that no longer agrees with CLINICAL_ANCHORS, and the anchor worker,
// restarted, does not resume from it (it would skip every event before the
// moved cursor and sign a chain the data never had). Not parallel: the
// attack disables a trigger.
func TestAnchorResumesOnlyFromWhereItSigned(t *testing.T) {
	f := newAuditFixture(t)
	f.addPatient(3)
	f.anchor()
	f.owner(`ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only`,
		`UPDATE audit_checkpoints SET last_txid = last_txid + 1000000 WHERE tenant_id = '`+f.tenant.String()+`'`,
		`ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only`)
	if out, err := f.verify(); exitCode(err) != 1 || !strings.Contains(out, "FINDING "+audit.KindCheckpointDiffers+": checkpoint 1 in the table differs") {
		t.Errorf("verify with the table's resume point moved: exit %d (%v), want 1 naming checkpoint 1: %s", exitCode(err), err, out)
	}
	f.addPatient(2)
	if c := f.anchor(); c.Seq != 2 || c.Events != 5 {
		t.Fatalf("checkpoint %d of %d events, want 2 of 5", c.Seq, c.Events)
	}
	if out, err := f.verify(); exitCode(err) != 0 {
		t.Errorf("verify after the anchor resumed from what it signed: exit %d (%v): %s", exitCode(err), err, out)
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

// event is the id of patient p's event version, as an SQL literal.
func (f *auditFixture) event(p, version int) string {
	return "'" + f.events[p][version-1].String() + "'"
}

// rechain is the statements that recompute patient p's chain from version
// on with the database's own function, in version order, as the owner
// would after rewriting it (the delete trigger disabled).
func (f *auditFixture) rechain(p, from int) []string {
	var stmts []string
	for v := from; v <= len(f.events[p]); v++ {
		stmts = append(stmts, fmt.Sprintf(`UPDATE events e SET prev_hash = p.hash,
			hash = chartstream_event_hash(p.hash, e.tenant_id, e.stream_type, e.stream_id, e.version, e.event_id, e.event_type,
				e.schema_version, e.payload, e.phi, e.subject_id, e.metadata, e.recorded_at)
			FROM (SELECT (SELECT hash FROM events WHERE stream_id = '%s' AND version = %d) AS hash) p
			WHERE e.event_id = %s`, f.patients[p].ID, v-1, f.event(p, v)))
	}
	return stmts
}

// The owner deletes every checkpoint row of a tenant whose history is
// older than the anchor's grace, and verification does not consult
// CLINICAL_ANCHORS: history that old and anchored by nothing means deleted
// checkpoints or a stopped anchor, and verify exits 1 naming it. The
// history is backdated (and re-chained) by the owner too, as the test
// cannot wait a minute.
func TestVerifyWithoutCheckpointsFlagsOldHistory(t *testing.T) {
	f := newAuditFixture(t)
	f.addPatient(3)
	f.addPatient(2)
	f.anchor()
	withoutNATS := func() (string, error) {
		return execute(testkit.Context(t), "verify", "--tenant", f.tenant.String(), "--nats-url=", "--public-key", f.pub,
			"--database-url", testkit.Env(t, "DATABASE_URL"))
	}
	if out, err := withoutNATS(); exitCode(err) != 0 {
		t.Fatalf("untouched: exit %d (%v): %s", exitCode(err), err, out)
	}
	stmts := []string{`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		`UPDATE events SET recorded_at = recorded_at - interval '1 hour'`}
	for p := range f.patients {
		stmts = append(stmts, f.rechain(p, 1)...)
	}
	f.owner(append(stmts, `ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
		`ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only`,
		`DELETE FROM audit_checkpoints WHERE tenant_id = '`+f.tenant.String()+`'`,
		`ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only`)...)
	out, err := withoutNATS()
	if exitCode(err) != 1 || !strings.Contains(out, "FINDING anchor_overdue: 5 events are covered by no validly signed checkpoint, the oldest patient "+
		f.patients[0].ID.String()+" version 1") || strings.Contains(out, "broken_chain") {
		t.Fatalf("every checkpoint deleted, history an hour old: exit %d (%v), want 1 naming anchor_overdue only: %s", exitCode(err), err, out)
	}
	// A longer grace accepts it: the finding is the grace's.
	if out, err := execute(testkit.Context(t), "verify", "--tenant", f.tenant.String(), "--nats-url=", "--public-key", f.pub,
		"--database-url", testkit.Env(t, "DATABASE_URL"), "--anchor-grace", "2h"); exitCode(err) != 0 {
		t.Errorf("--anchor-grace 2h: exit %d (%v): %s", exitCode(err), err, out)
	}
}
