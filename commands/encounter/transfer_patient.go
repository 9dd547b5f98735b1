package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
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
func (c TransferPatient) decide(e *Encounter) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := e.inProgress(); err != nil {
		return nil, err
	}
	if e.Location == c.Location {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "patient is already at this location")
	}
	return []Event{PatientTransferred{Location: c.Location}}, nil
}

// TransferPatientHandler handles TransferPatient.
type TransferPatientHandler struct{ handler }

// NewTransferPatientHandler returns a handler appending to store. It panics
// on a nil store.
func NewTransferPatientHandler(store EventStore) TransferPatientHandler {
	return TransferPatientHandler{newHandler(store)}
}

// Handle transfers the patient; Result.ID is the encounter id.
func (h TransferPatientHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd TransferPatient) (Result, error) {
	return h.change(ctx, tenant, md, cmd.EncounterID, cmd.ExpectedVersion, cmd)
}
