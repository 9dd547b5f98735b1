package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// Stream returns the reference of the patient's stream.
func Stream(id uuid.UUID) chartstream.StreamRef {
	return chartstream.StreamRef{Type: StreamType, ID: id}
}

// snapshotEvery is how many events a patient's history may grow by before
// a command saves a snapshot: an ICU patient with vitals every minute has
// 10,000 events a week, and loading one stays a snapshot and at most this
// many events.
const snapshotEvery = 100

// kind describes the patient aggregate to the runner.
var kind = decision.Kind[*Patient]{
	StreamType: StreamType,
	New:        newPatient,
	Apply: func(p *Patient, e chartstream.Event) error {
		payload, err := Decode(e)
		if err != nil {
			return err
		}
		p.apply(payload)
		p.Version = e.Version
		return nil
	},
	Snapshots: &decision.Snapshots[*Patient]{Every: snapshotEvery, SchemaVersion: snapshotVersion, Encode: encodeSnapshot, Decode: decodeSnapshot},
}

// patients is the patient repository on env's store.
func patients(env decision.Env) decision.Repository[*Patient, Event] {
	return decision.NewRepository[*Patient, Event](env.Store, kind)
}

// Load reads a registered patient and the version read, for a command of
// another aggregate that consults the patient. It returns ENOTFOUND for a
// patient never registered in the tenant (another tenant's patient
// included), and wrapped store or decoding errors otherwise.
func Load(ctx context.Context, env decision.Env, tenant chartstream.TenantID, id uuid.UUID) (*Patient, error) {
	p, _, err := patients(env).Load(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if !p.Registered() {
		return nil, errNotFound()
	}
	return p, nil
}

// Consult is a decision.ConsultFn for a command of another aggregate that
// reads the patient (a prescription reads allergies): it loads the patient
// into *into on every attempt, and the other aggregate's write then holds
// only if no event of the types dependsOn came to the patient since.
func Consult(env decision.Env, tenant chartstream.TenantID, id uuid.UUID, into **Patient, dependsOn ...string) decision.ConsultFn {
	return func(ctx context.Context) (chartstream.Append, error) {
		p, err := Load(ctx, env, tenant, id)
		if err != nil {
			return chartstream.Append{}, err
		}
		*into = p
		return decision.Guard(Stream(id), p.Version, dependsOn...), nil
	}
}

func errNotFound() error { return chartstream.Errorf(chartstream.ENOTFOUND, "patient not found") }

// command is a command on a registered patient.
type command interface {
	Validate(now time.Time) error
	decide(p *Patient, now time.Time) ([]Event, error)
}

// change validates cmd before any I/O, then runs it on the patient
// through the runner, reporting resultID. dependsOn are the patient event
// types whose arrival would change cmd's decision: only those make a
// concurrent append matter.
func change(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata, id uuid.UUID, expected *int64, cmd command, resultID uuid.UUID, dependsOn ...string) (chartstream.CommandResult, error) {
	now := env.Now()
	if err := cmd.Validate(now); err != nil {
		return chartstream.CommandResult{}, err
	}
	return patients(env).Update(ctx, tenant, id, expected, md, func(p *Patient) ([]Event, error) { return cmd.decide(p, now) },
		decision.Reports(resultID), decision.DependsOn(dependsOn...))
}

// registered fails with ENOTFOUND unless the patient was registered (no
// command acts on a patient the tenant does not know) and with
// EUNPROCESSABLE once the record was erased.
func registered(p *Patient) error {
	if !p.Registered() {
		return errNotFound()
	}
	if p.Erased() {
		return chartstream.Errorf(chartstream.EUNPROCESSABLE, "the patient's record was erased")
	}
	return nil
}
