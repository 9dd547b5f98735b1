package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/commands/patient"
)

// benchOp is one kind of request bench commands sends.
type benchOp string

// The operations, each a real route of the API.
const (
	opRegister  benchOp = "register"    // POST /v1/patients
	opObserve   benchOp = "observe"     // POST /v1/patients/{id}/observations
	opPrescribe benchOp = "prescribe"   // POST /v1/patients/{id}/medication-orders
	opChart     benchOp = "read_chart"  // GET /v1/patients/{id}
	opFHIR      benchOp = "fhir_search" // GET /fhir/R4/Observation?patient={id}
)

// benchOps in report order.
var benchOps = []benchOp{opRegister, opObserve, opPrescribe, opChart, opFHIR}

// share is one operation's part of a mix.
type share struct {
	op       benchOp
	fraction float64
}

// benchMix is a mix of operations whose fractions sum to 1.
type benchMix []share

// clinicalMix is the mix of a clinical day: 60% observations, 20%
// chart reads, 10% registrations, 10% FHIR searches.
var clinicalMix = benchMix{{opObserve, 0.6}, {opChart, 0.2}, {opRegister, 0.1}, {opFHIR, 0.1}}

// mixSequence yields the points a client picks its operations at: a
// golden-ratio sequence from a random start, so that in any short run each
// operation gets close to its share (independent draws could leave a
// 10% operation out of 20 requests one time in eight).
func mixSequence(rng *rand.Rand) func() float64 {
	u := rng.Float64()
	return func() float64 {
		u = math.Mod(u+0.6180339887498949, 1)
		return u
	}
}

// only is the mix of a single operation.
func only(op benchOp) benchMix { return benchMix{{op, 1}} }

// pick returns the operation for u, uniform in [0, 1).
func (m benchMix) pick(u float64) benchOp {
	for _, s := range m {
		if u < s.fraction {
			return s.op
		}
		u -= s.fraction
	}
	return m[len(m)-1].op
}

// thinkTime draws a user's pause between requests: exponential with the
// given mean, so that many users' requests arrive as a Poisson process.
func thinkTime(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(rng.ExpFloat64() * float64(mean))
}

// outcome classifies an answer.
type outcome int

const (
	outcomeOK      outcome = iota // 2xx
	outcomeRefused                // 429 or 503: the server shed the load
	outcomeError                  // any other status, or no answer (status 0)
)

// classify tells a refusal (the rate limit, the bulkhead, a dependency
// down) from an error: a refused request may be retried; an error is a bug
// or a broken run.
func classifyStatus(status int) outcome {
	switch {
	case status >= 200 && status < 300:
		return outcomeOK
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return outcomeRefused
	default:
		return outcomeError
	}
}

// statusKey names a status in a report; 0 is a request that got no answer.
func statusKey(status int) string {
	if status == 0 {
		return "transport"
	}
	return strconv.Itoa(status)
}

// opReport is one operation's figures. Latencies are of 2xx answers only
// (a refusal is fast and would flatter them), from sending the request to
// reading the whole answer, in ms.
type opReport struct {
	Op       benchOp `json:"op"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	OKPerSec float64 `json:"ok_per_sec"`
	P50Ms    float64 `json:"p50_ms"`
	P95Ms    float64 `json:"p95_ms"`
	P99Ms    float64 `json:"p99_ms"`
	// Errors are non-2xx answers other than refusals, and requests that
	// got no answer; Refusals are 429 and 503.
	Errors   int64 `json:"errors"`
	Refusals int64 `json:"refusals"`
	// Statuses counts every non-2xx answer by status ("transport": none).
	Statuses map[string]int64 `json:"statuses,omitempty"`
}

// recorder collects the answers of a run, per operation.
type recorder struct {
	mu  sync.Mutex
	ops map[benchOp]*opTally
}

type opTally struct {
	latencies []float64 // ms, of 2xx answers
	report    opReport
}

func newRecorder() *recorder { return &recorder{ops: map[benchOp]*opTally{}} }

// record counts one answer (status 0: none).
func (r *recorder) record(op benchOp, status int, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.ops[op]
	if t == nil {
		t = &opTally{report: opReport{Op: op, Statuses: map[string]int64{}}}
		r.ops[op] = t
	}
	t.report.Requests++
	switch classifyStatus(status) {
	case outcomeOK:
		t.report.OK++
		t.latencies = append(t.latencies, float64(latency.Microseconds())/1000)
		return
	case outcomeRefused:
		t.report.Refusals++
	default:
		t.report.Errors++
	}
	t.report.Statuses[statusKey(status)]++
}

// reports returns the figures of every operation that was sent, in report
// order, rates over elapsed.
func (r *recorder) reports(elapsed time.Duration) []opReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []opReport
	for _, op := range benchOps {
		t := r.ops[op]
		if t == nil {
			continue
		}
		rep := t.report
		lat := slices.Sorted(slices.Values(t.latencies))
		rep.OKPerSec = rate(rep.OK, elapsed)
		rep.P50Ms, rep.P95Ms, rep.P99Ms = quantile(lat, 0.50), quantile(lat, 0.95), quantile(lat, 0.99)
		if len(rep.Statuses) == 0 {
			rep.Statuses = nil
		}
		out = append(out, rep)
	}
	return out
}

// probeCode is the LOINC code (body temperature) of the observations whose
// visibility is probed; the others are heart rates. Listing one code keeps
// the probes' reads small whatever else the patient has.
const probeCode = "8310-5"

// benchTarget builds the bench's requests and records their answers.
type benchTarget struct {
	base string
	// patients are the pre-registered patients observations, orders and
	// reads go to.
	patients []uuid.UUID
	rec      *recorder
	// probe, when set, is handed every sampleEvery-th observation.
	probe       *prober
	sampleEvery int64
	observed    atomic.Int64
}

// newRequest builds op's request on a random pre-registered patient and
// says whether it is an observation to probe.
func (t *benchTarget) newRequest(ctx context.Context, op benchOp, token string, rng *rand.Rand) (*http.Request, uuid.UUID, bool) {
	var p uuid.UUID
	if len(t.patients) > 0 {
		p = t.patients[rng.IntN(len(t.patients))]
	}
	method, path, probed := http.MethodPost, "/v1/patients/"+p.String(), false
	var body []byte
	now := time.Now().UTC().Format(time.RFC3339)
	switch op {
	case opRegister:
		// Synthetic demographics, an MRN unique in the tenant.
		path = "/v1/patients"
		body = fmt.Appendf(nil, `{"mrn":"BENCH-%s","name":{"family":"Bench","given":["Patient"]},"birth_date":"1970-01-01","sex":"unknown"}`, uuid.New())
	case opObserve:
		path += "/observations"
		if probed = t.probe != nil && t.observed.Add(1)%t.sampleEvery == 0; probed {
			body = fmt.Appendf(nil, `{"code":%q,"system":%q,"value":%.1f,"unit":"Cel","effective_at":%q}`, probeCode, patient.LOINC, 36+rng.Float64()*2, now)
		} else {
			body = fmt.Appendf(nil, `{"code":"8867-4","system":%q,"value":%d,"unit":"/min","effective_at":%q}`, patient.LOINC, 50+rng.IntN(60), now)
		}
	case opPrescribe:
		path += "/medication-orders"
		body = fmt.Appendf(nil, `{"medication":{"code":"197361","display":"Amlodipine 5 MG Oral Tablet","system":%q},"dose":"5 mg","route":"oral","frequency":"daily"}`, patient.RxNorm)
	case opChart:
		method = http.MethodGet
	case opFHIR:
		method, path = http.MethodGet, "/fhir/R4/Observation?patient="+p.String()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		panic(err) // the bench's own URL and method: a bug
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, p, probed
}

// send sends req and reads the whole answer (so the connection is reused),
// returning its body only when keep is set.
func send(hc *http.Client, req *http.Request, keep bool) (status int, body []byte, latency time.Duration, err error) {
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	if keep {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return 0, nil, 0, err
	}
	return resp.StatusCode, body, time.Since(start), nil
}

// do sends one op and records it; an observation picked for sampling goes
// to the prober once committed. A request cut short because ctx ended is
// not counted.
func (t *benchTarget) do(ctx context.Context, hc *http.Client, token string, op benchOp, rng *rand.Rand) {
	req, p, probed := t.newRequest(ctx, op, token, rng)
	status, body, latency, err := send(hc, req, probed)
	if err != nil && ctx.Err() != nil {
		return
	}
	t.rec.record(op, status, latency)
	if probed && classifyStatus(status) == outcomeOK {
		committed := time.Now()
		if id, err := commandID(body); err == nil {
			t.probe.submit(p, id, committed)
		}
	}
}

// commandID reads the id of a command's answer.
func commandID(body []byte) (uuid.UUID, error) {
	var res struct {
		ID uuid.UUID `json:"id"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.ID == uuid.Nil {
		return uuid.Nil, fmt.Errorf("a command's answer without an id: %.200s", body)
	}
	return res.ID, nil
}
