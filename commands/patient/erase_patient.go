package patient

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// ErasePatient erases a patient's record on request (the right to
// erasure): the record is closed to further commands, and the patient's
// data key is destroyed, so the PHI in every event about them reads as
// erased while the events, and their hashes, stay.
type ErasePatient struct {
	PatientID uuid.UUID
}

// Validate reports every problem with the input as one EINVALID error.
func (c ErasePatient) Validate(time.Time) error {
	if c.PatientID == uuid.Nil {
		return chartstream.Invalid(chartstream.FieldError{Field: "patient_id", Reason: "is required"})
	}
	return nil
}

// decide closes the record. Errors: ENOTFOUND for an unregistered patient.
// An erased record decides nothing: erasing is repeatable (see Handle).
func (c ErasePatient) decide(p *Patient, now time.Time) ([]Event, error) {
	if !p.Registered() {
		return nil, errNotFound()
	}
	if p.Erased() {
		return nil, nil
	}
	return []Event{PatientErased{ErasedAt: now.UTC()}}, nil
}

// CommandName is the command's name in logs and metrics.
func (ErasePatient) CommandName() string { return "patient.erase" }

// Target is the patient's stream.
func (c ErasePatient) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute records the erasure, then destroys the patient's data key. Run
// again after a failure between the two, it finds the record already
// erased, appends nothing and shreds again: the key is gone at the end of
// any successful run. The result's ID is the patient id.
func (c ErasePatient) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	res, err := change(ctx, env, tenant, md, c.PatientID, nil, c, c.PatientID, TypeErased)
	if err != nil {
		return res, err
	}
	if err := env.Shredder.ShredSubject(ctx, tenant, c.PatientID); err != nil {
		return res, fmt.Errorf("erase patient: destroy data key: %w", err)
	}
	return res, nil
}
