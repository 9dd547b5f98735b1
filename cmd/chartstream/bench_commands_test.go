package main

import (
	"encoding/json"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chartstream/chartstream/internal/testkit"
)

func TestRecorderPercentilesAndRates(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(100) { // 1..100 ms, in any order
		rec.record(opChart, http.StatusOK, time.Duration(i+1)*time.Millisecond)
	}
	reports := rec.reports(10 * time.Second)
	if len(reports) != 1 {
		t.Fatalf("reports %+v, want one operation", reports)
	}
	r := reports[0]
	if r.Op != opChart || r.Requests != 100 || r.OK != 100 || r.OKPerSec != 10 {
		t.Errorf("report %+v, want read_chart, 100 requests, all 2xx, 10/s", r)
	}
	if r.P50Ms != 50 || r.P95Ms != 95 || r.P99Ms != 99 {
		t.Errorf("p50 %v, p95 %v, p99 %v; want 50, 95, 99 (nearest rank)", r.P50Ms, r.P95Ms, r.P99Ms)
	}
	if r.Errors != 0 || r.Refusals != 0 || r.Statuses != nil {
		t.Errorf("errors %d, refusals %d, statuses %v; want none", r.Errors, r.Refusals, r.Statuses)
	}
	if got := newRecorder().reports(time.Second); len(got) != 0 {
		t.Errorf("an empty recorder reports %+v, want nothing", got)
	}
}

func TestRecorderClassifiesStatuses(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	for _, s := range []int{201, 201, 429, 429, 503, 409, 500, 0} {
		rec.record(opObserve, s, 3*time.Millisecond)
	}
	rec.record(opRegister, 422, time.Millisecond)
	got := rec.reports(time.Second)
	if len(got) != 2 || got[0].Op != opRegister || got[1].Op != opObserve {
		t.Fatalf("reports %+v, want register then observe (report order)", got)
	}
	obs := got[1]
	want := map[string]int64{"429": 2, "503": 1, "409": 1, "500": 1, "transport": 1}
	if obs.Requests != 8 || obs.OK != 2 || obs.Refusals != 3 || obs.Errors != 3 || !maps.Equal(obs.Statuses, want) {
		t.Errorf("observe %+v; want 8 requests: 2 ok, 3 refusals (429, 503), 3 errors, statuses %v", obs, want)
	}
	// Latencies are of 2xx answers only.
	if obs.P50Ms != 3 || got[0].P50Ms != 0 || got[0].Errors != 1 {
		t.Errorf("observe p50 %v, register %+v; want 3 ms, and no latency for a register that only failed", obs.P50Ms, got[0])
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]outcome{
		200: outcomeOK, 201: outcomeOK, 204: outcomeOK,
		429: outcomeRefused, 503: outcomeRefused,
		0: outcomeError, 199: outcomeError, 304: outcomeError, 400: outcomeError, 404: outcomeError,
		409: outcomeError, 412: outcomeError, 422: outcomeError, 500: outcomeError, 502: outcomeError, 504: outcomeError,
	} {
		if got := classifyStatus(status); got != want {
			t.Errorf("classifyStatus(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestClinicalMixProportions(t *testing.T) {
	t.Parallel()
	want := map[benchOp]float64{opObserve: 0.6, opChart: 0.2, opRegister: 0.1, opFHIR: 0.1}
	var sum float64
	for _, s := range clinicalMix {
		sum += s.fraction
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("the mix's fractions sum to %v, want 1", sum)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 200_000
	got := map[benchOp]int{}
	for range n {
		got[clinicalMix.pick(rng.Float64())]++
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("drew %v, want exactly %v", got, want)
	}
	for op, p := range want {
		if share := float64(got[op]) / n; math.Abs(share-p) > 0.005 {
			t.Errorf("%s: %.4f of the draws, want %.2f", op, share, p)
		}
	}
	for u, op := range map[float64]benchOp{0: opObserve, 0.5999: opObserve, 0.6: opChart, 0.7999: opChart, 0.8: opRegister, 0.9: opFHIR, 0.99999: opFHIR} {
		if got := clinicalMix.pick(u); got != op {
			t.Errorf("pick(%v) = %s, want %s", u, got, op)
		}
	}
	if got := only(opPrescribe).pick(0.999); got != opPrescribe {
		t.Errorf("only(prescribe) picked %s", got)
	}
}

func TestThinkTimeIsExponentialWithTheMean(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	const n, mean = 200_000, 5 * time.Second
	var total time.Duration
	over := 0
	for range n {
		d := thinkTime(rng, mean)
		if d < 0 {
			t.Fatalf("negative think time %v", d)
		}
		total += d
		if d > mean {
			over++
		}
	}
	if got := total / n; math.Abs(float64(got-mean)) > 0.01*float64(mean) {
		t.Errorf("mean think time %v, want %v within 1%%", got, mean)
	}
	// An exponential exceeds its mean with probability 1/e.
	if p := float64(over) / n; math.Abs(p-math.Exp(-1)) > 0.005 {
		t.Errorf("%.4f of think times exceed the mean, want %.4f (exponential)", p, math.Exp(-1))
	}
}

func TestParseHistories(t *testing.T) {
	t.Parallel()
	got, err := parseHistories(" 100000,10, 1000,10000 ")
	if err != nil || !slices.Equal(got, []int{10, 1000, 10000, 100000}) {
		t.Errorf("parseHistories = %v, %v; want the sizes sorted", got, err)
	}
	if got, err := parseHistories(""); err != nil || got != nil {
		t.Errorf("empty: %v, %v; want no sizes (the phase skipped)", got, err)
	}
	for _, bad := range []string{"10,abc", "0", "1", "-10", "10,,100", "2000000", "10,10", "1e3"} {
		if _, err := parseHistories(bad); err == nil {
			t.Errorf("parseHistories(%q) accepted it", bad)
		}
	}
}

// Each user's client holds one connection, kept alive: n users, n
// connections, however many requests.
func TestUserClientsHoldOneConnectionEach(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	var conns connCounter
	const users = 5
	var clients []*http.Client
	for range users {
		clients = append(clients, userClient(&conns))
	}
	for range 3 {
		for _, c := range clients {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			if status, _, _, err := send(c, req, false); err != nil || status != http.StatusOK {
				t.Fatalf("GET: %d, %v", status, err)
			}
		}
	}
	if d, p := conns.dialed.Load(), conns.peak.Load(); d != users || p != users {
		t.Errorf("%d connections dialed, %d open at most; want %d and %d", d, p, users, users)
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	if open := conns.open.Load(); open != 0 {
		t.Errorf("%d connections still counted open after closing", open)
	}
}

func TestBenchCommandsRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--concurrency", "-4"}, "--concurrency"},
		{[]string{"--duration", "20"}, `invalid argument "20" for "--duration"`},
		{[]string{"--duration", "0s"}, "--duration must be positive"},
		{[]string{"--histories", "10,1k"}, `"1k" is not a history size`},
		{[]string{"--histories", "10,10"}, "given twice"},
		{[]string{"--users", "-1"}, "--users must not be negative"},
		{[]string{"--users", "10", "--think", "0s"}, "--think must be positive"},
		{[]string{"--think", "1s"}, "--think applies only with --users"},
		{[]string{"--users", "10", "--histories", "10"}, "--histories applies only without --users"},
		{[]string{"--api", "remote"}, "--api must be"},
		{[]string{"now"}, "unknown command"},
	} {
		out, err := execute(testkit.Context(t), append([]string{"bench", "commands"}, tc.args...)...)
		if code := exitCode(err); code != 2 || !strings.Contains(oneLine(err), tc.want) || strings.Contains(oneLine(err), "\n") {
			t.Errorf("%v: exit %d, error %v; want exit 2 and one line containing %q", tc.args, code, err, tc.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q, want nothing", tc.args, out)
		}
	}
}

// A short run through the real stack: every operation answered 2xx, and
// the report's JSON is whole.
func TestBenchCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack for several seconds")
	}
	t.Parallel()
	natsURL := testkit.MustNATSServer(t).URL()
	out, err := execute(testkit.Context(t), "bench", "commands", "--duration", "2s", "--concurrency", "2", "--patients", "10",
		"--histories", "10,100", "--history-posts", "5", "--nats-url", natsURL, "--json")
	if err != nil {
		t.Fatalf("bench commands: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r commandsReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	if !strings.Contains(out, "commit -> visible") || !strings.Contains(out, "median 100 : 10") {
		t.Errorf("the table lacks commit -> visible or the history ratio:\n%s", out)
	}
	var phases []string
	for _, p := range r.Phases {
		phases = append(phases, p.Phase)
		ops := map[benchOp]bool{}
		for _, op := range p.Ops {
			ops[op.Op] = true
			if op.OK == 0 || op.Errors != 0 || op.P50Ms <= 0 || op.P50Ms > op.P99Ms {
				t.Errorf("%s %s: %+v; want some 2xx, no errors, 0 < p50 <= p99", p.Phase, op.Op, op)
			}
		}
		if p.Phase == "mixed" {
			if want := []benchOp{opRegister, opObserve, opChart, opFHIR}; !slices.Equal(slices.Sorted(maps.Keys(ops)), slices.Sorted(slices.Values(want))) {
				t.Errorf("mixed phase sent %v, want %v", slices.Collect(maps.Keys(ops)), want)
			}
			if v := p.Visibility; v == nil || v.Samples == 0 || v.NotSeen != 0 || v.P50Ms <= 0 || p.Lag == nil {
				t.Errorf("mixed phase: commit -> visible %+v, lag %+v; want samples, all seen, and a lag report", v, p.Lag)
			}
		} else if len(p.Ops) != 1 || p.Ops[0].Op != benchOp(p.Phase) || p.Visibility != nil {
			t.Errorf("phase %s: %+v; want only its own operation and no probes", p.Phase, p)
		}
	}
	if want := []string{"register", "observe", "prescribe", "read_chart", "fhir_search", "mixed"}; !slices.Equal(phases, want) || r.Mode != "phases" || r.API != apiInProcess {
		t.Errorf("phases %v, mode %s, api %s; want %v, phases, in-process", phases, r.Mode, r.API, want)
	}
	if h := r.History; h == nil || len(h.Sizes) != 2 || h.Sizes[0].Events != 10 || h.Sizes[1].Events != 100 || h.Sizes[1].MedianMs <= 0 || h.Ratio <= 0 {
		t.Errorf("history %+v, want medians for 10 and 100 events and their ratio", h)
	}
}

// A client's picks follow the mix in every short run, not only on average:
// any 20 consecutive requests hold each operation of the clinical mix.
func TestMixSequenceCoversShortRuns(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		next := mixSequence(rand.New(rand.NewPCG(seed, 7)))
		var window []benchOp
		for i := range 500 {
			window = append(window, clinicalMix.pick(next()))
			if len(window) > 20 {
				window = window[1:]
			}
			if len(window) < 20 {
				continue
			}
			for _, s := range clinicalMix {
				if !slices.Contains(window, s.op) {
					t.Fatalf("seed %d: requests %d-%d hold no %s: %v", seed, i-19, i, s.op, window)
				}
			}
		}
	}
}
