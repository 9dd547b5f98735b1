package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is the container image's HEALTHCHECK: the image has no
// shell and no curl, so the binary asks its own API.
func newHealthcheckCmd() *cobra.Command {
	var url, addr string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a GET of the API's /healthz answers 2xx, 1 otherwise (the container health check)",
		Args:  badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				u, err := healthURL(addr)
				if err != nil {
					return exitError{2, err}
				}
				url = u
			}
			if err := probe(cmd.Context(), url, timeout); err != nil {
				var ex exitError
				if errors.As(err, &ex) {
					return err
				}
				return exitError{1, err}
			}
			return nil
		},
	}
	stringFlag(cmd.Flags(), &url, "url", "HEALTHCHECK_URL", "", "URL to GET (default http://HTTP_ADDR/healthz, on loopback when HTTP_ADDR listens on every address)")
	stringFlag(cmd.Flags(), &addr, "http-addr", "HTTP_ADDR", defaultHTTPAddr, "API listen address")
	durationFlag(cmd.Flags(), &timeout, "timeout", "HEALTHCHECK_TIMEOUT", 3*time.Second, "how long to wait for the answer")
	return cmd
}

// healthURL is the /healthz URL of an API listening on addr. An API that
// listens on every address (0.0.0.0:8080, :8080) is asked on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", errors.New("HTTP_ADDR must be host:port")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// probe GETs url and fails unless the answer is 2xx within timeout.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return exitError{2, fmt.Errorf("HEALTHCHECK_URL is malformed: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
