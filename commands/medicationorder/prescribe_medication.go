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

// CommandName is the command's name in logs and metrics.
func (PrescribeMedication) CommandName() string { return "medication_order.prescribe" }

// Target is the order's stream.
func (c PrescribeMedication) Target() chartstream.StreamRef { return Stream(c.OrderID) }

// Execute prescribes; the result's ID is the order id. The patient's
// allergies and death are checked atomically with the append: an allergy,
// its refutation, a death or an erasure recorded meanwhile makes it decide
// again on the patient as it now is.
func (c PrescribeMedication) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if c.OrderID == uuid.Nil {
		c.OrderID = decision.NewID(md, "medication_order")
	}
	if err := c.Validate(); err != nil {
		return chartstream.CommandResult{}, err
	}
	var p *patient.Patient
	return orders(env).Update(ctx, tenant, c.OrderID, nil, md, func(o *MedicationOrder) ([]Event, error) { return c.decide(o, p) },
		decision.Consulting(patient.Consult(env, tenant, c.PatientID, &p,
			patient.TypeAllergyRecorded, patient.TypeAllergyRefuted, patient.TypeDeceased, patient.TypeErased)))
}
