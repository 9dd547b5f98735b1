package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
	// Duration is how long the load runs and the faults are spread over.
	// Required; at least minChaosDuration.
	Duration time.Duration
	// Clients is the number of concurrent HTTP clients. Default 16.
	Clients int
	// Settle is how long the check waits after the load without the
	// pipeline making progress before it reports. Default 60s.
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
// outage (5 s) must end before the load does (see faultSchedule).
const minChaosDuration = 30 * time.Second

func (c *chaosConfig) flags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.Duration, "duration", 5*time.Minute, "how long the load runs; faults are spread over it (at least 30s)")
	fs.IntVar(&c.Clients, "clients", 16, "concurrent HTTP clients")
	fs.DurationVar(&c.Settle, "settle", 60*time.Second, "after the load, give up waiting for the pipeline after this long without progress")
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
	if c.Duration < minChaosDuration {
		errs = append(errs, fmt.Errorf("--duration must be at least %s", minChaosDuration))
	}
	if c.Clients < 1 {
		errs = append(errs, errors.New("--clients must be at least 1"))
	}
	if c.Settle <= 0 {
		errs = append(errs, errors.New("--settle must be positive"))
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
		Use:   "chaos --duration D [--json] [--clients N] [--settle D]",
		Short: "Fault-injection run on the local stack: load, kills and restarts, then prove nothing was lost",
		Long: `chaos starts its own nats-server, two "chartstream serve" and two "chartstream
work" processes against the local stack named by CS_LOCAL_DIR, creates a fresh
enterprise tenant and drives a clinical load (patients, observations,
medication orders) through both APIs with idempotent retries. Meanwhile it
SIGKILLs the worker holding the relay lease (twice), SIGKILLs an API process,
restarts nats-server, fast-restarts PostgreSQL and stops Redis for 5 s, each
restarted. After the load it waits for the pipeline to catch up and checks
every acknowledged command against the event store, the JetStream stream and
the read models, then runs "relay verify" and "projections verify".

Children's logs go to a run directory under $CS_LOCAL_DIR/chaos-runs.

Exit status: 0 when nothing was lost, duplicated or reordered and both
verifies pass, 1 otherwise, 2 when the run could not start (bad flags,
missing settings).`,
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
