package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/analytics"
)

// A standby whose WAL receiver stopped receiving but still runs (frozen
// by SIGSTOP) has replayed all it received, so it looks caught up to
// itself. Once a commit on the primary goes unreplayed for longer than
// the bound, the analytics answer 503 with Retry-After and the lag, and
// answer again when it receives again. Not parallel: the whole package's
// reads of the standby would stall with it.
func TestAnalyticsRefuseAStandbyThatStoppedReceiving(t *testing.T) {
	const maxLag = 500 * time.Millisecond
	reader, err := analytics.NewReader(testkit.MustReplicaPool(t), testkit.MustAppPool(t), analytics.ReaderConfig{MaxLag: maxLag})
	if err != nil {
		t.Fatal(err)
	}
	e := newAPIEnvWith(t, withAnalytics(reader))
	_, analyst := e.newTenant(chartstream.RoleAnalyst)
	testkit.WaitReplica(t)
	// Other packages write all the while: the standby may be behind by
	// more than the bound for a moment even while it receives.
	eventually(t, 10*time.Second, "the receiving standby answers", func() bool {
		return e.do(http.MethodGet, "/v1/analytics/census", analyst, nil).Status == http.StatusOK
	})

	resume := testkit.StallReplicaReceiver(t)
	testkit.MustTenant(t) // a commit the standby will not receive
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := e.do(http.MethodGet, "/v1/analytics/census", analyst, nil)
		if r.Status == http.StatusServiceUnavailable {
			lag, _ := strconv.Atoi(r.Header.Get(api.HeaderReplicaLag))
			if retry, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || retry < 1 || time.Duration(lag)*time.Millisecond <= maxLag {
				t.Errorf("503 with Retry-After %q and lag %q ms; want a Retry-After and a lag over %v", r.Header.Get("Retry-After"), r.Header.Get(api.HeaderReplicaLag), maxLag)
			}
			break
		}
		if r.Status != http.StatusOK {
			t.Fatalf("stalled standby: %d %s", r.Status, r.Raw)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby has received nothing for 5s, and the analytics still answer 200 with a lag of %s ms", r.Header.Get(api.HeaderReplicaLag))
		}
	}
	resume()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := e.do(http.MethodGet, "/v1/analytics/census", analyst, nil)
		if r.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiving again, the analytics still answer %d %s", r.Status, r.Raw)
		}
	}
}
