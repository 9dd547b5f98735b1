package main

import (
	"strings"
	"testing"

	"github.com/chartstream/chartstream/internal/testkit"
)

func TestBenchSeedRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"seed"}, "--seed-events is required"},
		{[]string{"seed", "--seed-events", "-1"}, "--seed-events must be 0 to 100,000,000"},
		{[]string{"seed", "--seed-events", "10", "--seed-tenants", "0"}, "--seed-tenants must be 1 to 1,000"},
		{[]string{"seed", "--seed-events", "1e6"}, `invalid argument "1e6" for "--seed-events"`},
		{[]string{"projections", "--seed-events", "10", "--seed-tenants", "5000"}, "--seed-tenants must be 1 to 1,000"},
	} {
		out, err := execute(testkit.Context(t), append([]string{"bench"}, tc.args...)...)
		if code := exitCode(err); code != 2 || !strings.Contains(oneLine(err), tc.want) {
			t.Errorf("%v: exit %d, error %v; want exit 2 and %q", tc.args, code, err, tc.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q, want nothing", tc.args, out)
		}
	}
}
