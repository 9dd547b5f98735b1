package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/internal/testkit"
)

// The command line's ids, slugs and names are taken exactly as given or
// refused with one line and exit 2, before anything is connected or
// written: a repeated flag (the last used to win), invalid UTF-8, a
// control character, an over-long value. The line never repeats the
// value.
func TestCommandLineInputsAreStrict(t *testing.T) {
	t.Parallel()
	testkit.Env(t, "DATABASE_ADMIN_URL")
	testkit.Env(t, "DATABASE_URL")
	first, second := freshSlug(), freshSlug()
	tenant, patient := uuid.NewString(), uuid.NewString()
	long := strings.Repeat("n", 201)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"slug twice", []string{"tenant", "create", "--slug", first, "--slug", second, "--name", "St Mary"}, "--slug is given more than once"},
		{"name not UTF-8", []string{"tenant", "create", "--slug", first, "--name", "St M\xffry"}, "--name is not valid UTF-8"},
		{"name too long", []string{"tenant", "create", "--slug", first, "--name", long}, "--name is longer than 200 bytes"},
		{"actor with a newline", []string{"patient", "erase", "--tenant", tenant, "--patient", patient, "--actor", "dpo-1\nforged line"}, "--actor contains a control character"},
		{"patient twice", []string{"patient", "erase", "--tenant", tenant, "--patient", patient, "--patient", uuid.NewString(), "--actor", "dpo-1"}, "--patient is given more than once"},
		{"tenant id too long", []string{"verify", "--tenant", strings.Repeat("7", 65)}, "--tenant is longer than 64 bytes"},
		{"argument not UTF-8", []string{"tenant", "suspend", "st-m\xc3"}, "argument 1 is not valid UTF-8"},
		{"subject with a tab", []string{"token", "--tenant", tenant, "--sub", "dr\t1", "--role", "nurse"}, "--sub contains a control character"},
		{"json twice", []string{"tenant", "list", "--json", "--json"}, "--json is given more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(testkit.Context(t), tc.args...)
			if err == nil {
				t.Fatalf("accepted; want exit 2 and one line containing %q", tc.want)
			}
			line := oneLine(err)
			if code := exitCode(err); code != 2 || !strings.Contains(line, tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("exit %d, error %q; want exit 2 and one line containing %q", code, line, tc.want)
			}
			if out != "" || strings.Contains(line, "\xff") || strings.Contains(line, long) || strings.Contains(line, "forged") {
				t.Errorf("printed %q, error %q: want nothing printed and the value not repeated", out, line)
			}
		})
	}
	for _, slug := range []string{first, second} {
		if _, err := bySlug(t, slug); err == nil {
			t.Errorf("tenant %s was created", slug)
		}
	}
	// Flags that take a list may repeat.
	if _, err := execute(testkit.Context(t), "token", "--tenant", tenant, "--sub", "dr-1", "--role", "nurse", "--role", "clinician"); exitCode(err) == 2 {
		t.Errorf("repeated --role refused: %v", err)
	}
}

// A setting from the environment gets the same rules: exit 2, one line
// naming the variable, not the value.
func TestEnvironmentSettingsAreStrict(t *testing.T) {
	t.Setenv("JWT_DEV_KEY_FILE", "/tmp/key\x1b[31m.pem")
	_, err := execute(testkit.Context(t), "token", "--tenant", uuid.NewString(), "--sub", "dr-1")
	if err == nil || exitCode(err) != 2 || oneLine(err) != "JWT_DEV_KEY_FILE contains a control character" {
		t.Errorf("exit %d, error %v; want exit 2 naming JWT_DEV_KEY_FILE", exitCode(err), err)
	}
}
