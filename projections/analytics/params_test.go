package analytics_test

import (
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections/analytics"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from, to, field string
		want            [2]string
	}{
		{"", "", "", [2]string{"2026-11-01", "2026-11-30"}},
		{"2026-01-01", "2026-01-01", "", [2]string{"2026-01-01", "2026-01-01"}},
		{"", "2026-03-31", "", [2]string{"2026-03-02", "2026-03-31"}},
		{"2025-01-01", "2025-12-31", "", [2]string{"2025-01-01", "2025-12-31"}},
		{"2024-01-01", "2024-12-31", "", [2]string{"2024-01-01", "2024-12-31"}}, // 366 days, a leap year
		{"2024-01-01", "2025-01-01", "from", [2]string{}},                       // 367
		{"2026-02-01", "2026-01-31", "from", [2]string{}},
		{"2026-02-30", "", "from", [2]string{}},
		{"", "tomorrow", "to", [2]string{}},
		{"2026-01-01T00:00:00Z", "", "from", [2]string{}},
	} {
		r, err := analytics.ParseRange(tc.from, tc.to, now)
		if tc.field != "" {
			var e *chartstream.Error
			if chartstream.ErrorCode(err) != chartstream.EINVALID || !asError(err, &e) || len(e.Fields) == 0 || e.Fields[0].Field != tc.field {
				t.Errorf("from %q to %q: %v, want EINVALID naming %s", tc.from, tc.to, err, tc.field)
			}
			continue
		}
		if err != nil || r.From.Format(time.DateOnly) != tc.want[0] || r.To.Format(time.DateOnly) != tc.want[1] {
			t.Errorf("from %q to %q: %v..%v (%v), want %v", tc.from, tc.to, r.From, r.To, err, tc.want)
		}
	}
}

func TestCheckFilterNeverEchoesTheValue(t *testing.T) {
	t.Parallel()
	for _, v := range []string{" 8867-4", "8867-4\n", string(make([]byte, 65)), "\xff"} {
		err := analytics.CheckCode(v)
		var e *chartstream.Error
		if !asError(err, &e) || e.Code != chartstream.EINVALID || e.Fields[0].Field != "code" {
			t.Errorf("%q: %v, want EINVALID on code", v, err)
			continue
		}
		if len(v) > 1 && contains(e.Fields[0].Reason+e.Message, v) {
			t.Errorf("%q: the error repeats the value", v)
		}
	}
	if err := analytics.CheckLocation("Ward 3B"); err != nil {
		t.Errorf("a plain location: %v", err)
	}
}
