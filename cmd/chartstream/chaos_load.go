package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	tokenbucket "golang.org/x/time/rate"

	"github.com/chartstream/chartstream/commands/patient"
)

// commandKind is one kind of clinical command the load sends.
type commandKind string

// The commands of the load's clinical mix.
const (
	kindPatient     commandKind = "patient"
	kindObservation commandKind = "observation"
	kindOrder       commandKind = "medication_order"
)

// commandKinds in report order.
var commandKinds = []commandKind{kindPatient, kindObservation, kindOrder}

// Client retry policy. A command is retried with the same Idempotency-Key
// on connection errors, timeouts, 429 and 5xx, and on a 409 after an
// attempt whose outcome it did not learn (the idempotency store answers 409
// while an earlier attempt is still in flight). The budget outlasts the
// idempotency store's in-flight claim (60 s) of an attempt whose API
// process was killed, after which a retry may run.
const (
	commandRetryBudget = 75 * time.Second
	attemptTimeout     = 20 * time.Second
	backoffBase        = 100 * time.Millisecond
	backoffMax         = 2 * time.Second
	retryAfterMax      = 5 * time.Second
)

// ackedCommand is a command the API answered 2xx: the ledger's entry.
type ackedCommand struct {
	Kind commandKind
	// ID is the id the API returned: the patient, observation or order.
	ID uuid.UUID
	// Patient is the patient the command concerns.
	Patient uuid.UUID
	// Key is the command's Idempotency-Key, also sent as its correlation
	// id, so that every event it caused can be found in the store.
	Key string
}

// commandOutcomes counts what became of the commands of one kind.
type commandOutcomes struct {
	// Sent is commands started; Acknowledged of them were answered 2xx.
	Sent, Acknowledged int
	// Refused were answered a final 4xx; GaveUp exhausted the retry budget
	// without an answer (their outcome is unknown).
	Refused, GaveUp int
	// Retries is attempts beyond each command's first.
	Retries int
}

// ledger is the client side's record of every acknowledged command.
type ledger struct {
	mu       sync.Mutex
	acked    []ackedCommand
	outcomes map[commandKind]*commandOutcomes
}

func newLedger() *ledger {
	l := &ledger{outcomes: map[commandKind]*commandOutcomes{}}
	for _, k := range commandKinds {
		l.outcomes[k] = &commandOutcomes{}
	}
	return l
}

func (l *ledger) record(kind commandKind, fn func(*commandOutcomes)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.outcomes[kind])
}

func (l *ledger) ack(c ackedCommand) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked = append(l.acked, c)
	l.outcomes[c.Kind].Acknowledged++
}

// snapshot returns the acknowledged commands and the outcome counts.
func (l *ledger) snapshot() ([]ackedCommand, map[commandKind]commandOutcomes) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[commandKind]commandOutcomes, len(l.outcomes))
	for k, v := range l.outcomes {
		out[k] = *v
	}
	return append([]ackedCommand(nil), l.acked...), out
}

// loadCommand is one command as sent, identical on every retry.
type loadCommand struct {
	kind    commandKind
	path    string
	body    []byte
	patient uuid.UUID
	key     string
}

// loadPlan says what the clients send.
type loadPlan struct {
	// Patients, when set, are the patients the clients record
	// observations on, and observations are all they send. Otherwise
	// each client registers patients of its own and sends the mixed load.
	Patients []uuid.UUID
	// Pace, when set, paces the commands of all the clients together.
	Pace *tokenbucket.Limiter
	// RetriesAside, with Patients, retries a command of unknown outcome
	// beside the client's next commands rather than before them (see
	// loadClient.retry), so that a kill does not stall the pace. Not
	// without Patients: a registration's retry would race the client to
	// record its patient.
	RetriesAside bool
}

// loadClient is one simulated clinical client: its own token (subject), a
// preferred API process, and the patients it registered or was given.
type loadClient struct {
	n        int
	token    string
	servers  []string
	http     *http.Client
	ledger   *ledger
	rng      *rand.Rand
	patients []uuid.UUID
	// observationsOnly, pace and retriesAside come from the loadPlan.
	observationsOnly bool
	pace             *tokenbucket.Limiter
	retriesAside     bool
	// aside runs the retries set aside.
	aside sync.WaitGroup
}

// run sends commands until stop, then returns once its last command is
// settled, also those retried aside; ctx ends everything at once
// (interrupt).
func (c *loadClient) run(ctx context.Context, stop <-chan struct{}) {
	defer c.aside.Wait()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		// A command waits for its token; its retries do not: they are
		// paced by their backoff, and the rate is of commands.
		if c.pace != nil && c.pace.Wait(ctx) != nil {
			return
		}
		c.send(ctx, c.next())
	}
}

// next picks the next command: registrations first, then a mix of mostly
// observations and some prescriptions on the client's own patients; or,
// observations only, on the patients it was given.
func (c *loadClient) next() loadCommand {
	key := "chaos-" + uuid.NewString()
	if c.observationsOnly {
		return c.observation(key, c.patients[c.rng.IntN(len(c.patients))])
	}
	roll := c.rng.Float64()
	if len(c.patients) == 0 || roll < 0.15 {
		return c.registration(key)
	}
	p := c.patients[c.rng.IntN(len(c.patients))]
	if roll < 0.70 {
		return c.observation(key, p)
	}
	return loadCommand{kind: kindOrder, path: "/v1/patients/" + p.String() + "/medication-orders", patient: p, key: key, body: mustJSON(map[string]any{
		"medication": map[string]any{"code": "197361", "display": "Amlodipine 5 MG Oral Tablet", "system": patient.RxNorm},
		"dose":       "5 mg", "route": "oral", "frequency": "daily",
	})}
}

// registration registers a patient with synthetic demographics, never
// printed or logged.
func (c *loadClient) registration(key string) loadCommand {
	return loadCommand{kind: kindPatient, path: "/v1/patients", key: key, body: mustJSON(map[string]any{
		"mrn":        "CHAOS-" + key[6:18],
		"name":       map[string]any{"family": "Chaos", "given": []string{fmt.Sprintf("Client%d", c.n)}},
		"birth_date": "1970-01-01",
		"sex":        "unknown",
	})}
}

// observation records a heart rate for patient p.
func (c *loadClient) observation(key string, p uuid.UUID) loadCommand {
	return loadCommand{kind: kindObservation, path: "/v1/patients/" + p.String() + "/observations", patient: p, key: key, body: mustJSON(map[string]any{
		"code": "8867-4", "system": patient.LOINC, "value": 50 + c.rng.IntN(60), "unit": "/min",
		"effective_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
	})}
}

// send runs one command to its end: acknowledged, refused, or given up
// after the retry budget. Retries keep the Idempotency-Key and fail over to
// the other API process after a connection error or a 5xx.
func (c *loadClient) send(ctx context.Context, cmd loadCommand) {
	c.ledger.record(cmd.kind, func(o *commandOutcomes) { o.Sent++ })
	c.retry(ctx, cmd, &commandState{deadline: time.Now().Add(commandRetryBudget), server: c.n % len(c.servers)})
}

// commandState is how far one command's attempts have gone.
type commandState struct {
	deadline time.Time
	server   int
	attempt  int
	// unsure is true once an attempt's outcome is unknown.
	unsure bool
}

// retry makes cmd's attempts until its end. With retriesAside, the
// attempts after the first of unknown outcome go on on a goroutine of
// their own, and retry returns at once so that the client sends its next
// command: the in-flight claim of an attempt whose process was killed
// answers its retries 409 for up to 60 s, and the load went on at
// its pace meanwhile.
func (c *loadClient) retry(ctx context.Context, cmd loadCommand, s *commandState) {
	for {
		s.attempt++
		status, body, retryAfter, err := c.attempt(ctx, c.servers[s.server], cmd)
		switch {
		case err == nil && status >= 200 && status < 300:
			c.acknowledge(cmd, body)
			return
		case err == nil && !retryable(status, s.unsure):
			c.ledger.record(cmd.kind, func(o *commandOutcomes) { o.Refused++ })
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil || status >= 500 {
			first := !s.unsure
			s.unsure = true
			s.server = (s.server + 1) % len(c.servers)
			if first && c.retriesAside {
				c.aside.Go(func() {
					if c.backoff(ctx, cmd, s, retryAfter) {
						c.retry(ctx, cmd, s)
					}
				})
				return
			}
		}
		if !c.backoff(ctx, cmd, s, retryAfter) {
			return
		}
	}
}

// backoff waits before cmd's next attempt, and reports false when the
// retry budget does not allow one (the command is given up) or ctx ended.
func (c *loadClient) backoff(ctx context.Context, cmd loadCommand, s *commandState, retryAfter time.Duration) bool {
	wait := min(backoffBase<<min(s.attempt-1, 5), backoffMax)
	// The package's generator: retries aside run beside the client's own.
	wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
	if retryAfter > wait {
		wait = min(retryAfter, retryAfterMax)
	}
	if time.Now().Add(wait).After(s.deadline) {
		c.ledger.record(cmd.kind, func(o *commandOutcomes) { o.GaveUp++ })
		return false
	}
	c.ledger.record(cmd.kind, func(o *commandOutcomes) { o.Retries++ })
	return sleepCtx(ctx, wait) == nil
}

// retryable reports whether a response status is worth a retry with the
// same key. A 409 is, once an earlier attempt may still be running.
func retryable(status int, unsure bool) bool {
	return status >= 500 || status == http.StatusTooManyRequests || (status == http.StatusConflict && unsure)
}

// attempt sends cmd once and returns the status, body and Retry-After.
func (c *loadClient) attempt(ctx context.Context, base string, cmd loadCommand) (int, []byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+cmd.path, bytes.NewReader(cmd.body))
	if err != nil {
		return 0, nil, 0, err
	}
	h := req.Header
	h.Set("Authorization", "Bearer "+c.token)
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", cmd.key)
	h.Set("X-Correlation-ID", cmd.key)
	h.Set("X-Client", "chaos")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, 0, err
	}
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, body, retryAfter, nil
}

// acknowledge records a 2xx answer in the ledger.
func (c *loadClient) acknowledge(cmd loadCommand, body []byte) {
	var res struct {
		ID uuid.UUID `json:"id"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.ID == uuid.Nil {
		// A 2xx without an id cannot be checked; count it as refused
		// rather than pretend it was acknowledged.
		c.ledger.record(cmd.kind, func(o *commandOutcomes) { o.Refused++ })
		return
	}
	a := ackedCommand{Kind: cmd.kind, ID: res.ID, Patient: cmd.patient, Key: cmd.key}
	if cmd.kind == kindPatient {
		a.Patient = res.ID
		c.patients = append(c.patients, res.ID)
	}
	c.ledger.ack(a)
}

// runLoad runs a client per token against servers, as plan says, until
// stop is closed, and returns when every client's last command has
// settled.
func runLoad(ctx context.Context, stop <-chan struct{}, servers, tokens []string, l *ledger, plan loadPlan) {
	clients, done := newLoadClients(servers, tokens, l, plan)
	defer done()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx, stop) })
	}
	wg.Wait()
}

// newLoadClients returns a client per token, sharing one HTTP transport
// that done closes.
func newLoadClients(servers, tokens []string, l *ledger, plan loadPlan) ([]*loadClient, func()) {
	transport := &http.Transport{MaxIdleConns: 2 * len(tokens), MaxIdleConnsPerHost: len(tokens), IdleConnTimeout: 90 * time.Second}
	httpClient := &http.Client{Transport: transport}
	clients := make([]*loadClient, len(tokens))
	for i, tok := range tokens {
		clients[i] = &loadClient{n: i, token: tok, servers: servers, http: httpClient, ledger: l, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
			patients: slices.Clone(plan.Patients), observationsOnly: len(plan.Patients) > 0, pace: plan.Pace,
			retriesAside: plan.RetriesAside && len(plan.Patients) > 0}
	}
	return clients, transport.CloseIdleConnections
}

// mustJSON encodes a request body built from literals.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
