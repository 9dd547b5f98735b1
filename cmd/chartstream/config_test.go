package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chartstream/chartstream/internal/testkit"
)

// execute runs the CLI with args, as main does, and returns what it printed.
func execute(ctx context.Context, args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// Configuration errors: one line naming the setting, before anything is
// connected. These tests set the environment, so they cannot be parallel.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"missing DATABASE_URL", []string{"serve"}, map[string]string{"DATABASE_URL": ""}, []string{"DATABASE_URL is required"}},
		{"malformed DATABASE_URL", []string{"serve"}, map[string]string{"DATABASE_URL": "postgres://app:hunter2@db:notaport/x"}, []string{"DATABASE_URL is malformed"}},
		{"bad SHUTDOWN_TIMEOUT", []string{"serve"}, map[string]string{"SHUTDOWN_TIMEOUT": "abc"}, []string{"invalid SHUTDOWN_TIMEOUT"}},
		{"negative SHUTDOWN_TIMEOUT", []string{"all"}, map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT must not be negative"}},
		{"zero APPEND_CONCURRENCY", []string{"all"}, map[string]string{"APPEND_CONCURRENCY": "0"}, []string{"APPEND_CONCURRENCY must be at least 1"}},
		{"missing REDIS_URL", []string{"serve"}, map[string]string{"REDIS_URL": ""}, []string{"REDIS_URL is required"}},
		{"malformed REDIS_URL", []string{"serve"}, map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/notanumber"}, []string{"REDIS_URL is malformed"}},
		{"REDIS_URL not a redis URL", []string{"all"}, map[string]string{"REDIS_URL": "http://cache"}, []string{"REDIS_URL is malformed"}},
		// The pool's size is said once: a setting and the URL that
		// disagree are an error, not one silently winning.
		{"pool size disagrees with the URL", []string{"serve"}, map[string]string{"DATABASE_URL": "postgres://app@127.0.0.1:1/x?pool_max_conns=8", "DATABASE_MAX_CONNS": "16"},
			[]string{"DATABASE_MAX_CONNS=16 disagrees with pool_max_conns=8 in DATABASE_URL"}},
		{"negative REQUEST_TIMEOUT", []string{"serve"}, map[string]string{"REQUEST_TIMEOUT": "-1s"}, []string{"REQUEST_TIMEOUT must not be negative"}},
		{"CONSISTENCY_WAIT past REQUEST_TIMEOUT", []string{"serve"}, map[string]string{"CONSISTENCY_WAIT": "10s", "REQUEST_TIMEOUT": "5s"},
			[]string{"CONSISTENCY_WAIT must not be negative, and shorter than REQUEST_TIMEOUT"}},
		{"bad HTTP_ADDR", []string{"serve"}, map[string]string{"HTTP_ADDR": "localhost"}, []string{"HTTP_ADDR must be host:port"}},
		{"bad LOG_LEVEL", []string{"serve"}, map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL must be debug, info, warn or error"}},
		{"bad LOG_LEVEL for work", []string{"work"}, map[string]string{"LOG_LEVEL": "loud", "REDIS_URL": ""}, []string{"LOG_LEVEL"}},
		{"bad DEID_DATES", []string{"serve"}, map[string]string{"DEID_DATES": "month"}, []string{"DEID_DATES must be year or shift"}},
		{"bad DEID_MAX_SHIFT_DAYS", []string{"work"}, map[string]string{"DEID_DATES": "shift", "DEID_MAX_SHIFT_DAYS": "0", "REDIS_URL": ""}, []string{"DEID_MAX_SHIFT_DAYS"}},
		{"missing DATABASE_ADMIN_URL for tenant", []string{"tenant", "list"}, map[string]string{"DATABASE_ADMIN_URL": ""}, []string{"DATABASE_ADMIN_URL is required"}},
		{"missing DATABASE_ADMIN_URL for migrate", []string{"migrate"}, map[string]string{"DATABASE_ADMIN_URL": ""}, []string{"DATABASE_ADMIN_URL is required"}},
		// A flag overrides its variable: the malformed SHUTDOWN_TIMEOUT is
		// never read, and the remaining problem is reported.
		{"flag overrides env", []string{"serve", "--shutdown-timeout", "5s"}, map[string]string{"SHUTDOWN_TIMEOUT": "abc", "LOG_LEVEL": "loud"}, []string{"LOG_LEVEL"}},
		{"several problems", []string{"serve"}, map[string]string{"DATABASE_URL": "", "REDIS_URL": "", "LOG_LEVEL": "loud"},
			[]string{"DATABASE_URL is required", "REDIS_URL is required", "LOG_LEVEL must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Start from a valid environment (the local stack's) so each
			// case has exactly the problems it sets up; port 0 so that a
			// case that wrongly passes validation cannot collide.
			testkit.Env(t, "DATABASE_URL")
			t.Setenv("HTTP_ADDR", "127.0.0.1:0")
			t.Setenv("LOG_LEVEL", "warn")
			t.Setenv("SHUTDOWN_TIMEOUT", "")
			// The dev key of the environment counts only when allowed.
			t.Setenv("JWT_ALLOW_DEV_KEY", "true")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			// Should validation wrongly pass, the process runs until this
			// deadline and then returns nil, failing the test.
			ctx, cancel := context.WithTimeout(testkit.Context(t), 5*time.Second)
			defer cancel()
			_, err := execute(ctx, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			line := oneLine(err)
			for _, want := range tt.want {
				if !strings.Contains(line, want) {
					t.Errorf("error %q does not contain %q", line, want)
				}
			}
			if len(tt.want) == 1 && strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if strings.Contains(line, "\n") || strings.Contains(line, "hunter2") {
				t.Errorf("rendered error %q is not one secret-free line", line)
			}
		})
	}
}

func TestHelpListsEnvironmentVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"DATABASE_URL", "DATABASE_ADMIN_URL", "NATS_URL", "REDIS_URL", "HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "NATS_STORE_DIR"}},
		{[]string{"serve", "--help"}, []string{"DATABASE_URL", "NATS_URL", "NATS_STORE_DIR", "REDIS_URL", "HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"}},
		{[]string{"work", "--help"}, []string{"DATABASE_URL", "NATS_URL", "NATS_STORE_DIR"}},
		{[]string{"tenant", "create", "--help"}, []string{"DATABASE_ADMIN_URL"}},
		{[]string{"migrate", "--help"}, []string{"DATABASE_ADMIN_URL"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out, err := execute(testkit.Context(t), tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range tt.want {
				if !strings.Contains(out, name) {
					t.Errorf("help does not mention %s:\n%s", name, out)
				}
			}
		})
	}
}
