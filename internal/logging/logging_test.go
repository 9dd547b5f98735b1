package logging_test

import (
	"errors"
	"fmt"
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
