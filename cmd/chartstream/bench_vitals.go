package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
)

// benchPatients registers n patients of the bench tenant through the
// command handlers.
func benchPatients(ctx context.Context, b *benchPipeline, n int) ([]uuid.UUID, error) {
	md := chartstream.Metadata{Actor: "bench"}
	ids := make([]uuid.UUID, n)
	cmds := commands.New(b.writer, nil)
	for i := range ids {
		res, err := cmds.Run(ctx, b.tenant.ID, md, patient.RegisterPatient{MRN: fmt.Sprintf("BENCH-%06d", i),
			Name: patient.HumanName{Family: "Bench", Given: []string{"Patient"}}, BirthDate: "1970-01-01", Sex: "unknown"})
		if err != nil {
			return nil, err
		}
		ids[i] = res.ID
	}
	return ids, nil
}

// recordVitals appends vital signs to the patients' streams at perSecond
// for duration, straight through the event store (a command handler would
// re-read each stream first), and returns when each was committed.
func recordVitals(ctx context.Context, b *benchPipeline, ids []uuid.UUID, perSecond int, duration time.Duration) (map[uuid.UUID]time.Time, error) {
	tenant, md := b.tenant.ID, chartstream.Metadata{Actor: "bench"}
	n := int(float64(perSecond) * duration.Seconds())
	committed := make(map[uuid.UUID]time.Time, n)
	var cmu sync.Mutex
	bar := newProgress(int64(n), "vital signs")
	tokens := make(chan int, n)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tokens {
				id := uuid.Must(uuid.NewV7())
				payload, _ := json.Marshal(patient.ObservationRecorded{ObservationID: uuid.New(), Code: "8867-4", System: patient.LOINC,
					Value: ptrTo(60 + float64(i%40)), Unit: "/min", EffectiveAt: time.Now().UTC()})
				_, err := b.writer.Append(ctx, tenant, patient.Stream(ids[i%len(ids)]), chartstream.AnyVersion,
					chartstream.NewEvent{ID: id, Type: patient.TypeObservationRecorded, Payload: payload, Metadata: md})
				if err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				cmu.Lock()
				committed[id] = time.Now()
				cmu.Unlock()
				_ = bar.Add(1)
			}
		}()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	perTick := max(1, perSecond/100)
	for sent := 0; sent < n; {
		<-tick.C
		for j := 0; j < perTick && sent < n; j++ {
			tokens <- sent
			sent++
		}
	}
	tick.Stop()
	close(tokens)
	wg.Wait()
	_ = bar.Finish()
	if firstErr != nil {
		return nil, firstErr
	}
	return committed, nil
}

// commitLags waits up to 60 s until appliedAt knows every committed event,
// and returns the lags from commit to applied in ms, sorted.
func commitLags(committed map[uuid.UUID]time.Time, appliedAt func(uuid.UUID) (time.Time, bool)) ([]float64, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		for id := range committed {
			if _, ok := appliedAt(id); !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d events not applied within 60s", missing, len(committed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	lags := make([]float64, 0, len(committed))
	for id, c := range committed {
		at, _ := appliedAt(id)
		lags = append(lags, float64(at.Sub(c).Microseconds())/1000)
	}
	slices.Sort(lags)
	return lags, nil
}

// appliedTimes records when a worker applied each of the bench tenant's
// events (its AppliedFn).
type appliedTimes struct {
	tenant chartstream.TenantID
	mu     sync.Mutex
	at     map[uuid.UUID]time.Time
}

func newAppliedTimes(tenant chartstream.TenantID) *appliedTimes {
	return &appliedTimes{tenant: tenant, at: make(map[uuid.UUID]time.Time)}
}

func (a *appliedTimes) record(e chartstream.Event, at time.Time) {
	if e.Tenant == a.tenant {
		a.mu.Lock()
		a.at[e.ID] = at
		a.mu.Unlock()
	}
}

func (a *appliedTimes) of(id uuid.UUID) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[id]
	return at, ok
}

// lagPhase runs the bench's relay and worker (until stop), registers
// patients, records their vital signs at perSecond for duration and
// returns the patients and, for each of applied, every event's
// commit-to-applied lag in ms, sorted.
func lagPhase(ctx context.Context, b *benchPipeline, worker func(context.Context) error, applied []*appliedTimes,
	patients, perSecond int, duration time.Duration) (ids []uuid.UUID, lags [][]float64, stop func(), err error) {
	stopRelay, err := b.startRelay(ctx, nil)
	if err != nil {
		return nil, nil, func() {}, err
	}
	stopWorker := runInBackground(ctx, worker)
	stop = func() { stopWorker(); stopRelay() }
	if ids, err = benchPatients(ctx, b, patients); err != nil {
		return nil, nil, stop, err
	}
	committed, err := recordVitals(ctx, b, ids, perSecond, duration)
	if err != nil {
		return nil, nil, stop, err
	}
	for _, a := range applied {
		l, err := commitLags(committed, a.of)
		if err != nil {
			return nil, nil, stop, err
		}
		lags = append(lags, l)
	}
	return ids, lags, stop, nil
}
