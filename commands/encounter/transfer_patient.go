package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// TransferPatient moves the patient of an in-progress encounter to another
// location.
type TransferPatient struct {
	EncounterID uuid.UUID
	// Location is where the patient goes.
	Location string
	// ExpectedVersion is the encounter version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c TransferPatient) Validate() error {
	var p check.Problems
	p.Text("location", c.Location, true, maxLocation)
	return p.Err()
}

// decide transfers the patient. Errors: EINVALID for bad input, ENOTFOUND
// for an encounter never started, ECONFLICT for a discharged encounter,
// EUNPROCESSABLE for a transfer to where the patient already is.
func (c TransferPatient) decide(e *Encounter, p *patient.Patient) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := e.inProgress(); err != nil {
		return nil, err
	}
	if p.Erased() {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "the patient's record was erased")
	}
	if e.Location == c.Location {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "patient is already at this location")
	}
	return []Event{PatientTransferred{Location: c.Location}}, nil
}

// CommandName is the command's name in logs and metrics.
func (TransferPatient) CommandName() string { return "encounter.transfer_patient" }

// Target is the encounter's stream.
func (c TransferPatient) Target() chartstream.StreamRef { return Stream(c.EncounterID) }

// Execute transfers the patient; the result's ID is the encounter id.
func (c TransferPatient) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.EncounterID, c.ExpectedVersion, c)
}
