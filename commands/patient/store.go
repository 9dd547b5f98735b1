package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// EventStore is what patient handlers need of the event store.
type EventStore interface {
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
	Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error)
}

// StreamReader is what Load needs: reading only, so that other aggregates
// can consult a patient without being able to write to the patient's stream.
type StreamReader interface {
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
}

// Result is what a handler returns after a successful append.
type Result struct {
	// ID is the id of what the command created or changed: the patient, or
	// the allergy, condition or observation.
	ID uuid.UUID
	// Version is the patient stream's version after the append; the API
	// returns it as the ETag for later If-Match.
	Version int64
	// Position is the global position of the last appended event, for
	// read-your-writes waits on projections.
	Position int64
}

// Stream returns the reference of the patient's stream.
func Stream(id uuid.UUID) chartstream.StreamRef {
	return chartstream.StreamRef{Type: StreamType, ID: id}
}

// Load reads and rehydrates a registered patient. It returns ENOTFOUND for
// a patient never registered in the tenant (another tenant's patient
// included), and wrapped store or decoding errors otherwise.
func Load(ctx context.Context, store StreamReader, tenant chartstream.TenantID, id uuid.UUID) (*Patient, error) {
	p, err := read(ctx, store, tenant, id)
	if err != nil {
		return nil, err
	}
	if !p.Registered() {
		return nil, errNotFound()
	}
	return p, nil
}

// read rehydrates a patient that may not be registered yet.
func read(ctx context.Context, store StreamReader, tenant chartstream.TenantID, id uuid.UUID) (*Patient, error) {
	p := newPatient(id)
	version, err := decision.Replay(ctx, store, tenant, Stream(id), Decode, p.apply)
	if err != nil {
		return nil, err
	}
	p.Version = version
	return p, nil
}

func errNotFound() error { return chartstream.Errorf(chartstream.ENOTFOUND, "patient not found") }

// command is a command on a registered patient.
type command interface {
	Validate(now time.Time) error
	decide(p *Patient, now time.Time) ([]Event, error)
}

// handler is what every patient command handler holds.
type handler struct {
	store EventStore
	// now is the clock; tests replace it.
	now func() time.Time
}

func newHandler(store EventStore) handler {
	if store == nil {
		panic("patient: nil EventStore")
	}
	return handler{store: store, now: time.Now}
}

// change runs cmd against the registered patient, deciding again on fresh
// state after a concurrent append unless the caller pinned expected. That
// retry is safe for every command on an existing patient: each decision
// re-checks its rules against the state it is appended to, and the ids of
// new allergies, conditions and observations are fixed before the first
// attempt. The result carries resultID.
func (h handler) change(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, patientID uuid.UUID, expected *int64, cmd command, resultID uuid.UUID) (Result, error) {
	plan := decision.Plan{Stream: Stream(patientID), Metadata: md, ExpectedVersion: expected, Retry: true}
	return h.run(ctx, tenant, plan, Load, cmd, resultID)
}

// run validates cmd before any I/O, then loads the patient with load,
// decides and appends as plan says.
func (h handler) run(ctx context.Context, tenant chartstream.TenantID, plan decision.Plan, load loadFn, cmd command, resultID uuid.UUID) (Result, error) {
	now := h.now()
	if err := cmd.Validate(now); err != nil {
		return Result{}, err
	}
	loadState := func(ctx context.Context) (*Patient, int64, error) {
		p, err := load(ctx, h.store, tenant, plan.Stream.ID)
		if err != nil {
			return nil, 0, err
		}
		return p, p.Version, nil
	}
	decide := func(p *Patient) ([]Event, error) { return cmd.decide(p, now) }
	res, err := decision.Run(ctx, h.store, tenant, plan, loadState, decide)
	if err != nil {
		return Result{}, err
	}
	return Result{ID: resultID, Version: res.Version, Position: decision.LastPosition(res)}, nil
}

// loadFn is Load, or read for a registration.
type loadFn func(ctx context.Context, store StreamReader, tenant chartstream.TenantID, id uuid.UUID) (*Patient, error)

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
