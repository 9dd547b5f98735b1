package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/internal/logging"
)

// A request that outlives ShutdownTimeout is cut off: its connection closes,
// its handler's context is cancelled, and Serve reports the timeout.
func TestServeCutsOffRequestsAfterShutdownTimeout(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Deps{Logger: logging.New(t.Output(), slog.LevelError)},
		Config{Addr: "127.0.0.1:0", ShutdownTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	started, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.echo.GET("/stuck", func(c echo.Context) error {
		close(started)
		select {
		case <-c.Request().Context().Done():
			close(cancelled)
		case <-release:
		}
		return nil
	})
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	requested := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/stuck")
		if err == nil {
			resp.Body.Close()
		}
		requested <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached its handler")
	}
	cancel()

	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "shutdown") {
			t.Errorf("Serve: %v, want a shutdown timeout error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ShutdownTimeout")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Error("the handler's context was not cancelled after ShutdownTimeout")
	}
	select {
	case err := <-requested:
		if err == nil {
			t.Error("the cut-off request got a response")
		}
	case <-time.After(10 * time.Second):
		t.Error("the cut-off request is still waiting")
	}
}
