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

// Shredder destroys a data subject's key (the event store's ShredSubject).
type Shredder interface {
	ShredSubject(ctx context.Context, tenant chartstream.TenantID, subject uuid.UUID) error
}

// ErasePatientHandler handles ErasePatient.
type ErasePatientHandler struct {
	handler
	shredder Shredder
}

// NewErasePatientHandler returns a handler appending to store and
// shredding with shredder. It panics on a nil dependency.
func NewErasePatientHandler(store EventStore, shredder Shredder) ErasePatientHandler {
	if shredder == nil {
		panic("patient: nil Shredder")
	}
	return ErasePatientHandler{handler: newHandler(store), shredder: shredder}
}

// Handle records the erasure, then destroys the patient's data key. Run
// again after a failure between the two, it finds the record already
// erased, appends nothing and shreds again: the key is gone at the end of
// any successful run. Result.ID is the patient id.
func (h ErasePatientHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd ErasePatient) (Result, error) {
	now := h.now()
	if err := cmd.Validate(now); err != nil {
		return Result{}, err
	}
	p, err := read(ctx, h.store, tenant, cmd.PatientID)
	if err != nil {
		return Result{}, err
	}
	events, err := cmd.decide(p, now)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: cmd.PatientID, Version: p.Version}
	if len(events) > 0 {
		toAppend, err := decision.Encode(md, events)
		if err != nil {
			return Result{}, err
		}
		appended, err := h.store.Append(ctx, tenant, Stream(cmd.PatientID), p.Version, toAppend...)
		if err != nil {
			return Result{}, err
		}
		res.Version, res.Position = appended.Version, appended.Positions[len(appended.Positions)-1]
	}
	if err := h.shredder.ShredSubject(ctx, tenant, cmd.PatientID); err != nil {
		return res, fmt.Errorf("erase patient: destroy data key: %w", err)
	}
	return res, nil
}
