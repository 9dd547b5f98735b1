package medicationorder

import (
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// kind describes the medication order aggregate to the runner. An order's
// stream stays short (prescribed, discontinued): no snapshots.
var kind = decision.Kind[*MedicationOrder]{
	StreamType: StreamType,
	New:        func(id uuid.UUID) *MedicationOrder { return &MedicationOrder{ID: id} },
	Apply: func(o *MedicationOrder, e chartstream.Event) error {
		payload, err := Decode(e)
		if err != nil {
			return err
		}
		o.apply(payload)
		o.Version = e.Version
		return nil
	},
}

// orders is the medication order repository on env's store.
func orders(env decision.Env) decision.Repository[*MedicationOrder, Event] {
	return decision.NewRepository[*MedicationOrder, Event](env.Store, kind)
}

func errNotFound() error {
	return chartstream.Errorf(chartstream.ENOTFOUND, "medication order not found")
}
