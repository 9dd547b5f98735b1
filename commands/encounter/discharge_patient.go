package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
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
func (c DischargePatient) decide(e *Encounter) ([]Event, error) {
	if err := e.inProgress(); err != nil {
		return nil, err
	}
	return []Event{EncounterDischarged{}}, nil
}

// DischargePatientHandler handles DischargePatient.
type DischargePatientHandler struct{ handler }

// NewDischargePatientHandler returns a handler appending to store. It
// panics on a nil store.
func NewDischargePatientHandler(store EventStore) DischargePatientHandler {
	return DischargePatientHandler{newHandler(store)}
}

// Handle discharges; Result.ID is the encounter id.
func (h DischargePatientHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd DischargePatient) (Result, error) {
	return h.change(ctx, tenant, md, cmd.EncounterID, cmd.ExpectedVersion, cmd)
}
