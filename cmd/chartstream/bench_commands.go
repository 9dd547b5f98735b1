package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// API placements (--api).
const (
	apiAuto      = "auto"
	apiInProcess = "in-process"
	apiChild     = "child"
)

// commandsOptions are bench commands' own flags.
type commandsOptions struct {
	adminURL    string
	duration    time.Duration
	concurrency int
	patients    int
	sample      int
	histories   string
	posts       int
	users       int
	think       time.Duration
	api         string
	asJSON      bool
}

// validate refuses bad input; thinkSet and historiesSet say whether
// those flags were given.
func (o commandsOptions) validate(thinkSet, historiesSet bool) ([]int, error) {
	var errs []error
	if o.duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if o.concurrency < 1 || o.patients < 1 || o.sample < 1 || o.posts < 1 {
		errs = append(errs, errors.New("--concurrency, --patients, --sample and --history-posts must be at least 1"))
	}
	if o.users < 0 {
		errs = append(errs, errors.New("--users must not be negative"))
	}
	if o.users > 0 && o.think <= 0 {
		errs = append(errs, errors.New("--think must be positive"))
	}
	if o.users == 0 && thinkSet {
		errs = append(errs, errors.New("--think applies only with --users"))
	}
	if o.users > 0 && historiesSet {
		errs = append(errs, errors.New("--histories applies only without --users"))
	}
	if o.api != apiAuto && o.api != apiInProcess && o.api != apiChild {
		errs = append(errs, fmt.Errorf("--api must be %s, %s or %s", apiAuto, apiInProcess, apiChild))
	}
	sizes, err := parseHistories(o.histories)
	if err != nil {
		errs = append(errs, err)
	}
	return sizes, errors.Join(errs...)
}

// childAPI says whether the API runs in a child process.
func (o commandsOptions) childAPI() bool {
	return o.api == apiChild || (o.api == apiAuto && o.users > childAPIUsers)
}

func newBenchCommandsCmd() *cobra.Command {
	var cfg Config
	var o commandsOptions
	cmd := &cobra.Command{
		Use:   "commands [--duration D] [--concurrency N] [--histories L] [--json] | commands --users N --think D [--duration D] [--json]",
		Short: "The clinical API end to end: requests/s and latency per command and read, commit -> visible, loading cost vs history",
		Long: `Runs a fresh enterprise-tier bench tenant against the real process wiring (the
API, and a relay and projector of the bench's own: own names, stream and
subjects, starting at the event store's head, projecting only the bench
tenant), configured like ` + "`chartstream all`" + ` from the environment and flags.
It registers --patients patients first.

Without --users, each phase runs --duration with --concurrency keep-alive
clients sending requests back to back: register, observe, prescribe, read
chart, FHIR Observation search, then the mixed phase (60% observe, 20% read
chart, 10% register, 10% FHIR search). Each operation reports 2xx/s,
p50/p95/p99 of its 2xx answers, errors (each non-2xx status counted) and
refusals (429, 503) apart. In the mixed phase one observation in --sample is
probed: the observation list is read (no consistency token) until it shows
it (commit -> visible), and the tenant's projection lag is sampled every
second. Then, for each of --histories, a patient whose stream holds that
many events (appended straight to the event store) gets --history-posts
POST observations: the medians, and the longest's over the shortest's.

With --users N, N users of the tenant, each on its own keep-alive connection
with its own token, send the mixed phase's mix with an exponential think
time of mean --think before each request, for --duration: the same figures,
the total rate achieved, and the connections used. Above 4,000 users
(or with --api child) the API runs in a child process (` + "`chartstream serve`" + `
from this binary): in one process every user costs two file descriptors,
and the hard limit here is 20,000. The workers stay in this process, and
--cpu-profile then covers only this process (the clients and the workers),
not the API. With --json the last line is one JSON object.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			sizes, err := o.validate(f.Changed("think"), f.Changed("histories"))
			if err != nil {
				return exitError{2, err}
			}
			if err := required([2]string{"DATABASE_ADMIN_URL", o.adminURL}); err != nil {
				return err
			}
			r, err := benchCommands(cmd.Context(), cmd.ErrOrStderr(), cfg, o, sizes, flagEnv(f))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printCommandsReport(out, r)
			if o.asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	f := cmd.Flags()
	cfg.flags(f)
	// The bench chooses the API's address and the embedded NATS store.
	_ = f.MarkHidden("http-addr")
	_ = f.MarkHidden("nats-store-dir")
	stringFlag(f, &o.adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the bench tenant)")
	f.DurationVar(&o.duration, "duration", 20*time.Second, "length of each phase (with --users, of the run)")
	f.IntVar(&o.concurrency, "concurrency", 16, "keep-alive clients of each phase, each sending back to back")
	f.IntVar(&o.patients, "patients", 100, "patients registered first, whom observations, orders and reads go to")
	f.IntVar(&o.sample, "sample", 20, "probe commit -> visible for one observation in this many")
	f.StringVar(&o.histories, "histories", defaultHistories, "stream lengths (events) for loading cost vs history; empty skips it")
	f.IntVar(&o.posts, "history-posts", 200, "sequential POST observations per history")
	f.IntVar(&o.users, "users", 0, "simulated users, each on its own connection (0: the phases)")
	f.DurationVar(&o.think, "think", 5*time.Second, "mean think time of a user between requests (exponential)")
	f.StringVar(&o.api, "api", apiAuto, "where the API runs: auto (a child process above 4,000 users), in-process or child")
	f.BoolVar(&o.asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

// flagEnv returns the environment variables of the flags given on the
// command line, with their values: a child process gets them so.
func flagEnv(fs *pflag.FlagSet) map[string]string {
	env := map[string]string{}
	fs.Visit(func(f *pflag.Flag) {
		if names := f.Annotations[envAnnotation]; len(names) > 0 {
			env[names[0]] = f.Value.String()
		}
	})
	return env
}

// benchCommands runs the stack and the load and returns the report.
func benchCommands(ctx context.Context, log io.Writer, cfg Config, o commandsOptions, sizes []int, env map[string]string) (commandsReport, error) {
	log = &lockedWriter{w: log}
	r := commandsReport{Mode: "phases", API: apiInProcess, DurationS: o.duration.Seconds(), Concurrency: o.concurrency}
	if o.childAPI() {
		r.API = apiChild
	}
	if o.users > 0 {
		r.Mode, r.Users, r.ThinkS, r.Concurrency = "users", o.users, o.think.Seconds(), 0
		need := uint64(o.users) + 1024
		if !o.childAPI() {
			need += uint64(o.users)
		}
		if err := ensureFileLimit(need); err != nil {
			return r, err
		}
	}
	s, err := openCommandsStack(ctx, log, cfg, stackOptions{adminURL: o.adminURL, childAPI: o.childAPI(), env: env})
	if err != nil {
		return r, err
	}
	defer s.Close()
	r.Tenant = s.tenant.ID

	tokens, err := mintTokens(s, "bench-client", o.concurrency)
	if err != nil {
		return r, err
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxConnsPerHost: o.concurrency, MaxIdleConnsPerHost: o.concurrency, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	t := &benchTarget{base: s.base, rec: newRecorder(), sampleEvery: int64(o.sample)}
	if t.patients, err = registerBenchPatients(ctx, t, hc, tokens, o.patients); err != nil {
		return r, err
	}
	probeToken, err := s.token("bench-prober")
	if err != nil {
		return r, err
	}
	probeClient := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: probesInFlight}}
	defer probeClient.CloseIdleConnections()

	// run runs one phase after the pipeline has caught up with the last.
	run := func(name string, measure bool, load func() time.Duration) (phaseReport, error) {
		if err := s.waitProjected(ctx, "projecting before "+name, 5*time.Minute); err != nil {
			return phaseReport{}, err
		}
		t.rec, t.probe = newRecorder(), nil
		var stopLag func() lagReport
		if measure {
			t.probe = newProber(ctx, probeClient, s.base, probeToken)
			stopLag = sampleLag(ctx, s.pool, s.tenant.ID)
		}
		elapsed := load()
		p := phaseReport{Phase: name, Seconds: elapsed.Seconds(), Ops: t.rec.reports(elapsed)}
		if measure {
			lag := stopLag()
			vis := t.probe.report()
			p.Lag, p.Visibility = &lag, &vis
		}
		return p, ctx.Err()
	}

	if o.users > 0 {
		userTokens, err := mintTokens(s, "bench-user", o.users)
		if err != nil {
			return r, err
		}
		var conns connCounter
		p, err := run("users", true, func() time.Duration { return runUsers(ctx, t, userTokens, o.think, o.duration, &conns) })
		if err != nil {
			return r, err
		}
		r.Phases = []phaseReport{p}
		r.Connections = &connReport{Users: o.users, Dialed: conns.dialed.Load(), PeakOpen: conns.peak.Load()}
		for _, op := range p.Ops {
			r.TotalPerSec += float64(op.Requests) / p.Seconds
			r.TotalOKPerSec += op.OKPerSec
		}
		return r, nil
	}
	phases := []struct {
		name string
		mix  benchMix
	}{{"register", only(opRegister)}, {"observe", only(opObserve)}, {"prescribe", only(opPrescribe)},
		{"read_chart", only(opChart)}, {"fhir_search", only(opFHIR)}, {"mixed", clinicalMix}}
	for _, ph := range phases {
		p, err := run(ph.name, ph.name == "mixed", func() time.Duration { return runClosedLoop(ctx, t, hc, tokens, ph.mix, o.duration, ph.name) })
		if err != nil {
			return r, err
		}
		r.Phases = append(r.Phases, p)
	}
	if len(sizes) > 0 {
		h, err := benchHistory(ctx, s, sizes, o.posts)
		if err != nil {
			return r, err
		}
		r.History = &h
	}
	return r, nil
}
