package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// DischargePatient ends an in-progress encounter with the patient's
// discharge. A deceased patient's encounter is discharged too: that is how
// it is closed.
type DischargePatient struct {
	EncounterID uuid.UUID
	// ExpectedVersion is the encounter version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate has nothing to check: the encounter id is looked up.
func (c DischargePatient) Validate() error { return nil }

// decide discharges. Errors: ENOTFOUND for an encounter never started,
// ECONFLICT for one already discharged.
func (c DischargePatient) decide(e *Encounter, p *patient.Patient) ([]Event, error) {
	if err := e.inProgress(); err != nil {
		return nil, err
	}
	if p.Erased() {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "the patient's record was erased")
	}
	return []Event{EncounterDischarged{}}, nil
}

// CommandName is the command's name in logs and metrics.
func (DischargePatient) CommandName() string { return "encounter.discharge_patient" }

// Target is the encounter's stream.
func (c DischargePatient) Target() chartstream.StreamRef { return Stream(c.EncounterID) }

// Execute discharges; the result's ID is the encounter id.
func (c DischargePatient) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.EncounterID, c.ExpectedVersion, c)
}
