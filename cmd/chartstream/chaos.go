package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream/workers"
)

// Stack defaults, as deploy/local/stack.sh has them: chaos restarts the
// stack's PostgreSQL and Redis through the script, so it checks that the
// URLs it was given point at the same ports the script will restart.
const (
	stackDefaultPGPort    = "15432"
	stackDefaultRedisPort = "16379"
	stackScriptPath       = "deploy/local/stack.sh"
)

// chaosConfig is the configuration of a chaos run. Each setting comes from
// a flag or, for the stack's URLs and files, its environment variable.
type chaosConfig struct {
	// Scenario is what the run does: its processes, load and faults.
	// Default mixed.
	Scenario chaosScenario
	// Duration is how long the load runs and the faults are spread over.
	// Required; at least minChaosDuration.
	Duration time.Duration
	// Clients is the number of concurrent HTTP clients. Default 16.
	Clients int
	// Settle is how long the check waits after the load without the
	// pipeline making progress before it reports; in all-sigkill, also
	// how long after the load at the most, as the issue compared 45 s
	// after it. Zero means the scenario's default: 60s, 45s for
	// all-sigkill.
	Settle time.Duration
	// JSON prints the report as one JSON object instead of a table.
	JSON bool
	// NoFaults runs the load and the checks without injecting anything: a
	// baseline that must pass, or the checks themselves are wrong.
	NoFaults bool
	// Binary is the chartstream binary run as serve and work. Default this
	// executable.
	Binary string
	// NATSServer is the nats-server binary. Default bin/nats-server in the
	// stack's state directory.
	NATSServer string
	// StackScript is deploy/local/stack.sh, called to restart PostgreSQL
	// and Redis. Default the script of the checkout chaos runs in.
	StackScript string
	// LocalDir is the stack's state directory (CS_LOCAL_DIR). Required:
	// chaos restarts that stack's services, so it must be named.
	LocalDir string
	// PGPort and RedisPort are the stack's ports (CS_PG_PORT,
	// CS_REDIS_PORT), defaults as in stack.sh.
	PGPort, RedisPort string
	// RelayStream is the JetStream stream (RELAY_STREAM). Default CLINICAL.
	RelayStream string
	// The stack's settings (DATABASE_URL, DATABASE_ADMIN_URL,
	// DATABASE_RELAY_URL, REDIS_URL, PHI_KEY_FILE, JWT_DEV_KEY_FILE), all
	// required.
	DatabaseURL, DatabaseAdminURL, DatabaseRelayURL, RedisURL, PHIKeyFile, JWTDevKeyFile string
}

// minChaosDuration keeps the faults of the schedule apart: the Redis
// outage (5 s) must end before the load does (see faultSchedule), and in
// all-sigkill the second kill comes 15 s before the end (sigkillSchedule).
const minChaosDuration = 30 * time.Second

// defaultSettle is the mixed scenario's --settle.
const defaultSettle = 60 * time.Second

// chaosScenario names what a run does: its processes, load and faults. It
// is a flag value that refuses names it does not know.
type chaosScenario string

// The scenarios.
const (
	// scenarioMixed runs nats-server, two serve and two work processes,
	// the mixed clinical load and six kinds of fault (faultSchedule).
	scenarioMixed chaosScenario = "mixed"
	// scenarioAllSIGKILL is the scenario: one `chartstream all`
	// with embedded NATS, paced observations on 100 patients, SIGKILLed
	// twice 6 s apart (chaos_sigkill.go).
	scenarioAllSIGKILL chaosScenario = "all-sigkill"
)

// chaosScenarios are the scenarios --scenario accepts.
var chaosScenarios = []chaosScenario{scenarioMixed, scenarioAllSIGKILL}

func errUnknownScenario(name string) error {
	return fmt.Errorf("unknown scenario %q (want mixed or all-sigkill)", name)
}

func (s *chaosScenario) String() string { return string(*s) }

// Type names the flag's value in the help.
func (s *chaosScenario) Type() string { return "scenario" }

// Set accepts a known scenario's name only.
func (s *chaosScenario) Set(v string) error {
	if !slices.Contains(chaosScenarios, chaosScenario(v)) {
		return errUnknownScenario(v)
	}
	*s = chaosScenario(v)
	return nil
}

func (c *chaosConfig) flags(fs *pflag.FlagSet) {
	c.Scenario = scenarioMixed
	fs.Var(&c.Scenario, "scenario", "what to run: mixed or all-sigkill (see above)")
	fs.DurationVar(&c.Duration, "duration", 5*time.Minute, "how long the load runs; faults are spread over it (at least 30s)")
	fs.IntVar(&c.Clients, "clients", 16, "concurrent HTTP clients")
	fs.DurationVar(&c.Settle, "settle", 0, "after the load, give up waiting for the pipeline after this long without progress,\nand in all-sigkill this long after the load at the most (default 60s, all-sigkill 45s)")
	fs.BoolVar(&c.JSON, "json", false, "print the report as one JSON object")
	fs.BoolVar(&c.NoFaults, "no-faults", false, "baseline: the same load and checks, no faults injected")
	fs.StringVar(&c.Binary, "binary", "", "chartstream binary to run as serve and work (default this executable)")
	fs.StringVar(&c.NATSServer, "nats-server", "", "nats-server binary (default $CS_LOCAL_DIR/bin/nats-server)")
	fs.StringVar(&c.StackScript, "stack-script", "", "the local stack script (default "+stackScriptPath+" of this checkout)")
	stringFlag(fs, &c.RelayStream, "relay-stream", "RELAY_STREAM", workers.DefaultStream, "JetStream stream the relay publishes to")
	stringFlag(fs, &c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role (read models)")
	stringFlag(fs, &c.DatabaseAdminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the chaos tenant)")
	stringFlag(fs, &c.DatabaseRelayURL, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role (reads the event store)")
	stringFlag(fs, &c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL of the stack")
	stringFlag(fs, &c.PHIKeyFile, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key file (local key provider)")
	stringFlag(fs, &c.JWTDevKeyFile, "jwt-dev-key-file", "JWT_DEV_KEY_FILE", "", "dev JWT signing key, to mint the clients' tokens")
}

// setDefaults fills what the flags left empty from the process and the
// stack's CS_* environment.
func (c *chaosConfig) setDefaults() {
	if c.Scenario == "" {
		c.Scenario = scenarioMixed
	}
	if c.Settle == 0 {
		c.Settle = defaultSettle
		if c.Scenario == scenarioAllSIGKILL {
			c.Settle = sigkillSettle
		}
	}
	c.LocalDir = os.Getenv("CS_LOCAL_DIR")
	c.PGPort, c.RedisPort = envOr("CS_PG_PORT", stackDefaultPGPort), envOr("CS_REDIS_PORT", stackDefaultRedisPort)
	if c.Binary == "" {
		c.Binary, _ = os.Executable()
	}
	if c.NATSServer == "" && c.LocalDir != "" {
		c.NATSServer = filepath.Join(c.LocalDir, "bin", "nats-server")
	}
	if c.StackScript == "" {
		c.StackScript = findRepoFile(stackScriptPath)
	}
}

// Validate reports every problem with the configuration, joined.
func (c chaosConfig) Validate() error {
	var errs []error
	if !slices.Contains(chaosScenarios, c.Scenario) {
		errs = append(errs, errUnknownScenario(string(c.Scenario)))
	}
	if c.Duration < minChaosDuration {
		errs = append(errs, fmt.Errorf("--duration must be at least %s", minChaosDuration))
	}
	if c.Clients < 1 {
		errs = append(errs, errors.New("--clients must be at least 1"))
	}
	if c.Settle < 0 {
		errs = append(errs, errors.New("--settle must not be negative"))
	}
	for _, s := range [][2]string{
		{"DATABASE_URL", c.DatabaseURL}, {"DATABASE_ADMIN_URL", c.DatabaseAdminURL}, {"DATABASE_RELAY_URL", c.DatabaseRelayURL},
		{"REDIS_URL", c.RedisURL}, {"PHI_KEY_FILE", c.PHIKeyFile}, {"JWT_DEV_KEY_FILE", c.JWTDevKeyFile},
	} {
		if s[1] == "" {
			errs = append(errs, fmt.Errorf("%s is required (source the stack's env file)", s[0]))
		}
	}
	// chaos restarts the stack's PostgreSQL and Redis: it must be told
	// which stack, and the URLs must point at that stack.
	if c.LocalDir == "" {
		errs = append(errs, errors.New("CS_LOCAL_DIR is required: chaos restarts that stack's PostgreSQL and Redis (make chaos sets it)"))
	}
	if port, err := urlPort(c.DatabaseURL); c.DatabaseURL != "" && (err != nil || port != c.PGPort) {
		errs = append(errs, fmt.Errorf("DATABASE_URL must point at the stack's PostgreSQL on port %s (CS_PG_PORT)", c.PGPort))
	}
	if opts, err := redis.ParseURL(c.RedisURL); c.RedisURL != "" && (err != nil || portOf(opts.Addr) != c.RedisPort) {
		errs = append(errs, fmt.Errorf("REDIS_URL must point at the stack's Redis on port %s (CS_REDIS_PORT)", c.RedisPort))
	}
	for _, f := range [][2]string{{"--binary", c.Binary}, {"--nats-server", c.NATSServer}, {"--stack-script", c.StackScript}} {
		if st, err := os.Stat(f[1]); f[1] == "" || err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("%s: no executable at %q", f[0], f[1]))
		}
	}
	return errors.Join(errs...)
}

func newChaosCmd() *cobra.Command {
	var cfg chaosConfig
	cmd := &cobra.Command{
		Use:   "chaos [--scenario mixed|all-sigkill] --duration D [--json] [--clients N] [--settle D]",
		Short: "Fault-injection run on the local stack: load, kills and restarts, then prove nothing was lost",
		Long: `chaos runs chartstream processes against the local stack named by
CS_LOCAL_DIR, creates a fresh enterprise tenant, drives a clinical load through
the API with idempotent retries and injects faults. After the load it waits
for the pipeline to catch up and checks every acknowledged command against the
event store, the JetStream stream and the read models, then runs "relay verify"
and "projections verify".

--scenario mixed (the default) starts its own nats-server, two "chartstream
serve" and two "chartstream work" processes and sends patients, observations
and medication orders through both APIs. Meanwhile it SIGKILLs the worker
holding the relay lease (twice), SIGKILLs an API process, restarts
nats-server, fast-restarts PostgreSQL and stops Redis for 5 s, each restarted.

--scenario all-sigkill is the reported SIGKILL scenario: one "chartstream all"
(API and workers in one process) with embedded NATS, as the issue ran it (no
NATS_URL; its JetStream store in the run directory, so it survives the
restarts). After registering 100 patients, the clients record observations
only, on those patients, paced together to 450 a second (a token bucket; the
report gives the rate achieved). A command whose outcome is unknown is retried
with its key beside the client's next commands: the in-flight claim of an
attempt whose process died holds its retries back for up to 60 s, and the
pace must not stall meanwhile. "all" is SIGKILLed at 30 % of the duration
and 6 s later, and started again at once each time; it counts as back when
its /readyz answers. --settle defaults to 45 s and is also the most the check
waits after the load; the report adds the issue's comparison, the tenant's
patient.observation_recorded events in the event store against its rows in
the observations read model, which must be equal. An embedded server listens
on no port, so chaos cannot read the stream while "all" runs: the settle
checks the store and the read models only; then chaos stops "all" and opens
the JetStream store it left with --nats-server (the same nats-server version,
built from go.mod) to check the stream and run "relay verify" against it.
Running "all" with NATS_URL instead would check a topology the issue did not
have.

Children's logs go to a run directory under $CS_LOCAL_DIR/chaos-runs.

Exit status: 0 when nothing was lost, duplicated or reordered and both
verifies pass, 1 otherwise, 2 when the run could not start (bad flags,
an unknown scenario, missing settings).`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.setDefaults()
			if err := cfg.Validate(); err != nil {
				return exitError{2, err}
			}
			report, err := runChaos(cmd.Context(), cfg, cmd.ErrOrStderr())
			if err != nil && cmd.Context().Err() != nil {
				return exitError{2, errors.New("interrupted (the run's processes are stopped)")}
			}
			if err != nil {
				return exitError{2, err}
			}
			if err := report.write(cmd.OutOrStdout(), cfg.JSON); err != nil {
				return exitError{2, err}
			}
			if !report.Pass {
				return exitError{1, errors.New("chaos: " + report.failureSummary())}
			}
			return nil
		},
	}
	cfg.flags(cmd.Flags())
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{2, err} })
	return cmd
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// urlPort returns the port of a URL, "5432" when a postgres URL names none.
func urlPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if p := u.Port(); p != "" {
		return p, nil
	}
	return "5432", nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// findRepoFile looks for rel in the working directory and its parents,
// then in the executable's directory and its parents; "" when absent.
func findRepoFile(rel string) string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// keptChaosRuns is how many earlier runs' directories a run keeps: a
// five-minute run writes a few hundred MB of logs and JetStream store.
const keptChaosRuns = 4

// chaosRunDir is a fresh directory for one run's logs and JetStream store,
// under localDir/chaos-runs; the oldest earlier runs' directories go.
func chaosRunDir(localDir string, now time.Time) (string, error) {
	parent := filepath.Join(localDir, "chaos-runs")
	if entries, err := os.ReadDir(parent); err == nil && len(entries) > keptChaosRuns {
		// Names start with the UTC time, so they sort oldest first.
		for _, e := range entries[:len(entries)-keptChaosRuns] {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
	dir := filepath.Join(parent, now.UTC().Format("20060102T150405Z")+"-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("run directory: %w", err)
	}
	return filepath.Abs(dir)
}
