package workers

import (
	"context"
	"time"
)

// every runs fn at once, then each interval after it returned, until ctx
// ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
		t.Reset(interval)
	}
}
