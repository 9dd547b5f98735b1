package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// The whole flow on the real binary's wiring: HTTP command -> handler ->
// event store -> relay -> JetStream (embedded) -> projector -> read model
// -> HTTP query, read-your-writes through the consistency token.
func TestEndToEndCommandToQuery(t *testing.T) {
	t.Parallel()
	m := newTestMain(t, true, true, "")
	base := startMain(t, m)
	tenant := m.Config.Projector.Tenants[0] // the tenant this Main projects
	token := mintToken(t, m, tenant)
	send := func(method, path string, body any, consistency string) (*http.Response, []byte) {
		t.Helper()
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
		if consistency != "" {
			req.Header.Set(api.HeaderConsistencyToken, consistency)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}

	resp, raw := send(http.MethodPost, "/v1/patients", map[string]any{
		"mrn": "E2E-1", "name": map[string]any{"family": "Lovelace", "given": []string{"Ada"}}, "birth_date": "1990-01-02", "sex": "female",
	}, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	var created chartstream.CommandResult
	_ = json.Unmarshal(raw, &created)
	patientPath := "/v1/patients/" + created.ID.String()

	resp, raw = send(http.MethodPost, patientPath+"/allergies", map[string]any{
		"substance": map[string]any{"code": "7980", "display": "Penicillin G", "system": "http://www.nlm.nih.gov/research/umls/rxnorm"}, "criticality": "high",
	}, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("record allergy: %d %s", resp.StatusCode, raw)
	}
	consistency := resp.Header.Get(api.HeaderConsistencyToken)

	// With the token, the very next read sees the write.
	resp, raw = send(http.MethodGet, patientPath, nil, consistency)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(api.HeaderConsistency) == "stale" {
		t.Fatalf("chart: %d %q %s", resp.StatusCode, resp.Header.Get(api.HeaderConsistency), raw)
	}
	var chart struct {
		FamilyName string `json:"family_name"`
		Allergies  []struct {
			SubstanceCode string `json:"substance_code"`
		} `json:"allergies"`
	}
	if err := json.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.FamilyName != "Lovelace" || len(chart.Allergies) != 1 || chart.Allergies[0].SubstanceCode != "7980" {
		t.Errorf("chart after read-your-writes: %s", raw)
	}
	resp, raw = send(http.MethodGet, "/v1/patients?name=ada", nil, consistency)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), created.ID.String()) {
		t.Errorf("search by name: %d %s", resp.StatusCode, raw)
	}
}
