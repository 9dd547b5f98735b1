package medicationorder

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// Input limits for a prescription.
const (
	maxSig        = 64 // dose, route, frequency
	maxPrescriber = 128
)

// PrescribeMedication orders an RxNorm-coded medication for a registered,
// living patient.
type PrescribeMedication struct {
	// OrderID is the new order's id; zero lets the handler choose one.
	OrderID   uuid.UUID
	PatientID uuid.UUID
	// Medication must be coded in RxNorm, so that it can be checked
	// against the patient's allergies.
	Medication patient.Coding
	Dose       string
	Route      string
	Frequency  string
	// Prescriber identifies the prescribing clinician.
	Prescriber string
	// Override, with a reason, lets the prescription through despite an
	// active allergy to the medication.
	Override *Override
}

// Validate reports every problem with the input as one EINVALID error.
func (c PrescribeMedication) Validate() error {
	var p check.Problems
	if c.PatientID == uuid.Nil {
		p.Add("patient_id", "is required")
	}
	p.Coding("medication", c.Medication.Code, c.Medication.System, c.Medication.Display, patient.RxNorm)
	p.Text("dose", c.Dose, true, maxSig)
	p.Text("route", c.Route, true, maxSig)
	p.Text("frequency", c.Frequency, true, maxSig)
	p.Text("prescriber", c.Prescriber, true, maxPrescriber)
	if c.Override != nil {
		p.Note("override.reason", c.Override.Reason, true, check.MaxNote)
	}
	return p.Err()
}

// decide prescribes. Errors: EINVALID for bad input, ENOTFOUND for an
// unregistered patient, ECONFLICT when the order id is taken,
// EUNPROCESSABLE for a deceased patient or, without an override, for a
// medication the patient has an active allergy to.
func (c PrescribeMedication) decide(o *MedicationOrder, p *patient.Patient) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.OrderID == uuid.Nil {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "order_id", Reason: "is required"})
	}
	if o.Prescribed() {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "medication order already exists")
	}
	if err := p.RequireLiving(); err != nil {
		return nil, err
	}
	if _, allergic := p.ActiveAllergy(c.Medication); allergic && c.Override == nil {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE,
			"patient has an active allergy to this medication; prescribing it needs an override with a reason")
	}
	return []Event{MedicationPrescribed{
		PatientID:  c.PatientID,
		Medication: c.Medication,
		Dose:       c.Dose,
		Route:      c.Route,
		Frequency:  c.Frequency,
		Prescriber: c.Prescriber,
		Override:   c.Override,
	}}, nil
}

// PrescribeMedicationHandler handles PrescribeMedication.
type PrescribeMedicationHandler struct{ handler }

// NewPrescribeMedicationHandler returns a handler appending to store. It
// panics on a nil store.
func NewPrescribeMedicationHandler(store EventStore) PrescribeMedicationHandler {
	return PrescribeMedicationHandler{newHandler(store)}
}

// Handle prescribes; Result.ID is the order id. It never retries: the only
// conflict on a new stream is an id already in use. An allergy or death
// recorded between the patient read and the append is not seen; the event
// store offers no multi-stream append to close that window.
func (h PrescribeMedicationHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd PrescribeMedication) (Result, error) {
	if cmd.OrderID == uuid.Nil {
		cmd.OrderID = uuid.New()
	}
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	load := func(ctx context.Context) (*MedicationOrder, int64, error) {
		return read(ctx, h.store, tenant, cmd.OrderID)
	}
	consult := func(ctx context.Context) (*patient.Patient, error) {
		return patient.Load(ctx, h.store, tenant, cmd.PatientID)
	}
	plan := decision.Plan{Stream: Stream(cmd.OrderID), Metadata: md}
	res, err := decision.RunWith(ctx, h.store, tenant, plan, load, consult, cmd.decide)
	return result(cmd.OrderID, res, err)
}
