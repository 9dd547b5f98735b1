package commands_test

import (
	"context"
	"fmt"
	"iter"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The commands run through the one runner against the real event store:
// concurrency, atomic rules across aggregates, retries and loading cost are
// properties of the two together.

func mustStore(t *testing.T) *eventstore.Store {
	t.Helper()
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.New(testkit.MustAppPool(t), reg, keys, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type env struct {
	t      *testing.T
	ctx    context.Context
	store  *eventstore.Store
	cmds   *commands.Commands
	tenant chartstream.TenantID
	md     chartstream.Metadata
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := mustStore(t)
	return &env{t: t, ctx: testkit.Context(t), store: store, cmds: commands.New(store, nil), tenant: testkit.MustTenant(t),
		md: chartstream.Metadata{Actor: "dr-test", CorrelationID: "corr"}}
}

func (e *env) run(cmd commands.Command) (chartstream.CommandResult, error) {
	return e.cmds.Run(e.ctx, e.tenant, e.md, cmd)
}

func (e *env) must(cmd commands.Command) chartstream.CommandResult {
	e.t.Helper()
	res, err := e.run(cmd)
	if err != nil {
		e.t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
	return res
}

func (e *env) register() uuid.UUID {
	e.t.Helper()
	return e.must(patient.RegisterPatient{MRN: "MRN-" + uuid.NewString()[:8], Name: patient.HumanName{Family: "Lovelace", Given: []string{"Ada"}},
		BirthDate: "1990-01-02", Sex: patient.SexFemale}).ID
}

func observation(id uuid.UUID, value float64) patient.RecordObservation {
	return patient.RecordObservation{PatientID: id, Code: "8867-4", System: patient.LOINC, Value: &value, Unit: "/min",
		EffectiveAt: "2026-11-26T10:00:00Z"}
}

var penicillin = patient.Coding{Code: "7980", Display: "Penicillin G", System: patient.RxNorm}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := chartstream.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %q, want %q", err, got, code)
	}
}

// A monitor, a nurse and a lab feed record observations on one patient at
// once: every one is recorded, none refused for another's append.
func TestConcurrentObservationsOnOnePatientAllSucceed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register()
	const writers = 64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.run(observation(id, float64(60+i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent observation was refused: %v", err)
		}
	}
	p, _, err := patientStream(e, id)
	if err != nil || p != writers+1 {
		t.Fatalf("the patient's stream holds %d events (%v), want %d", p, err, writers+1)
	}
}

func patientStream(e *env, id uuid.UUID) (events int64, last chartstream.Event, err error) {
	for ev, err := range e.store.Events(e.ctx, e.tenant, patient.Stream(id), 1) {
		if err != nil {
			return events, last, err
		}
		events++
		last = ev
	}
	return events, last, nil
}

// If-Match pins the version a decision is taken on: stale is 412, and a
// concurrent append is the caller's to judge (412, no retry).
func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register()
	stale := int64(0)
	cmd := observation(id, 70)
	cmd.ExpectedVersion = &stale
	_, err := e.run(cmd)
	wantCode(t, err, chartstream.EPRECONDITION)
	current := int64(1)
	cmd.ExpectedVersion = &current
	if res := e.must(cmd); res.Version != 2 {
		t.Errorf("version %d, want 2", res.Version)
	}
}

// A second registration with a taken MRN is refused at once: the conflict
// is the answer, not a race to decide again.
func TestRegisterClaimsTheMRN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cmd := patient.RegisterPatient{MRN: "MRN-TAKEN-" + uuid.NewString()[:6], Name: patient.HumanName{Family: "A"}, BirthDate: "1990-01-02", Sex: patient.SexMale}
	e.must(cmd)
	_, err := e.run(cmd)
	wantCode(t, err, chartstream.ECONFLICT)
}

// A retried request (the same command id, as an Idempotency-Key gives)
// returns its first result and records nothing twice, also for a creation
// whose MRN the first attempt claimed.
func TestARetriedCommandReturnsItsFirstResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.md.CommandID = uuid.NewString()
	reg := patient.RegisterPatient{MRN: "MRN-" + uuid.NewString()[:8], Name: patient.HumanName{Family: "A"}, BirthDate: "1990-01-02", Sex: patient.SexMale}
	first := e.must(reg)
	again := e.must(reg)
	if again != first {
		t.Fatalf("retry %+v, first %+v", again, first)
	}
	e.md.CommandID = uuid.NewString()
	obs := e.must(observation(first.ID, 72))
	if again := e.must(observation(first.ID, 72)); again != obs {
		t.Fatalf("retried observation %+v, first %+v", again, obs)
	}
	if n, _, _ := patientStream(e, first.ID); n != 2 {
		t.Errorf("the patient's stream holds %d events, want 2", n)
	}
}

// Prescribing reads the patient's allergies; recording an allergy to the
// same medication at the same moment must not let both through unless the
// prescription was decided and committed first.
func TestPrescriptionAndAllergyRaceStaysSafe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for trial := range 40 {
		id := e.register()
		var wg sync.WaitGroup
		var presErr, allergyErr error
		var order, allergy chartstream.CommandResult
		wg.Add(2)
		go func() {
			defer wg.Done()
			order, presErr = e.run(medicationorder.PrescribeMedication{PatientID: id, Medication: penicillin, Dose: "1 g", Route: "iv", Frequency: "q6h", Prescriber: "dr"})
		}()
		go func() {
			defer wg.Done()
			allergy, allergyErr = e.run(patient.RecordAllergy{PatientID: id, Substance: penicillin, Criticality: patient.CriticalityHigh})
		}()
		wg.Wait()
		if allergyErr != nil {
			t.Fatalf("trial %d: allergy: %v", trial, allergyErr)
		}
		if presErr != nil {
			wantCode(t, presErr, chartstream.EUNPROCESSABLE)
			continue
		}
		// Both went through: the prescription must come first in
		// commit order, so that it was decided before the allergy.
		if commitOrder(t, e, order.Position) > commitOrder(t, e, allergy.Position) {
			t.Fatalf("trial %d: a prescription committed after an allergy to it, without an override", trial)
		}
	}
}

// commitOrder is the place of the event at position in the tenant's
// commit order (the gap-free read), once it is readable.
func commitOrder(t *testing.T, e *env, position int64) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, _, err := e.store.ReadAll(e.ctx, eventstore.Filter{Tenant: e.tenant}, eventstore.Cursor{}, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range events {
			if ev.Position == position {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event at position %d never became readable", position)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A new encounter reads whether the patient is alive; a death recorded at
// the same moment makes it decide again and refuse.
func TestEncounterAndDeathRaceStaysSafe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for trial := range 40 {
		id := e.register()
		var wg sync.WaitGroup
		var startErr, deathErr error
		var started chartstream.CommandResult
		wg.Add(2)
		go func() {
			defer wg.Done()
			started, startErr = e.run(encounter.StartEncounter{PatientID: id, Class: encounter.ClassInpatient, Location: "Ward 3B"})
		}()
		go func() {
			defer wg.Done()
			_, deathErr = e.run(patient.RecordDeath{PatientID: id, DeceasedAt: "2026-11-26T10:00:00Z"})
		}()
		wg.Wait()
		if deathErr != nil {
			t.Fatalf("trial %d: death: %v", trial, deathErr)
		}
		if startErr != nil {
			wantCode(t, startErr, chartstream.EUNPROCESSABLE)
			continue
		}
		_, death, err := patientStream(e, id)
		if err != nil {
			t.Fatal(err)
		}
		if commitOrder(t, e, started.Position) > commitOrder(t, e, death.Position) {
			t.Fatalf("trial %d: an encounter started after the death was recorded", trial)
		}
	}
}

// An erased patient's encounters and orders take no more commands.
func TestCommandsOnAnErasedPatientsStreamsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register()
	enc := e.must(encounter.StartEncounter{PatientID: id, Class: encounter.ClassInpatient, Location: "Ward 3B"})
	order := e.must(medicationorder.PrescribeMedication{PatientID: id, Medication: penicillin, Dose: "1 g", Route: "iv", Frequency: "q6h", Prescriber: "dr"})
	e.must(patient.ErasePatient{PatientID: id})
	for _, cmd := range []commands.Command{
		encounter.TransferPatient{EncounterID: enc.ID, Location: "ICU"},
		encounter.DischargePatient{EncounterID: enc.ID},
		medicationorder.DiscontinueMedication{OrderID: order.ID},
		observation(id, 70),
		encounter.StartEncounter{PatientID: id, Class: encounter.ClassInpatient, Location: "Ward 3B"},
	} {
		_, err := e.run(cmd)
		if chartstream.ErrorCode(err) != chartstream.EUNPROCESSABLE {
			t.Errorf("%s after erasure: %v, want EUNPROCESSABLE", cmd.CommandName(), err)
		}
	}
}

// countingStore counts the events the runner reads.
type countingStore struct {
	*eventstore.Store
	mu   sync.Mutex
	read int
}

func (c *countingStore) Events(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, from int64) iter.Seq2[chartstream.Event, error] {
	return c.count(c.Store.Events(ctx, tenant, stream, from))
}

func (c *countingStore) LoadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, schema int) (chartstream.Snapshot, bool, iter.Seq2[chartstream.Event, error]) {
	snap, ok, events := c.Store.LoadStream(ctx, tenant, stream, schema)
	return snap, ok, c.count(events)
}

func (c *countingStore) count(events iter.Seq2[chartstream.Event, error]) iter.Seq2[chartstream.Event, error] {
	return func(yield func(chartstream.Event, error) bool) {
		for ev, err := range events {
			c.mu.Lock()
			c.read++
			c.mu.Unlock()
			if !yield(ev, err) {
				return
			}
		}
	}
}

// Loading a patient for a command reads a snapshot and the events since,
// not the whole history: its cost does not grow with the history.
func TestCommandsLoadAtConstantCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	counting := &countingStore{Store: e.store}
	e.cmds = commands.New(counting, nil)
	id := e.register()
	// A long history, appended as other writers would.
	for i := range 5 {
		events := make([]chartstream.NewEvent, 200)
		for j := range events {
			events[j] = chartstream.NewEvent{Type: patient.TypeObservationRecorded, Metadata: e.md,
				Payload: []byte(fmt.Sprintf(`{"observation_id":%q,"code":"8867-4","system":%q,"value":%d,"unit":"/min","effective_at":"2026-11-26T10:00:00Z"}`,
					uuid.New(), patient.LOINC, i*200+j))}
		}
		if _, err := e.store.Append(e.ctx, e.tenant, patient.Stream(id), chartstream.AnyVersion, events...); err != nil {
			t.Fatal(err)
		}
	}
	e.must(observation(id, 70)) // reads the history once and snapshots it
	counting.read = 0
	e.must(observation(id, 71))
	if counting.read > 10 {
		t.Errorf("a command on a patient with 1,000 events read %d of them, want only those since the snapshot", counting.read)
	}
}
