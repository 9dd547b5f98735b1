package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/workers"
)

// Probing: how an observation's visibility is looked for.
const (
	probeFirstPoll = 5 * time.Millisecond
	probeMaxPoll   = 100 * time.Millisecond
	probeTimeout   = 30 * time.Second
	// probesInFlight bounds the probes polling at once, so that a lagging
	// pipeline is not also flooded with polls; samples beyond it are
	// dropped (and counted).
	probesInFlight = 32
)

// visibilityReport is commit -> visible: from a sampled observation's 2xx
// answer to the sending of the first read of the observation list (no
// consistency token) that contains it: how long a client must wait before
// a read shows its write. The read's own latency is not counted, since an
// overloaded API would add its queueing to a lag that is not there. Polls
// start 5 ms apart and back off to 100 ms, which bounds the error.
// Samples are the observations probed; the percentiles are of those seen.
type visibilityReport struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	// Over1s took over a second, NotSeen among them: not visible within
	// 30 s. Dropped were not probed: too many probes were in flight.
	Over1s  int `json:"over_1s"`
	NotSeen int `json:"not_seen"`
	Dropped int `json:"dropped"`
	// PollErrors are polls answered other than 200 (they are retried).
	PollErrors int `json:"poll_errors"`
}

// prober polls the observation list for sampled observations until each
// appears.
type prober struct {
	ctx    context.Context
	client *http.Client
	base   string
	token  string
	slots  chan struct{}
	wg     sync.WaitGroup

	mu  sync.Mutex
	lat []float64
	r   visibilityReport
}

func newProber(ctx context.Context, client *http.Client, base, token string) *prober {
	return &prober{ctx: ctx, client: client, base: base, token: token, slots: make(chan struct{}, probesInFlight)}
}

// submit starts probing for observation obs of patient p, committed at
// committed; it never blocks the load.
func (p *prober) submit(patient, obs uuid.UUID, committed time.Time) {
	select {
	case p.slots <- struct{}{}:
	default:
		p.mu.Lock()
		p.r.Dropped++
		p.mu.Unlock()
		return
	}
	p.wg.Go(func() {
		defer func() { <-p.slots }()
		p.probe(patient, obs, committed)
	})
}

func (p *prober) probe(patient, obs uuid.UUID, committed time.Time) {
	url := p.base + "/v1/patients/" + patient.String() + "/observations?limit=200&code=" + probeCode
	wait := probeFirstPoll
	for {
		sent := time.Now()
		seen, ok := p.visible(url, obs)
		p.mu.Lock()
		switch {
		case seen:
			p.lat = append(p.lat, float64(sent.Sub(committed).Microseconds())/1000)
		case !ok:
			p.r.PollErrors++
		}
		p.mu.Unlock()
		if seen || p.ctx.Err() != nil {
			return
		}
		if time.Since(committed) > probeTimeout {
			p.mu.Lock()
			p.r.NotSeen++
			p.mu.Unlock()
			return
		}
		if sleepCtx(p.ctx, wait) != nil {
			return
		}
		wait = min(wait*3/2, probeMaxPoll)
	}
}

// visible reads the list once; ok is false when the read failed.
func (p *prober) visible(url string, obs uuid.UUID) (seen, ok bool) {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, false
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	status, body, _, err := send(p.client, req, true)
	if err != nil || status != http.StatusOK {
		return false, false
	}
	var page struct {
		Items []struct {
			ID uuid.UUID `json:"observation_id"`
		} `json:"items"`
	}
	if json.Unmarshal(body, &page) != nil {
		return false, false
	}
	for _, o := range page.Items {
		if o.ID == obs {
			return true, true
		}
	}
	return false, true
}

// report waits for the probes in flight and summarises them.
func (p *prober) report() visibilityReport {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.r
	lat := slices.Sorted(slices.Values(p.lat))
	r.Samples, r.Over1s = len(lat)+r.NotSeen, r.NotSeen
	r.P50Ms, r.P99Ms = quantile(lat, 0.5), quantile(lat, 0.99)
	if len(lat) > 0 {
		r.MaxMs = lat[len(lat)-1]
	}
	for _, l := range lat {
		if l > 1000 {
			r.Over1s++
		}
	}
	return r
}

// lagReport is the bench tenant's projection lag (workers.Status, the
// largest of its projections), sampled every second under load.
type lagReport struct {
	Samples    int     `json:"samples"`
	MaxEvents  float64 `json:"max_events"`
	P99Events  float64 `json:"p99_events"`
	MaxSeconds float64 `json:"max_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
	// Errors are samples that could not be taken.
	Errors int `json:"errors"`
}

// sampleLag samples the tenant's projection lag every second until the
// returned stop, which returns the summary.
func sampleLag(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID) (stop func() lagReport) {
	names := projectionNames()
	ctx, cancel := context.WithCancel(ctx)
	var events, seconds []float64
	var errs int
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st, err := workers.Status(ctx, pool, names, tenant)
			if err != nil {
				if ctx.Err() == nil {
					errs++
				}
				continue
			}
			var e, s float64
			for _, p := range st {
				e, s = max(e, float64(p.LagEvents)), max(s, p.LagSeconds)
			}
			events, seconds = append(events, e), append(seconds, s)
		}
	}()
	return func() lagReport {
		cancel()
		<-done
		slices.Sort(events)
		slices.Sort(seconds)
		r := lagReport{Samples: len(events), Errors: errs, P99Events: quantile(events, 0.99), P99Seconds: quantile(seconds, 0.99)}
		if len(events) > 0 {
			r.MaxEvents, r.MaxSeconds = events[len(events)-1], seconds[len(seconds)-1]
		}
		return r
	}
}

// projectionNames are the read models' names, as workers.Status wants them.
func projectionNames() []string {
	var names []string
	for _, p := range readModels() {
		names = append(names, p.Name())
	}
	return names
}
