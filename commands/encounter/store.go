package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// kind describes the encounter aggregate to the runner. An encounter's
// stream stays short (start, transfers, discharge): no snapshots.
var kind = decision.Kind[*Encounter]{
	StreamType: StreamType,
	New:        func(id uuid.UUID) *Encounter { return &Encounter{ID: id} },
	Apply: func(e *Encounter, ev chartstream.Event) error {
		payload, err := Decode(ev)
		if err != nil {
			return err
		}
		e.apply(payload)
		e.Version = ev.Version
		return nil
	},
}

// encounters is the encounter repository on env's store.
func encounters(env decision.Env) decision.Repository[*Encounter, Event] {
	return decision.NewRepository[*Encounter, Event](env.Store, kind)
}

// command is a command on a started encounter.
type command interface {
	Validate() error
	decide(e *Encounter, p *patient.Patient) ([]Event, error)
}

// change validates cmd, then runs it on the started encounter id, reading
// its patient too: a command on an erased patient's encounter is refused,
// and an erasure coming first makes the command decide again. A concurrent
// discharge makes it decide again as well (it re-checks that the
// encounter is in progress, so a retry cannot transfer or discharge twice).
func change(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata, id uuid.UUID, expected *int64, cmd command) (chartstream.CommandResult, error) {
	if err := cmd.Validate(); err != nil {
		return chartstream.CommandResult{}, err
	}
	e, _, err := encounters(env).Load(ctx, tenant, id)
	if err != nil {
		return chartstream.CommandResult{}, err
	}
	// Not found before a stale If-Match: there is nothing to be stale.
	if !e.Started() {
		return chartstream.CommandResult{}, errNotFound()
	}
	var p *patient.Patient
	return encounters(env).Update(ctx, tenant, id, expected, md, func(e *Encounter) ([]Event, error) { return cmd.decide(e, p) },
		decision.DependsOn(TypeDischarged),
		decision.Consulting(patient.Consult(env, tenant, e.PatientID, &p, patient.TypeErased)))
}
