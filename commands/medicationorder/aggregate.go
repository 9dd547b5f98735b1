// Package medicationorder is the medication order aggregate: a
// prescription, active until discontinued. A prescription needs a living,
// registered patient and is checked against the patient's active allergies,
// both consult the patient (patient.Consult): a prescription checks its
// allergies and death atomically with its append, and neither acts on an
// erased patient.
package medicationorder

import (
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
)

// Status is where an order is in its life.
type Status string

// The order statuses. An order never prescribed has the empty status.
const (
	StatusActive       Status = "active"
	StatusDiscontinued Status = "discontinued"
)

// MedicationOrder is an order as its events left it.
type MedicationOrder struct {
	// ID is the order id, which is also the stream id.
	ID uuid.UUID
	// Version is the version of the last event applied; 0 for an order
	// never prescribed.
	Version    int64
	PatientID  uuid.UUID
	Medication patient.Coding
	Status     Status
}

// Replay builds an order from decoded events, numbering them from version 1.
func Replay(id uuid.UUID, events ...Event) *MedicationOrder {
	o := &MedicationOrder{ID: id}
	for _, e := range events {
		o.apply(e)
		o.Version++
	}
	return o
}

// Prescribed reports whether the order exists.
func (o *MedicationOrder) Prescribed() bool { return o.Status != "" }

func (o *MedicationOrder) apply(e Event) {
	switch e := e.(type) {
	case MedicationPrescribed:
		o.PatientID, o.Medication, o.Status = e.PatientID, e.Medication, StatusActive
	case MedicationDiscontinued:
		o.Status = StatusDiscontinued
	}
}

// Stream returns the reference of the order's stream.
func Stream(id uuid.UUID) chartstream.StreamRef {
	return chartstream.StreamRef{Type: StreamType, ID: id}
}
