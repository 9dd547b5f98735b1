package logging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chartstream/chartstream/internal/logging"
)

// A database error can quote a row's values; wherever it sits in the
// chain, only its SQLSTATE reaches the log.
func TestErrorWithholdsDatabaseMessages(t *testing.T) {
	t.Parallel()
	pg := &pgconn.PgError{Code: "22007", Message: `invalid input syntax for type date: "1990-02-30"`}
	got := logging.Error(fmt.Errorf("append: %w", pg)).Value.String()
	if strings.Contains(got, "1990-02-30") || !strings.Contains(got, "22007") {
		t.Errorf("logged %q, want the SQLSTATE without the message", got)
	}
	if got := logging.Error(errors.New("nats: timeout")).Value.String(); got != "nats: timeout" {
		t.Errorf("other errors are logged as they are; got %q", got)
	}
}

// The context's tenant and request id are added once: a record that says
// them itself keeps its own, so no JSON line carries a key twice.
func TestContextFieldsAreNotRepeated(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := logging.New(&buf, slog.LevelInfo)
	ctx := logging.WithTenant(logging.WithRequestID(context.Background(), "req-1"), "tenant-1")
	log.InfoContext(ctx, "command", slog.String("tenant", "tenant-1"), slog.String("request_id", "req-1"))
	log.InfoContext(ctx, "request")
	for i, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if n, m := strings.Count(line, `"tenant":`), strings.Count(line, `"request_id":`); n != 1 || m != 1 {
			t.Errorf("line %d has tenant %d times, request_id %d times: %s", i, n, m, line)
		}
	}
}
