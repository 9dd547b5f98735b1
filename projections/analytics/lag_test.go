package analytics

import (
	"testing"
	"time"
)

// RetryAfter tells a caller refused for lag to come back once the standby
// may be within the bound: at least a second, at most a minute.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	r := &Reader{cfg: ReaderConfig{MaxLag: 30 * time.Second}}
	for _, tc := range []struct {
		lag  Lag
		want time.Duration
	}{
		{Lag{}, time.Second},
		{Lag{Known: true, Value: 10 * time.Second}, time.Second},
		{Lag{Known: true, Value: 30*time.Second + time.Millisecond}, time.Second},
		{Lag{Known: true, Value: 45 * time.Second}, 15 * time.Second},
		{Lag{Known: true, Value: time.Hour}, time.Minute},
	} {
		if got := r.RetryAfter(tc.lag); got != tc.want {
			t.Errorf("lag %+v: Retry-After %v, want %v", tc.lag, got, tc.want)
		}
	}
}

// A lag is reported in milliseconds rounded up, so a lag refused as over
// the bound never reads as equal to it.
func TestLagMillisRoundsUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lag  time.Duration
		want int64
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{500 * time.Millisecond, 500},
		{500*time.Millisecond + 300*time.Microsecond, 501},
	} {
		if got := (Lag{Known: true, Value: tc.lag}).Millis(); got != tc.want {
			t.Errorf("lag %v: %d ms, want %d", tc.lag, got, tc.want)
		}
	}
}

// The small-cell rule: 1 to MinCell-1 is suppressed, zero and MinCell are
// shown; a statistic of fewer than MinCell values is suppressed.
func TestCells(t *testing.T) {
	t.Parallel()
	c := cells{min: 11}
	v := 7.5
	if c.count("a", 0) == nil || c.count("b", 1) != nil || c.count("c", 10) != nil || c.count("d", 11) == nil {
		t.Error("counts 0, 1, 10, 11: want shown, suppressed, suppressed, shown")
	}
	if c.stat("e", &v, 10) != nil || c.stat("f", &v, 11) == nil || c.stat("g", nil, 20) != nil {
		t.Error("stats of 10 and 11 values: want suppressed, shown")
	}
	if got := c.suppressed; len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "e" {
		t.Errorf("suppressed %v, want [b c e]", got)
	}
}

// A standby found caught up has no lag however old its last commit (an
// idle primary); behind, its lag is the age of its last commit, at most
// the time since a read last found it caught up.
func TestMeasuredLag(t *testing.T) {
	t.Parallel()
	r := &Reader{cfg: ReaderConfig{MaxLag: 30 * time.Second}}
	hour := float64(time.Hour / time.Millisecond)
	if got := r.measured(false, hour, time.Now()); got != time.Hour {
		t.Errorf("behind, never seen caught up: %v, want the last commit's age, 1h", got)
	}
	if got := r.measured(true, hour, time.Now().Add(-2*time.Second)); got != 0 {
		t.Errorf("caught up, last commit an hour ago: %v, want 0", got)
	}
	if got := r.measured(false, hour, time.Now()); got < 2*time.Second || got > time.Minute {
		t.Errorf("behind, caught up 2s ago, last commit an hour ago: %v, want about 2s", got)
	}
	if got := r.measured(false, 500, time.Now()); got != 500*time.Millisecond {
		t.Errorf("behind by a commit 500ms old: %v, want 500ms", got)
	}
}
