package metrics_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// alertNames are the alerts the README explains, one per condition the
// platform promises to raise.
var alertNames = []string{"ChartstreamRelayLagging", "ChartstreamProjectionLagging", "ChartstreamDeadLetters", "ChartstreamHTTP5xxRate",
	"ChartstreamHTTPLatencyHigh", "ChartstreamRateLimitRejections", "ChartstreamDBPoolExhausted", "ChartstreamNATSDisconnected"}

// TestAlertsNameExportedMetrics reads the Prometheus rule file: every
// expected alert is there with a severity and a summary, every expression
// parses and names only exported metrics, and the README explains each.
func TestAlertsNameExportedMetrics(t *testing.T) {
	t.Parallel()
	fams, _ := fullExposition(t)
	raw, err := os.ReadFile("../../deploy/helm/chartstream/files/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			seen = append(seen, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a severity, a summary and a description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, name := range metricNames(t, "alert "+r.Alert, r.Expr) {
				if !exported(fams, name) {
					t.Errorf("alert %s names %s, which is not exported", r.Alert, name)
				}
			}
			if !strings.Contains(string(readme), "`"+r.Alert+"`") {
				t.Errorf("README does not explain alert %s", r.Alert)
			}
		}
	}
	for _, want := range alertNames {
		if !slices.Contains(seen, want) {
			t.Errorf("alert %s is missing", want)
		}
	}
}
