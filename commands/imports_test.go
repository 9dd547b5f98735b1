package commands

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection enforces the house rule that commands never depend on
// the event store, the API, the workers or their drivers — transitively.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/chartstream/chartstream/eventstore",
		"github.com/chartstream/chartstream/api",
		"github.com/chartstream/chartstream/workers",
		"github.com/jackc/pgx",
		"github.com/nats-io/",
		"github.com/labstack/echo",
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list found no packages")
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("commands depend on %s", dep)
			}
		}
	}
}
