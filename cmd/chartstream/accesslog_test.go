package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// SIGTERM during a storm of chart reads: the real Main drains its
// requests, then writes every access entry it holds before it closes its
// pools. Each read answered 200 has its entry; none is lost, none is
// invented.
func TestSIGTERMDuringAReadStormLosesNoAccessEntry(t *testing.T) {
	t.Parallel()
	m := newTestMain(t, true, true, "")
	// A flush interval longer than the storm: the entries are still in
	// memory when the signal comes (up to each batch of 2,000).
	m.Config.AccessLog.FlushInterval, m.Config.AccessLog.StallAfter = time.Hour, 2*time.Hour
	openMain(t, m)
	base, stop := serveMain(t, m)
	tenant := m.Config.Projector.Tenants[0]
	key, err := auth.LoadDevKey(m.Config.Auth.DevKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.NewMinter(key).Mint(auth.MintParams{Tenant: tenant, Subject: "dr-storm", Roles: []chartstream.Role{chartstream.RoleClinician},
		TTL: time.Hour, Issuer: m.Config.Auth.Issuer, Audience: m.Config.Auth.Audience})
	if err != nil {
		t.Fatal(err)
	}
	send := func(method, path string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}
	status, raw, err := send(http.MethodPost, "/v1/patients", map[string]any{
		"mrn": "STORM-1", "name": map[string]any{"family": "Lovelace", "given": []string{"Ada"}}, "birth_date": "1990-01-02", "sex": "female",
	})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("register: %d %s %v", status, raw, err)
	}
	var created chartstream.CommandResult
	_ = json.Unmarshal(raw, &created)
	chartPath := "/v1/patients/" + created.ID.String()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if status, _, _ := send(http.MethodGet, chartPath, nil); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the chart was not projected within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The storm: readers read until the server goes away.
	var served atomic.Int64
	served.Add(1) // the read above
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				status, _, err := send(http.MethodGet, chartPath, nil)
				if err != nil {
					return // the listener closed
				}
				if status == http.StatusOK {
					served.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := stop(); err != nil { // what SIGTERM does: cancel Run's context
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	var logged int64
	ctx := testkit.Context(t)
	err = postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM phi_access_log WHERE route = 'GET /v1/patients/:id'`).Scan(&logged)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chart reads answered 200 before the shutdown, %d access entries", served.Load(), logged)
	if n := served.Load(); logged != n || n < 20 {
		t.Errorf("%d chart reads answered 200, %d access entries written; want them equal (and a storm of at least 20)", n, logged)
	}
}
