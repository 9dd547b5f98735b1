package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Two kills of `all`, 6 s apart, the first at 30 %, both leaving the
// process time to come back and the pipeline time to catch up before the
// load ends.
func TestSigkillSchedule(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{minChaosDuration, time.Minute, 5 * time.Minute} {
		s := sigkillSchedule(d)
		if len(s) != 2 {
			t.Fatalf("%s: %d faults, want 2", d, len(s))
		}
		for _, f := range s {
			if f.Kind != faultKillAll {
				t.Errorf("%s: %s, want %s", d, f.Kind, faultKillAll)
			}
			if got := time.Duration(f.Fraction * float64(d)).Round(time.Millisecond); got != f.At {
				t.Errorf("%s: fraction %.3f is %s, but the fault is at %s", d, f.Fraction, got, f.At)
			}
		}
		if want := time.Duration(0.3 * float64(d)); s[0].At < want-time.Second || s[0].At > want+time.Second {
			t.Errorf("%s: first kill at %s, want about %s", d, s[0].At, want)
		}
		if gap := s[1].At - s[0].At; gap != 6*time.Second {
			t.Errorf("%s: kills %s apart, want 6s", d, gap)
		}
		if s[0].At <= 0 || d-s[1].At < 10*time.Second {
			t.Errorf("%s: kills at %s and %s leave too little of the run", d, s[0].At, s[1].At)
		}
	}
}

// The clients together start the pace's commands a second, and a stall
// (the API killed) is not made up by a burst afterwards. Clients that are
// always ready are simulated: each command starts when the bucket allows.
func TestPacer(t *testing.T) {
	t.Parallel()
	const clients = 16
	p := newPacer(sigkillRate, clients)
	t0 := time.Unix(1_700_000_000, 0)
	// starts counts the commands started from..until, each as soon as
	// the bucket allows it.
	starts := func(from, until time.Time) int {
		n, now := 0, from
		for {
			now = now.Add(p.ReserveN(now, 1).DelayFrom(now))
			if !now.Before(until) {
				return n
			}
			n++
		}
	}
	n := starts(t0, t0.Add(10*time.Second))
	if want := int(10 * sigkillRate); n < want || n > want+clients+1 {
		t.Errorf("%d commands in 10s, want %d (+ at most a burst of %d)", n, want, clients)
	}
	// 3 s with nothing sent, then a second of ready clients.
	resume := t0.Add(13 * time.Second)
	if n := starts(resume, resume.Add(time.Second)); n > int(sigkillRate)+clients+1 {
		t.Errorf("%d commands in the second after a stall, want at most %d", n, int(sigkillRate)+clients)
	}
	if got := perSecond(n, 10*time.Second); got < sigkillRate || got > sigkillRate+2 {
		t.Errorf("achieved %.1f/s, want about %.0f/s", got, sigkillRate)
	}
	if got := perSecond(5, 0); got != 0 {
		t.Errorf("perSecond over no time = %v, want 0", got)
	}
}

// The observation-only plan sends observations, on the given patients
// only.
func TestObservationsOnlyLoad(t *testing.T) {
	t.Parallel()
	patients := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	clients, done := newLoadClients([]string{"http://127.0.0.1:1"}, []string{"a", "b"}, newLedger(), loadPlan{Patients: patients})
	defer done()
	for _, c := range clients {
		for range 50 {
			cmd := c.next()
			if cmd.kind != kindObservation {
				t.Fatalf("client %d: %s, want only observations", c.n, cmd.kind)
			}
			if !slices.Contains(patients, cmd.patient) || !strings.Contains(cmd.path, cmd.patient.String()) {
				t.Fatalf("client %d: observation on %s (%s), not one of the given patients", c.n, cmd.patient, cmd.path)
			}
		}
	}
	mixed, done := newLoadClients([]string{"http://127.0.0.1:1"}, []string{"a"}, newLedger(), loadPlan{})
	defer done()
	if cmd := mixed[0].next(); cmd.kind != kindPatient {
		t.Errorf("mixed load starts with %s, want a registration", cmd.kind)
	}
}

// An unknown scenario is bad input: one line, exit 2, before anything
// else is looked at.
func TestChaosUnknownScenario(t *testing.T) {
	t.Parallel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"chaos", "--scenario", "all-sigterm"})
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	err := cmd.Execute()
	var ex exitError
	if !errors.As(err, &ex) || ex.code != 2 {
		t.Fatalf("err %v, want exit 2", err)
	}
	if line := oneLine(err); strings.Contains(line, "\n") || !strings.Contains(line, `unknown scenario "all-sigterm"`) {
		t.Errorf("message %q, want one line naming the scenario", line)
	}
	var s chaosScenario
	for _, name := range []string{"mixed", "all-sigkill"} {
		if err := s.Set(name); err != nil || string(s) != name {
			t.Errorf("Set(%q): %v, scenario %q", name, err, s)
		}
	}
}

// The scenario's default --settle is the 45 s; a --settle given
// is kept.
func TestChaosSettleDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		scenario chaosScenario
		settle   time.Duration
		want     time.Duration
	}{{scenarioMixed, 0, 60 * time.Second}, {scenarioAllSIGKILL, 0, 45 * time.Second}, {scenarioAllSIGKILL, 90 * time.Second, 90 * time.Second}} {
		c := chaosConfig{Scenario: tt.scenario, Settle: tt.settle}
		c.setDefaults()
		if c.Settle != tt.want {
			t.Errorf("%s, --settle %s: %s, want %s", tt.scenario, tt.settle, c.Settle, tt.want)
		}
	}
}

// The comparison counts every observation event of the store and
// every observations row, acknowledged or not: a command whose answer was
// lost with the process still committed.
func TestClassifyCountsObservations(t *testing.T) {
	t.Parallel()
	acked, obs := synthetic(9) // three of each kind
	if got := classify(acked, obs).Observations; got != (observationCount{Store: 3, ReadModel: 3}) {
		t.Fatalf("consistent history: %+v, want 3 and 3", got)
	}
	// Committed, never acknowledged, never projected.
	orphan := chaosEvent{ID: uuid.New(), Type: eventTypes[kindObservation], Fact: fact{kindObservation, uuid.New()}, Correlation: "chaos-unanswered"}
	obs.Store = append(obs.Store, orphan)
	obs.Stream = append(obs.Stream, chaosEvent{ID: uuid.New(), Type: eventTypes[kindObservation], Fact: fact{kindObservation, uuid.New()}})
	v := classify(acked, obs)
	if v.Observations != (observationCount{Store: 4, ReadModel: 3}) || v.Observations.gap() != 1 {
		t.Errorf("an unprojected unacknowledged observation: %+v, want 4 and 3", v.Observations)
	}
	if v.Lost != (lostTally{}) {
		t.Errorf("lost %+v: an unacknowledged command is not lost", v.Lost)
	}
	obs.Rows[orphan.Fact], obs.Rows[fact{kindObservation, uuid.New()}] = 1, 1
	if got := classify(acked, obs).Observations; got != (observationCount{Store: 4, ReadModel: 5}) {
		t.Errorf("a row without an event: %+v, want 4 and 5", got)
	}
}

// A command of unknown outcome is retried aside, with its key, while the
// client goes on; without retries aside the client waits for it.
func TestRetriesAside(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	attempts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts[r.Header.Get("Idempotency-Key")]++
		n := attempts[r.Header.Get("Idempotency-Key")]
		mu.Unlock()
		if n < 3 { // the process died under the first attempts
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q}`, uuid.NewString())
	}))
	defer srv.Close()
	for _, aside := range []bool{false, true} {
		l := newLedger()
		clients, done := newLoadClients([]string{srv.URL}, []string{"token"}, l, loadPlan{Patients: []uuid.UUID{uuid.New()}, RetriesAside: aside})
		c := clients[0]
		c.send(context.Background(), c.next())
		if acked, _ := l.snapshot(); (len(acked) == 0) != aside {
			t.Errorf("retries aside %v: %d acknowledged when send returned", aside, len(acked))
		}
		c.aside.Wait()
		acked, outcomes := l.snapshot()
		if o := outcomes[kindObservation]; len(acked) != 1 || o.Sent != 1 || o.Acknowledged != 1 || o.Retries != 2 {
			t.Errorf("retries aside %v: %d acknowledged, outcomes %+v; want one command acknowledged after 2 retries", aside, len(acked), o)
		}
		done()
	}
}
