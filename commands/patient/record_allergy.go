package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
)

// RecordAllergy adds an allergy or intolerance to the patient's record.
type RecordAllergy struct {
	PatientID uuid.UUID
	// AllergyID is the new allergy's id; zero lets the handler choose one.
	AllergyID uuid.UUID
	// Substance is the allergen; an RxNorm coding lets prescriptions of it
	// be checked against this allergy.
	Substance   Coding
	Criticality Criticality
	// Reaction is optional free text.
	Reaction string
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c RecordAllergy) Validate(time.Time) error {
	var p check.Problems
	p.Coding("substance", c.Substance.Code, c.Substance.System, c.Substance.Display)
	p.OneOf("criticality", string(c.Criticality), string(CriticalityLow), string(CriticalityHigh), string(CriticalityUnableToAssess))
	p.Note("reaction", c.Reaction, false, check.MaxNote)
	return p.Err()
}

// decide records the allergy. Errors: EINVALID for bad input, ENOTFOUND for
// an unregistered patient, ECONFLICT when the allergy id is taken or an
// active allergy to the same substance is already recorded.
func (c RecordAllergy) decide(p *Patient, now time.Time) ([]Event, error) {
	if err := c.Validate(now); err != nil {
		return nil, err
	}
	if c.AllergyID == uuid.Nil {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "allergy_id", Reason: "is required"})
	}
	if err := registered(p); err != nil {
		return nil, err
	}
	if _, ok := p.Allergies[c.AllergyID]; ok {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "allergy is already recorded")
	}
	if _, ok := p.ActiveAllergy(c.Substance); ok {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "an active allergy to this substance is already recorded")
	}
	return []Event{AllergyRecorded{AllergyID: c.AllergyID, Substance: c.Substance, Criticality: c.Criticality, Reaction: c.Reaction}}, nil
}

// RecordAllergyHandler handles RecordAllergy.
type RecordAllergyHandler struct{ handler }

// NewRecordAllergyHandler returns a handler appending to store. It panics
// on a nil store.
func NewRecordAllergyHandler(store EventStore) RecordAllergyHandler {
	return RecordAllergyHandler{newHandler(store)}
}

// Handle records the allergy; Result.ID is the allergy id.
func (h RecordAllergyHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd RecordAllergy) (Result, error) {
	if cmd.AllergyID == uuid.Nil {
		cmd.AllergyID = uuid.New()
	}
	return h.change(ctx, tenant, md, cmd.PatientID, cmd.ExpectedVersion, cmd, cmd.AllergyID)
}
