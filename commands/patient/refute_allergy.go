package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
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

// RefuteAllergyHandler handles RefuteAllergy.
type RefuteAllergyHandler struct{ handler }

// NewRefuteAllergyHandler returns a handler appending to store. It panics
// on a nil store.
func NewRefuteAllergyHandler(store EventStore) RefuteAllergyHandler {
	return RefuteAllergyHandler{newHandler(store)}
}

// Handle refutes the allergy; Result.ID is the allergy id.
func (h RefuteAllergyHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd RefuteAllergy) (Result, error) {
	return h.change(ctx, tenant, md, cmd.PatientID, cmd.ExpectedVersion, cmd, cmd.AllergyID)
}
