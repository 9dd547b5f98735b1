package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
)

// History sizes: the default, and the largest accepted.
const (
	defaultHistories = "10,1000,10000,100000"
	maxHistory       = 1_000_000
	// seedBatch is the events of one append while seeding (the event
	// store's cap on one append).
	seedBatch = 1000
)

// parseHistories reads --histories: stream lengths, comma-separated, each
// 2 to 1,000,000 events (a registration and at least one observation),
// each once. Empty skips the phase.
func parseHistories(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > maxHistory {
			return nil, fmt.Errorf("--histories: %q is not a history size (events, 2 to %d)", strings.TrimSpace(f), maxHistory)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--histories: %d is given twice", n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// historyResult is POST observation's latency on a patient whose stream
// held Events events before the first POST.
type historyResult struct {
	Events   int     `json:"events"`
	Posts    int     `json:"posts"`
	MedianMs float64 `json:"median_ms"`
	// FirstMs is the first POST's, which may replay the whole stream
	// (before the aggregate has a snapshot).
	FirstMs float64 `json:"first_ms"`
	Errors  int64   `json:"errors"`
}

// historyReport is loading cost against history.
type historyReport struct {
	Sizes []historyResult `json:"sizes"`
	// Ratio is the median at the longest history over the median at the
	// shortest (the acceptance: at most 1.5 for 100,000 : 10).
	Ratio       float64 `json:"ratio"`
	SeedSeconds float64 `json:"seed_s"`
}

// benchHistory registers a patient per size through the API, appends the
// rest of each history straight to the event store (as the command
// would: patient.observation_recorded, in appends of up to 1,000 events),
// waits until it is projected, then sends posts sequential POST
// observations per patient, taking the sizes in turn so that a change in
// the machine's load touches every size alike.
func benchHistory(ctx context.Context, s *commandsStack, sizes []int, posts int) (historyReport, error) {
	var r historyReport
	token, err := s.token("bench-history")
	if err != nil {
		return r, err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	t := &benchTarget{base: s.base, rec: newRecorder()}
	ids, err := registerBenchPatients(ctx, t, hc, []string{token}, len(sizes))
	if err != nil {
		return r, err
	}
	seedStart := time.Now()
	total := 0
	for _, n := range sizes {
		total += n - 1
	}
	bar := newProgress(int64(total), "seeding histories")
	md := chartstream.Metadata{Actor: "bench-history", Roles: []string{string(chartstream.RoleClinician)}, CorrelationID: uuid.NewString()}
	start := time.Now().UTC().Add(-365 * 24 * time.Hour)
	for i, n := range sizes {
		// The registration is version 1; observations follow it.
		for v := int64(1); v < int64(n); {
			batch := make([]chartstream.NewEvent, 0, min(seedBatch, int64(n)-v))
			for len(batch) < cap(batch) {
				value := 50 + float64(len(batch)%60)
				payload, err := json.Marshal(patient.ObservationRecorded{ObservationID: uuid.New(), Code: "8867-4", System: patient.LOINC,
					Value: &value, Unit: "/min", EffectiveAt: start.Add(time.Duration(v+int64(len(batch))) * time.Second)})
				if err != nil {
					return r, err
				}
				batch = append(batch, chartstream.NewEvent{Type: patient.TypeObservationRecorded, Payload: payload, Metadata: md})
			}
			if _, err := s.store.Append(ctx, s.tenant.ID, patient.Stream(ids[i]), v, batch...); err != nil {
				_ = bar.Finish()
				return r, fmt.Errorf("seed a history of %d events: %w", n, err)
			}
			v += int64(len(batch))
			_ = bar.Add(len(batch))
		}
	}
	_ = bar.Finish()
	if err := s.waitProjected(ctx, "projecting the seeded histories", 10*time.Minute); err != nil {
		return r, err
	}
	if err := s.waitDigested(ctx, 10*time.Minute); err != nil {
		return r, err
	}
	r.SeedSeconds = time.Since(seedStart).Seconds()

	lat := make([][]float64, len(sizes))
	r.Sizes = make([]historyResult, len(sizes))
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	pbar := newProgress(int64(posts*len(sizes)), "POST observation per history")
	for round := 0; round < posts; round++ {
		for i := range sizes {
			t.patients = ids[i : i+1]
			req, _, _ := t.newRequest(ctx, opObserve, token, rng)
			status, _, latency, err := send(hc, req, false)
			if err != nil {
				_ = pbar.Finish()
				return r, fmt.Errorf("POST observation: %w", err)
			}
			_ = pbar.Add(1)
			if classifyStatus(status) != outcomeOK {
				r.Sizes[i].Errors++
				continue
			}
			ms := float64(latency.Microseconds()) / 1000
			if round == 0 {
				r.Sizes[i].FirstMs = ms
			}
			lat[i] = append(lat[i], ms)
		}
	}
	_ = pbar.Finish()
	for i, n := range sizes {
		slices.Sort(lat[i])
		r.Sizes[i].Events, r.Sizes[i].Posts, r.Sizes[i].MedianMs = n, posts, quantile(lat[i], 0.5)
	}
	if first := r.Sizes[0].MedianMs; first > 0 {
		r.Ratio = r.Sizes[len(sizes)-1].MedianMs / first
	}
	return r, nil
}
