package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
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

// CommandName is the command's name in logs and metrics.
func (RecordAllergy) CommandName() string { return "patient.record_allergy" }

// Target is the patient's stream.
func (c RecordAllergy) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute records the allergy; the result's ID is the allergy id.
func (c RecordAllergy) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if c.AllergyID == uuid.Nil {
		c.AllergyID = decision.NewID(md, "allergy")
	}
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.AllergyID, TypeErased)
}
