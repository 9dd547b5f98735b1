package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/testkit"
)

// mintClinician returns a dev token of a clinician of the tenant m
// projects.
func mintClinician(t *testing.T, m *Main, subject string) string {
	t.Helper()
	key, err := auth.LoadDevKey(m.Config.Auth.DevKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.NewMinter(key).Mint(auth.MintParams{Tenant: m.Config.Projector.Tenants[0], Subject: subject, Roles: []chartstream.Role{chartstream.RoleClinician},
		TTL: time.Hour, Issuer: m.Config.Auth.Issuer, Audience: m.Config.Auth.Audience})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// sendFn sends an authenticated JSON request (headers as name, value
// pairs) and returns the response with its body read.
type sendFn func(method, path string, body []byte, header ...string) (*http.Response, []byte)

// clinicianSender sends as a clinician of m's tenant to base with client.
func clinicianSender(t *testing.T, m *Main, base string, client *http.Client) sendFn {
	token := mintClinician(t, m, "dr-"+uuid.NewString()[:8])
	return func(method, path string, body []byte, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(testkit.Context(t), method, base+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}
}

// registerAndReadBack registers Ada Lovelace under mrn and reads her chart
// with the command's consistency token: the event must have gone through
// the relay, NATS and the projector, her PHI sealed and opened again.
func registerAndReadBack(t *testing.T, send sendFn, mrn string) uuid.UUID {
	t.Helper()
	resp, raw := send(http.MethodPost, "/v1/patients",
		[]byte(`{"mrn":"`+mrn+`","name":{"family":"Lovelace","given":["Ada"]},"birth_date":"1990-01-02","sex":"female"}`))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	var created chartstream.CommandResult
	decodeJSON(t, raw, &created)
	resp, raw = send(http.MethodGet, "/v1/patients/"+created.ID.String(), nil, api.HeaderConsistencyToken, resp.Header.Get(api.HeaderConsistencyToken))
	var chart struct {
		FamilyName string `json:"family_name"`
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get(api.HeaderConsistency) == "stale" || json.Unmarshal(raw, &chart) != nil || chart.FamilyName != "Lovelace" {
		t.Fatalf("chart: %d %q %s", resp.StatusCode, resp.Header.Get(api.HeaderConsistency), raw)
	}
	return created.ID
}
