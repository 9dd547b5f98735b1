package metrics

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/chartstream/chartstream"
)

// OtherTenants is the tenant label of every tenant without one of its own.
const OtherTenants = "other"

// maxTracked bounds the tenants whose traffic is counted for the ranking.
// Only authenticated tenants (existing, active) are counted, so this is a
// second wall.
const maxTracked = 10_000

// tenantLabels decides which tenants' series carry their own id: those
// opted in, and the busiest top. The label of a tenant is a precomputed
// string, so labelling costs a map lookup.
type tenantLabels struct {
	fixed map[chartstream.TenantID]string
	top   int
	// current maps the busiest tenants to their labels: replaced whole at
	// each rank, never changed in place.
	current atomic.Pointer[map[chartstream.TenantID]string]

	mu sync.Mutex
	// traffic is each tenant's decayed traffic since the ranks before.
	traffic map[chartstream.TenantID]float64
	// retired are the labels of tenants that left the busiest, with the
	// ranks they have been gone: a request labelled just before a rank
	// may bring a retired label's series back, so the next few ranks
	// delete them again. Touched by rank only.
	retired map[chartstream.TenantID]retiredLabel
}

type retiredLabel struct {
	label string
	ranks int
}

// retiredRanks is how many ranks delete a retired label's series.
const retiredRanks = 3

func newTenantLabels(fixed []chartstream.TenantID, top int) *tenantLabels {
	l := &tenantLabels{fixed: make(map[chartstream.TenantID]string, len(fixed)), top: top,
		traffic: make(map[chartstream.TenantID]float64), retired: make(map[chartstream.TenantID]retiredLabel)}
	for _, t := range fixed {
		l.fixed[t] = t.String()
	}
	l.current.Store(&map[chartstream.TenantID]string{})
	return l
}

// label is the tenant's label: its id when opted in or among the busiest,
// OtherTenants otherwise.
func (l *tenantLabels) label(t chartstream.TenantID) string {
	if s, ok := l.fixed[t]; ok {
		return s
	}
	if s, ok := (*l.current.Load())[t]; ok {
		return s
	}
	return OtherTenants
}

// count adds n to the tenant's traffic, for the ranking, and returns its
// label.
func (l *tenantLabels) count(t chartstream.TenantID, n float64) string {
	if l.top > 0 {
		l.mu.Lock()
		if v, ok := l.traffic[t]; ok || len(l.traffic) < maxTracked {
			l.traffic[t] = v + n
		}
		l.mu.Unlock()
	}
	return l.label(t)
}

// rank makes the busiest tenants (not opted in) the labelled ones, halves
// every tenant's traffic so that recent traffic counts most, and returns
// the labels that are no longer given (see retired), whose series must go.
// Only one goroutine may rank.
func (l *tenantLabels) rank() (dropped []string) {
	if l.top == 0 {
		return nil
	}
	l.mu.Lock()
	type busy struct {
		t chartstream.TenantID
		n float64
	}
	var all []busy
	for t, n := range l.traffic {
		if _, fixed := l.fixed[t]; !fixed && n >= 1 {
			all = append(all, busy{t, n})
		}
		if n /= 2; n < 0.5 {
			delete(l.traffic, t)
		} else {
			l.traffic[t] = n
		}
	}
	l.mu.Unlock()
	slices.SortFunc(all, func(a, b busy) int { return cmp.Compare(b.n, a.n) })
	next := make(map[chartstream.TenantID]string, l.top)
	for _, b := range all[:min(l.top, len(all))] {
		next[b.t] = b.t.String()
	}
	for t, s := range *l.current.Swap(&next) {
		if _, kept := next[t]; !kept {
			l.retired[t] = retiredLabel{label: s}
		}
	}
	for t, r := range l.retired {
		if _, back := next[t]; back || r.ranks >= retiredRanks {
			delete(l.retired, t)
			continue
		}
		dropped = append(dropped, r.label)
		l.retired[t] = retiredLabel{label: r.label, ranks: r.ranks + 1}
	}
	return dropped
}
