package main

import (
	"context"
	"time"

	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections/analytics"
)

// openAnalytics connects (lazily: the API starts without it) to the hot
// standby, when one is configured, for the analytics API.
func (m *Main) openAnalytics(ctx context.Context, info map[string]api.StatusFn) (api.AnalyticsReader, error) {
	if m.Config.DatabaseReplicaURL == "" {
		return nil, nil
	}
	var err error
	if m.replica, err = postgres.Connect(ctx, postgres.Config{URL: m.Config.DatabaseReplicaURL, ApplicationName: "chartstream-analytics",
		MaxConns: 8, ConnectTimeout: 2 * time.Second, Lazy: true}); err != nil {
		return nil, err
	}
	reader, err := analytics.NewReader(m.replica, m.pool, m.Config.analyticsConfig())
	if err != nil {
		return nil, err
	}
	// Reported, not required: the clinical API does not need the standby.
	info["analytics_replica"] = func(ctx context.Context) any {
		if err := m.replica.Ping(ctx); err != nil {
			return "unavailable"
		}
		return "ok"
	}
	return reader, nil
}
