package check

import (
	"errors"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
)

func TestProblems(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		check func(p *Problems)
		want  string // the reason, "" for none
	}{
		{"text ok", func(p *Problems) { p.Text("f", "Ward 7", true, 10) }, ""},
		{"text missing", func(p *Problems) { p.Text("f", "  ", true, 10) }, "is required"},
		{"text optional", func(p *Problems) { p.Text("f", "", false, 10) }, ""},
		{"text too long in characters", func(p *Problems) { p.Text("f", "ééééé", true, 4) }, "must be at most 4 characters"},
		{"text with a line break", func(p *Problems) { p.Text("f", "a\nb", true, 10) }, "must not contain control characters"},
		{"note with a line break", func(p *Problems) { p.Note("f", "a\nb", true, 10) }, ""},
		{"note with a NUL", func(p *Problems) { p.Note("f", "a\x00b", true, 10) }, "must not contain control characters"},
		{"invalid UTF-8", func(p *Problems) { p.Text("f", "a\xffb", true, 10) }, "must be valid UTF-8"},
		{"token with a space", func(p *Problems) { p.Token("f", "a b", 10) }, "must not contain spaces"},
		{"one of", func(p *Problems) { p.OneOf("f", "x", "a", "b") }, "must be one of: a, b"},
		{"date today in UTC+14", func(p *Problems) { p.Date("f", "2025-03-15", now) }, ""},
		{"date in the future", func(p *Problems) { p.Date("f", "2025-03-16", now) }, "must not be in the future"},
		{"date malformed", func(p *Problems) { p.Date("f", "2025-3-1", now) }, "must be a date YYYY-MM-DD"},
		{"instant within skew", func(p *Problems) { p.Instant("f", "2025-03-14T12:04:00Z", now) }, ""},
		{"instant in the future", func(p *Problems) { p.Instant("f", "2025-03-14T12:06:00Z", now) }, "must not be in the future"},
		{"instant without zone", func(p *Problems) { p.Instant("f", "2025-03-14T12:00:00", now) }, "must be a date and time in RFC 3339 form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p Problems
			tt.check(&p)
			err := p.Err()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var e *chartstream.Error
			if !errors.As(err, &e) || e.Code != chartstream.EINVALID || len(e.Fields) != 1 || e.Fields[0] != (chartstream.FieldError{Field: "f", Reason: tt.want}) {
				t.Fatalf("got %+v, want reason %q", e, tt.want)
			}
		})
	}
}
