package commands

import (
	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

// EventSpecs are every clinical event type the platform records, for the
// event store's registry.
func EventSpecs() []chartstream.EventSpec {
	var specs []chartstream.EventSpec
	specs = append(specs, patient.EventSpecs()...)
	specs = append(specs, encounter.EventSpecs()...)
	specs = append(specs, medicationorder.EventSpecs()...)
	return specs
}
