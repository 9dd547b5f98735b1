package ratelimit

import "github.com/chartstream/chartstream"

// Queued is how many of tenant's requests wait for a slot: tests wait on
// it rather than sleep to let a request queue.
func (l *Limiter) Queued(tenant chartstream.TenantID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.inFlight[tenant]; b != nil {
		return len(b.waiting)
	}
	return 0
}
