package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// RefuteAllergy withdraws a recorded allergy that turned out not to exist,
// so that it no longer blocks prescriptions.
type RefuteAllergy struct {
	PatientID uuid.UUID
	AllergyID uuid.UUID
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate has nothing to check: both ids are looked up.
func (c RefuteAllergy) Validate(time.Time) error { return nil }

// decide refutes the allergy. Errors: ENOTFOUND for an unregistered patient
// or an allergy not on the record, ECONFLICT for an allergy already refuted.
func (c RefuteAllergy) decide(p *Patient, _ time.Time) ([]Event, error) {
	if err := registered(p); err != nil {
		return nil, err
	}
	a, ok := p.Allergies[c.AllergyID]
	switch {
	case !ok:
		return nil, chartstream.Errorf(chartstream.ENOTFOUND, "allergy not found")
	case a.Refuted:
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "allergy is already refuted")
	}
	return []Event{AllergyRefuted{AllergyID: c.AllergyID}}, nil
}

// CommandName is the command's name in logs and metrics.
func (RefuteAllergy) CommandName() string { return "patient.refute_allergy" }

// Target is the patient's stream.
func (c RefuteAllergy) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute refutes the allergy; the result's ID is the allergy id.
func (c RefuteAllergy) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.AllergyID, TypeErased, TypeAllergyRefuted)
}
