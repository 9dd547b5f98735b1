package main

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/testkit"
)

// accessEntries are the tenant's PHI access entries, oldest first.
func (f *auditFixture) accessEntries() []accesslog.Entry {
	f.t.Helper()
	page, err := accesslog.List(testkit.Context(f.t), testkit.MustAppPool(f.t), f.tenant, accesslog.ListParams{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Items
}

// chartstream export opens a whole tenant's PHI: like the API's export it
// writes one access entry (actor, role, route, purpose, all patients), and
// writes it before any PHI, so that an export whose entry cannot be
// written exports nothing.
func TestExportWritesItsAccessEntryFirst(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	f.addPatient(2)
	if _, err := f.export("--actor", "auditor-jane", "--purpose-of-use", "HOPERAT"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.export("--patient", f.patients[0].ID.String()); err != nil {
		t.Fatal(err)
	}
	got := f.accessEntries()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d access entries after two exports, want 2: %+v", len(got), got)
	}
	if e := got[0]; e.Actor != "auditor-jane" || !slices.Equal(e.Roles, []string{exportRole}) || e.Route != "chartstream export" ||
		e.Purpose != "HOPERAT" || !e.AllPatients || len(e.Patients) != 0 || uuid.Validate(e.RequestID) != nil {
		t.Errorf("the whole tenant's export: %+v", e)
	}
	if e := got[1]; e.Actor != me.Username || e.Purpose != accesslog.DefaultPurpose || e.AllPatients ||
		!slices.Equal(e.Patients, []uuid.UUID{f.patients[0].ID}) {
		t.Errorf("one patient's export, by the OS user, purpose by default: %+v", e)
	}
	// A purpose outside HL7's value set is bad input: nothing written.
	if _, err := f.export("--purpose-of-use", "CURIOSITY"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--purpose-of-use must be an HL7 PurposeOfUse code") {
		t.Errorf("--purpose-of-use CURIOSITY: %v, want exit 2", err)
	}
	// The owner makes the log refuse this tenant's entries: no export.
	fn := "test_refuse_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	f.owner(`CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
		`CREATE TRIGGER `+fn+` BEFORE INSERT ON phi_access_log FOR EACH ROW WHEN (NEW.tenant_id = '`+f.tenant.String()+`') EXECUTE FUNCTION `+fn+`()`)
	t.Cleanup(func() { f.owner(`DROP TRIGGER `+fn+` ON phi_access_log`, `DROP FUNCTION `+fn+`()`) })
	out := filepath.Join(t.TempDir(), "refused")
	_, err = execute(testkit.Context(t), "export", "--tenant", f.tenant.String(), "--out", out, "--nats-url=", "--checkpoint-verify-key-files", f.pub,
		"--database-url", testkit.Env(t, "DATABASE_URL"), "--phi-key-file", testkit.Env(t, "PHI_KEY_FILE"))
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "nothing exported: the PHI access log cannot be written") {
		t.Errorf("export with the log refusing: %v, want exit 2", err)
	}
	if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
		t.Errorf("export with the log refusing wrote %s (%v)", out, statErr)
	}
	if n := len(f.accessEntries()); n != 2 {
		t.Errorf("%d entries, want the 2 of the exports made", n)
	}
}
