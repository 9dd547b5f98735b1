package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/internal/testkit"
)

// projections verify: bad input is one line and exit 2; a tenant whose
// read models are exact (here: a tenant with no events) exits 0.
func TestProjectionsVerifyCLI(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	for _, args := range [][]string{
		{"projections", "verify", "--tenant", "not-a-uuid"},
		{"projections", "verify", "--tenant", uuid.NewString()},
		{"projections", "verify", "--no-such-flag"},
		{"projections", "verify", "extra-argument"},
		{"projections", "rebuild", "chart", "--tenant", uuid.NewString()},
	} {
		out, err := execute(ctx, args...)
		var ex exitError
		if !errors.As(err, &ex) || ex.code != 2 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v (output %q), want one line and exit 2", args, err, out)
		}
	}
	tenant := testkit.MustTenant(t)
	out, err := execute(ctx, "projections", "verify", "--tenant", tenant.String())
	if err != nil || !strings.HasPrefix(out, "OK: tenant "+tenant.String()) {
		t.Errorf("verify of a tenant with exact read models: %q, %v", out, err)
	}
	out, err = execute(ctx, "projections", "verify", "--tenant", tenant.String(), "--json")
	if err != nil || !strings.Contains(out, `"ok":true`) {
		t.Errorf("verify --json: %q, %v", out, err)
	}
}
