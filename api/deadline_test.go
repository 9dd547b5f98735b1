package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/testkit"
)

// A request whose database stops answering ends at its deadline with a 503
// and Retry-After, and its connection is given back: a hung dependency
// cannot pile up requests without bound.
func TestRequestsEndAtTheirDeadline(t *testing.T) {
	t.Parallel()
	proxy, pool := testkit.MustProxiedPool(t, "DATABASE_URL")
	e := newAPIEnvWith(t, withReadModels(pool), withServer(api.Config{RequestTimeout: 300 * time.Millisecond}))
	tenant := testkit.MustTenant(t)
	token := e.token(tenant, chartstream.RoleClinician)

	proxy.Stall(true)
	start := time.Now()
	type result struct {
		r   reply
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.send(http.MethodGet, "/v1/patients/"+uuid.NewString(), token, nil)
		done <- result{r, err}
	}()
	var r reply
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		r = res.r
	case <-time.After(5 * time.Second):
		proxy.Stall(false)
		t.Fatal("a read against a stalled database was still running after 5s; want it ended at its 300ms deadline")
	}
	took := time.Since(start)
	proxy.Stall(false)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("stalled read: %d %s (Retry-After %q); want 503 with Retry-After", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	if took > 3*time.Second { // 10× the deadline: room for a loaded machine
		t.Errorf("stalled read took %s; want it cut off at its 300ms deadline", took)
	}
	// The stalled connection is given up; the next reads get fresh ones.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do(http.MethodGet, "/v1/patients/"+uuid.NewString(), token, nil)
		if r.Status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after the stall: %d %s; want reads answered again (404)", r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
