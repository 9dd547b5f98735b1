package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
)

// The schedule injects every fault, the worker kill twice, in order,
// apart, and the Redis outage ends before the load does.
func TestFaultSchedule(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{minChaosDuration, time.Minute, 5 * time.Minute} {
		s := faultSchedule(d)
		kinds := map[faultKind]int{}
		for i, f := range s {
			kinds[f.Kind]++
			if f.At <= 0 || f.At >= d {
				t.Errorf("%s: %s at %s, outside the run", d, f.Kind, f.At)
			}
			if i > 0 && f.At-s[i-1].At < d/20 {
				t.Errorf("%s: %s at %s only %s after %s", d, f.Kind, f.At, f.At-s[i-1].At, s[i-1].Kind)
			}
			if f.Kind == faultStopRedis && f.At+redisOutage+time.Second > d {
				t.Errorf("%s: Redis outage from %s does not end before the load", d, f.At)
			}
		}
		want := map[faultKind]int{faultKillActiveWorker: 2, faultKillServe: 1, faultRestartNATS: 1, faultRestartPostgres: 1, faultStopRedis: 1}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("%s: %s %d times, want %d", d, k, kinds[k], n)
			}
		}
		if len(kinds) != len(want) {
			t.Errorf("%s: kinds %v, want %v", d, kinds, want)
		}
	}
}

// eventTypes are the types of the events that record each kind of fact.
var eventTypes = map[commandKind]string{kindPatient: patient.TypeRegistered, kindObservation: patient.TypeObservationRecorded, kindOrder: medicationorder.TypePrescribed}

// synthetic builds a consistent history: every acknowledged command has
// one event in the store and the stream, in the same order, and one row.
func synthetic(n int) ([]ackedCommand, observed) {
	obs := observed{Rows: map[fact]int{}, StreamRead: true}
	var acked []ackedCommand
	for i := range n {
		kind := commandKinds[i%len(commandKinds)]
		c := ackedCommand{Kind: kind, ID: uuid.New(), Patient: uuid.New(), Key: "chaos-" + uuid.NewString()}
		acked = append(acked, c)
		e := chaosEvent{ID: uuid.New(), Type: eventTypes[kind], Fact: fact{kind, c.ID}, Correlation: c.Key, Cursor: eventstore.Cursor{TxID: int64(100 + i), Position: int64(i + 1)}}
		obs.Store = append(obs.Store, e)
		obs.Stream = append(obs.Stream, e)
		obs.Rows[e.Fact] = 1
	}
	return acked, obs
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		break_  func(acked []ackedCommand, obs *observed)
		lost    lostTally
		dup     duplicateTally
		reorder int
	}{
		{"consistent", func([]ackedCommand, *observed) {}, lostTally{}, duplicateTally{}, 0},
		{"lost from everywhere", func(_ []ackedCommand, o *observed) {
			f := o.Store[2].Fact
			o.Store, o.Stream = slices.Delete(o.Store, 2, 3), slices.Delete(o.Stream, 2, 3)
			delete(o.Rows, f)
		}, lostTally{Commands: 1, Store: 1, Stream: 1, ReadModels: 1}, duplicateTally{}, 0},
		{"lost from the stream", func(_ []ackedCommand, o *observed) {
			o.Stream = slices.Delete(o.Stream, 4, 5)
		}, lostTally{Commands: 1, Stream: 1}, duplicateTally{}, 0},
		{"lost from a read model", func(_ []ackedCommand, o *observed) {
			delete(o.Rows, o.Store[0].Fact)
		}, lostTally{Commands: 1, ReadModels: 1}, duplicateTally{}, 0},
		{"a retry ran twice: two facts from one command", func(a []ackedCommand, o *observed) {
			first := o.Store[1]
			twin := chaosEvent{ID: uuid.New(), Fact: fact{first.Fact.Kind, uuid.New()}, Correlation: first.Correlation, Cursor: eventstore.Cursor{TxID: 999, Position: 999}}
			o.Store, o.Stream = append(o.Store, twin), append(o.Stream, twin)
		}, lostTally{}, duplicateTally{Store: 1}, 0},
		{"one fact in two events", func(a []ackedCommand, o *observed) {
			twin := o.Store[3]
			twin.ID, twin.Correlation, twin.Cursor = uuid.New(), "other", eventstore.Cursor{TxID: 999, Position: 999}
			o.Store = append(o.Store, twin)
		}, lostTally{}, duplicateTally{Store: 1}, 0},
		{"published twice", func(_ []ackedCommand, o *observed) {
			o.Stream = append(o.Stream, o.Stream[5])
		}, lostTally{}, duplicateTally{Stream: 1}, 0},
		{"two read model rows", func(_ []ackedCommand, o *observed) {
			o.Rows[o.Store[6].Fact] = 2
		}, lostTally{}, duplicateTally{ReadModels: 1}, 0},
		{"reordered in the stream", func(_ []ackedCommand, o *observed) {
			o.Stream[3], o.Stream[4] = o.Stream[4], o.Stream[3]
		}, lostTally{}, duplicateTally{}, 1},
		{"published early, ahead of two", func(_ []ackedCommand, o *observed) {
			e := o.Stream[7]
			o.Stream = slices.Insert(slices.Delete(o.Stream, 7, 8), 5, e)
		}, lostTally{}, duplicateTally{}, 2},
		{"stream not read (yet): nothing lost from it", func(_ []ackedCommand, o *observed) {
			o.Stream, o.StreamRead = nil, false
		}, lostTally{}, duplicateTally{}, 0},
		{"stream order judged by the store, not the message", func(_ []ackedCommand, o *observed) {
			// The message claims a late cursor; the store says it is
			// early: published after later events, it is out of order.
			o.Stream[1], o.Stream[2] = o.Stream[2], o.Stream[1]
			o.Stream[2].Cursor = eventstore.Cursor{TxID: 1 << 40}
		}, lostTally{}, duplicateTally{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acked, obs := synthetic(9)
			tt.break_(acked, &obs)
			v := classify(acked, obs)
			if v.Lost != tt.lost {
				t.Errorf("lost %+v, want %+v", v.Lost, tt.lost)
			}
			if v.Duplicated != tt.dup {
				t.Errorf("duplicated %+v, want %+v", v.Duplicated, tt.dup)
			}
			if v.OutOfOrder != tt.reorder {
				t.Errorf("out of order %d, want %d", v.OutOfOrder, tt.reorder)
			}
			problems := v.Lost.Commands + v.Duplicated.Total() + v.OutOfOrder
			if (len(v.Examples) > 0) != (problems > 0) {
				t.Errorf("examples %q for %d problems", v.Examples, problems)
			}
			var sum kindTally
			for _, k := range v.Kinds {
				sum.Acknowledged += k.Acknowledged
				sum.InStore += k.InStore
			}
			if sum.Acknowledged != len(acked) || sum.InStore != len(acked)-v.Lost.Store {
				t.Errorf("tallies %+v for %d acknowledged, %d lost from the store", sum, len(acked), v.Lost.Store)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	ok := verifyResult{Status: verifyOK}
	tests := []struct {
		name   string
		report chaosReport
		pass   bool
	}{
		{"clean", chaosReport{RelayVerify: ok, ProjectionsVerify: ok}, true},
		{"lost", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Lost: lostTally{Commands: 1, ReadModels: 1}}, false},
		{"duplicated", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Duplicated: duplicateTally{Stream: 1}}, false},
		{"out of order", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, OutOfOrder: 1}, false},
		{"verify not available", chaosReport{RelayVerify: verifyResult{Status: verifyNotAvailable}, ProjectionsVerify: ok}, false},
		{"verify discrepancies", chaosReport{RelayVerify: ok, ProjectionsVerify: verifyResult{Status: verifyDiscrepancies}}, false},
		{"fault not injected", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Faults: []faultRecord{{Kind: faultRestartNATS, Error: "boom"}}}, false},
		{"observations agree", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Observations: &observationCount{Store: 9062, ReadModel: 9062}}, true},
		{"observations differ, as in the issue", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Observations: &observationCount{Store: 9062, ReadModel: 9009}}, false},
		{"more rows than events", chaosReport{RelayVerify: ok, ProjectionsVerify: ok, Observations: &observationCount{Store: 10, ReadModel: 11}}, false},
	}
	for _, tt := range tests {
		r := tt.report
		r.judge()
		if r.Pass != tt.pass || (len(r.Failures) == 0) != tt.pass {
			t.Errorf("%s: pass %v, failures %q; want pass %v", tt.name, r.Pass, r.Failures, tt.pass)
		}
	}
}

// The tracker follows the relay's lease, not the projector's.
func TestLeaseTracker(t *testing.T) {
	t.Parallel()
	l := newLeaseTracker()
	ctx := context.Background()
	l.observe(0, []byte(`{"level":"INFO","msg":"worker active","worker":"projector","consumer":"projections"}`))
	if i, err := l.wait(ctx, 0); err == nil {
		t.Fatalf("active %d after a projector line", i)
	}
	l.observe(1, []byte(`{"level":"INFO","msg":"worker active","worker":"relay","relay":"clinical"}`))
	if i, err := l.wait(ctx, 0); err != nil || i != 1 {
		t.Fatalf("active %d, %v; want 1", i, err)
	}
	l.observe(0, []byte(`not json "worker"`))
	l.observe(1, []byte(`{"level":"WARN","msg":"worker lost its lease connection","worker":"relay"}`))
	if i, err := l.wait(ctx, 0); err == nil {
		t.Fatalf("active %d after the lease was lost", i)
	}
	l.observe(0, []byte(`{"msg":"worker active","worker":"relay"}`))
	l.killed(1)
	if i, _ := l.wait(ctx, 0); i != 0 {
		t.Fatalf("active %d; killing another worker must not change it", i)
	}
	l.killed(0)
	if i, err := l.wait(ctx, 0); err == nil {
		t.Fatalf("active %d after it was killed", i)
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		unsure bool
		want   bool
	}{{503, false, true}, {500, false, true}, {429, false, true}, {409, false, false}, {409, true, true}, {422, true, false}, {404, true, false}, {400, false, false}} {
		if got := retryable(tt.status, tt.unsure); got != tt.want {
			t.Errorf("retryable(%d, unsure %v) = %v, want %v", tt.status, tt.unsure, got, tt.want)
		}
	}
}

// A verify subcommand's exit status and output decide its status; the
// fake binary stands for the real one.
func TestVerifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script string
		want   string
	}{
		{`echo '{"ok":true}'`, verifyOK},
		{`echo '{"missing":3}'; exit 1`, verifyDiscrepancies},
		{`echo 'chartstream: cannot connect' >&2; exit 2`, verifyError},
		{`echo 'chartstream: unknown command "relay" for "chartstream"' >&2; exit 1`, verifyNotAvailable},
	}
	for _, tt := range tests {
		bin := filepath.Join(t.TempDir(), "chartstream")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		// A process a parallel test forked while the file was open for
		// writing holds it until it execs: running it fails with "text
		// file busy" (golang/go#22315) until then.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if err := exec.Command(bin).Run(); !errors.Is(err, syscall.ETXTBSY) || time.Now().After(deadline) {
				break
			}
		}
		r := &chaosRun{cfg: chaosConfig{Binary: bin}}
		got := r.verify(context.Background(), "relay", "verify")
		if got.Status != tt.want {
			t.Errorf("%s: status %q, want %q (%+v)", tt.script, got.Status, tt.want, got)
		}
		if tt.want != verifyOK && got.Detail == "" && tt.want != verifyDiscrepancies {
			t.Errorf("%s: no detail", tt.script)
		}
	}
}

// chaos must refuse a stack it was not told about, or URLs that point at
// another stack than the one the script would restart.
func TestChaosConfigValidate(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	good := chaosConfig{
		Scenario: scenarioMixed, Duration: time.Minute, Clients: 4, Settle: time.Second, Binary: exe, NATSServer: exe, StackScript: exe,
		LocalDir: t.TempDir(), PGPort: "25432", RedisPort: "26379",
		DatabaseURL: "postgres://a:b@127.0.0.1:25432/chartstream", DatabaseAdminURL: "x", DatabaseRelayURL: "x",
		RedisURL: "redis://:p@127.0.0.1:26379/0", PHIKeyFile: "x", JWTDevKeyFile: "x",
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name   string
		change func(*chaosConfig)
		want   string
	}{
		{"no stack named", func(c *chaosConfig) { c.LocalDir = "" }, "CS_LOCAL_DIR"},
		{"database of another stack", func(c *chaosConfig) { c.DatabaseURL = "postgres://a:b@127.0.0.1:15432/chartstream" }, "DATABASE_URL"},
		{"Redis of another stack", func(c *chaosConfig) { c.RedisURL = "redis://127.0.0.1:16379/0" }, "REDIS_URL"},
		{"too short", func(c *chaosConfig) { c.Duration = 10 * time.Second }, "--duration"},
		{"missing setting", func(c *chaosConfig) { c.PHIKeyFile = "" }, "PHI_KEY_FILE"},
		{"no nats-server", func(c *chaosConfig) { c.NATSServer = filepath.Join(c.LocalDir, "nope") }, "--nats-server"},
		{"unknown scenario", func(c *chaosConfig) { c.Scenario = "all-sigterm" }, "unknown scenario"},
		{"negative settle", func(c *chaosConfig) { c.Settle = -time.Second }, "--settle"},
	}
	for _, tt := range tests {
		c := good
		tt.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"A=1", "NATS_URL=nats://old", "B=2"}, map[string]string{"NATS_URL": "nats://new", "C": "3"})
	slices.Sort(got)
	want := []string{"A=1", "B=2", "C=3", "NATS_URL=nats://new"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
}

// A run keeps the latest keptChaosRuns earlier runs' directories.
func TestChaosRunDirPrunes(t *testing.T) {
	t.Parallel()
	local := t.TempDir()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var dirs []string
	for i := range keptChaosRuns + 3 {
		dir, err := chaosRunDir(local, start.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	entries, err := os.ReadDir(filepath.Join(local, "chaos-runs"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, filepath.Join(local, "chaos-runs", e.Name()))
	}
	if want := dirs[len(dirs)-keptChaosRuns-1:]; !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
}
