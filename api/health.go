package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/internal/logging"
)

// CheckFn reports whether one dependency is usable; a nil error means ready.
// Its error goes to the log only: /readyz is unauthenticated, and answers
// "unavailable" without the reason.
type CheckFn func(ctx context.Context) error

// ReadinessCheck is one named dependency check behind /readyz.
type ReadinessCheck struct {
	Name  string
	Check CheckFn
}

// StatusFn contributes extra, informational fields to /readyz (for example
// the relay's lag) without affecting readiness. What it returns is shown
// as is, so it must be figures, never error text.
type StatusFn func(ctx context.Context) any

// readiness is the /readyz body.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Info   map[string]any    `json:"info,omitempty"`
}

// readyTTL is how long a /readyz answer is reused: however often it is
// called (it needs no token), the dependencies are asked at most once per
// readyTTL.
const readyTTL = time.Second

// readyCache holds the last /readyz answer. Holding mu while computing makes
// concurrent callers wait for one computation instead of each starting
// their own.
type readyCache struct {
	mu     sync.Mutex
	at     time.Time
	status int
	body   readiness
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers from the cache, refreshing it when older than readyTTL.
func (s *Server) readyz(c echo.Context) error {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	if time.Since(s.ready.at) > readyTTL {
		s.ready.status, s.ready.body = s.checkReadiness(c.Request().Context())
		s.ready.at = time.Now()
	}
	return c.JSON(s.ready.status, s.ready.body)
}

// checkReadiness runs every check concurrently with a short deadline and
// names each dependency that failed; the reasons go to the log.
func (s *Server) checkReadiness(ctx context.Context) (int, readiness) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	body := readiness{Status: "ok", Checks: make(map[string]string, len(s.deps.Ready))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, rc := range s.deps.Ready {
		wg.Go(func() {
			result := "ok"
			if err := rc.Check(ctx); err != nil {
				result = "unavailable"
				s.deps.Logger.WarnContext(ctx, "readiness check failed", "dependency", rc.Name, logging.Error(err))
			}
			mu.Lock()
			defer mu.Unlock()
			body.Checks[rc.Name] = result
			if result != "ok" {
				body.Status = "unavailable"
			}
		})
	}
	wg.Wait()
	if len(s.deps.Info) > 0 {
		body.Info = make(map[string]any, len(s.deps.Info))
		for name, fn := range s.deps.Info {
			body.Info[name] = fn(ctx)
		}
	}
	if body.Status != "ok" {
		return http.StatusServiceUnavailable, body
	}
	return http.StatusOK, body
}
