package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// CheckFn reports whether one dependency is usable; a nil error means ready.
// Its error text is shown on /readyz, so it must not contain secrets.
type CheckFn func(ctx context.Context) error

// ReadinessCheck is one named dependency check behind /readyz.
type ReadinessCheck struct {
	Name  string
	Check CheckFn
}

// StatusFn contributes extra, informational fields to /readyz (for example
// the relay's lag) without affecting readiness.
type StatusFn func(ctx context.Context) any

// readiness is the /readyz body.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Info   map[string]any    `json:"info,omitempty"`
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every check concurrently with a short deadline and answers 503
// naming each dependency that failed.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	body := readiness{Status: "ok", Checks: make(map[string]string, len(s.deps.Ready))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, rc := range s.deps.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			result := "ok"
			if err := rc.Check(ctx); err != nil {
				result = "unavailable: " + err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			body.Checks[rc.Name] = result
			if result != "ok" {
				body.Status = "unavailable"
			}
		}()
	}
	wg.Wait()
	if len(s.deps.Info) > 0 {
		body.Info = make(map[string]any, len(s.deps.Info))
		for name, fn := range s.deps.Info {
			body.Info[name] = fn(ctx)
		}
	}
	status := http.StatusOK
	if body.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, body)
}
