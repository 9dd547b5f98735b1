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

// The vital-signs load of the pipeline benches (projections, deid):
// patients registered through the command handler, then observations
// appended at a steady rate and the commit time of each kept, for the
// time to whatever the bench measures.

// benchMetadata is recorded with every bench event.
var benchMetadata = chartstream.Metadata{Actor: "bench"}

// registerVitalsPatients registers n patients of the bench tenant.
func registerVitalsPatients(ctx context.Context, b *benchPipeline, n int) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, n)
	cmds := commands.New(b.writer, nil)
	for i := range ids {
		res, err := cmds.Run(ctx, b.tenant.ID, benchMetadata, patient.RegisterPatient{MRN: fmt.Sprintf("BENCH-%06d", i),
			Name: patient.HumanName{Family: "Bench", Given: []string{"Patient"}}, BirthDate: "1970-01-01", Sex: "unknown"})
		if err != nil {
			return nil, err
		}
		ids[i] = res.ID
	}
	return ids, nil
}

// recordVitalSigns appends perSecond vital signs for duration, spread over
// the patients, straight to their streams (a command handler would re-read
// each stream first), from 16 writers paced every 10 ms; it returns each
// event's commit time.
func recordVitalSigns(ctx context.Context, b *benchPipeline, ids []uuid.UUID, perSecond int, duration time.Duration) (map[uuid.UUID]time.Time, error) {
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
				_, err := b.writer.Append(ctx, b.tenant.ID, patient.Stream(ids[i%len(ids)]), chartstream.AnyVersion,
					chartstream.NewEvent{ID: id, Type: patient.TypeObservationRecorded, Payload: payload, Metadata: benchMetadata})
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
	return committed, firstErr
}

// seenAt records when each event reached what a bench measures.
type seenAt struct {
	mu sync.Mutex
	m  map[uuid.UUID]time.Time
}

func newSeenAt() *seenAt { return &seenAt{m: make(map[uuid.UUID]time.Time)} }

func (s *seenAt) record(id uuid.UUID, at time.Time) {
	s.mu.Lock()
	s.m[id] = at
	s.mu.Unlock()
}

// vitalSignsLags starts the bench's relay and worker (the one measured),
// registers the patients, records vital signs at perSecond for duration,
// and returns the patients and each event's commit -> seen lag in ms,
// sorted, once every event was seen (what says seen as what, for an
// error).
func vitalSignsLags(ctx context.Context, b *benchPipeline, worker func(context.Context) error, seen *seenAt, what string,
	patients, perSecond int, duration time.Duration) ([]uuid.UUID, []float64, error) {
	stopRelay, err := b.startRelay(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer stopRelay()
	defer runInBackground(ctx, worker)()
	ids, err := registerVitalsPatients(ctx, b, patients)
	if err != nil {
		return nil, nil, err
	}
	committed, err := recordVitalSigns(ctx, b, ids, perSecond, duration)
	if err != nil {
		return nil, nil, err
	}
	lags, err := lagsOf(committed, seen, what)
	return ids, lags, err
}

// lagsOf waits up to 60 s until every committed event was seen, then
// returns the lags in ms, sorted.
func lagsOf(committed map[uuid.UUID]time.Time, seen *seenAt, what string) ([]float64, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen.mu.Lock()
		missing := 0
		for id := range committed {
			if _, ok := seen.m[id]; !ok {
				missing++
			}
		}
		seen.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d events not %s within 60s", missing, len(committed), what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lags := make([]float64, 0, len(committed))
	seen.mu.Lock()
	for id, c := range committed {
		lags = append(lags, float64(seen.m[id].Sub(c).Microseconds())/1000)
	}
	seen.mu.Unlock()
	slices.Sort(lags)
	return lags, nil
}
