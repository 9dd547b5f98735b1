package medicationorder

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// StreamType is the aggregate type of medication order streams; an order's
// stream id is the order id.
const StreamType = "medication_order"

// Event type names. They are stored with every event and never change: a new
// payload shape gets a new schema version and an upcaster, not a new name.
const (
	TypePrescribed   = "medication_order.prescribed"
	TypeDiscontinued = "medication_order.discontinued"
)

// schemaVersion is the payload version of every medication order event:
// all are still at their first shape.
const schemaVersion = 1

// Event is a medication order event payload.
type Event interface {
	// EventType returns the event's stable type name.
	EventType() string
}

// Override records why a prescriber went ahead despite an active allergy
// to the medication.
type Override struct {
	Reason string `json:"reason"`
}

// MedicationPrescribed says a medication was prescribed for a patient.
type MedicationPrescribed struct {
	PatientID uuid.UUID `json:"patient_id"`
	// Medication is coded in RxNorm.
	Medication patient.Coding `json:"medication"`
	Dose       string         `json:"dose"`
	Route      string         `json:"route"`
	Frequency  string         `json:"frequency"`
	Prescriber string         `json:"prescriber"`
	// Override is present when the prescriber overrode an allergy alert.
	Override *Override `json:"override,omitempty"`
}

// MedicationDiscontinued says an active order was stopped. It repeats the
// patient id so that the reason can be encrypted under the patient's key.
type MedicationDiscontinued struct {
	PatientID uuid.UUID `json:"patient_id"`
	Reason    string    `json:"reason,omitempty"`
}

// EventType implements Event.
func (MedicationPrescribed) EventType() string { return TypePrescribed }

// EventType implements Event.
func (MedicationDiscontinued) EventType() string { return TypeDiscontinued }

// EventSpecs declares every medication order event type to the event store.
// Override and discontinuation reasons are free text and PHI, encrypted
// under the key of the patient named in patient_id.
func EventSpecs() []chartstream.EventSpec {
	return []chartstream.EventSpec{
		{Type: TypePrescribed, SchemaVersion: schemaVersion, PHI: []string{"override"}, Subject: "patient_id", Payload: MedicationPrescribed{}},
		{Type: TypeDiscontinued, SchemaVersion: schemaVersion, PHI: []string{"reason"}, Subject: "patient_id", Payload: MedicationDiscontinued{}},
	}
}

// Decode turns a stored medication order event into its payload. It fails
// for unknown types and schema versions.
func Decode(e chartstream.Event) (Event, error) {
	switch e.Type {
	case TypePrescribed:
		return decode[MedicationPrescribed](e)
	case TypeDiscontinued:
		return decode[MedicationDiscontinued](e)
	}
	return nil, fmt.Errorf("medication order stream %s: unknown event type %q", e.Stream.ID, e.Type)
}

func decode[T Event](e chartstream.Event) (Event, error) {
	var payload T
	if err := decision.Unmarshal(e, schemaVersion, &payload); err != nil {
		return nil, err
	}
	return payload, nil
}
