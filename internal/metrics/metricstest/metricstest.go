// Package metricstest reads a metrics exposition the way Prometheus does
// (prometheus/common/expfmt) and checks what its labels may carry.
package metricstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are parsed metric families by name.
type Families map[string]*dto.MetricFamily

// MustScrape GETs url (with token as a bearer token unless empty) and
// parses the text exposition.
func MustScrape(tb testing.TB, url, token string) Families {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		tb.Fatalf("scrape %s: %d %s", url, resp.StatusCode, body)
	}
	return MustParse(tb, resp.Body)
}

// MustServe scrapes handler in process.
func MustServe(tb testing.TB, handler http.Handler) Families {
	tb.Helper()
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("metrics handler: %d %s", rec.Code, rec.Body)
	}
	return MustParse(tb, rec.Body)
}

// MustParse parses a text exposition.
func MustParse(tb testing.TB, r io.Reader) Families {
	tb.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		tb.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// Series counts the series of the families whose names start with prefix.
func (f Families) Series(prefix string) int {
	n := 0
	for name, mf := range f {
		if strings.HasPrefix(name, prefix) {
			n += len(mf.GetMetric())
		}
	}
	return n
}

// Values are the values label takes in the family name.
func (f Families) Values(name, label string) []string {
	var out []string
	for _, m := range f[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && !slices.Contains(out, lp.GetValue()) {
				out = append(out, lp.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

// Allowed says, for each label name, which values it may take. A label
// whose name is not in it fails Check: a new label must say its values.
type Allowed map[string]func(value string) bool

// OneOf allows the given values.
func OneOf(values ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(values, v) }
}

var statusCode = regexp.MustCompile(`^[1-5][0-9][0-9]$`)

// Labels are the labels chartstream's metrics may have and the finite
// sets of values each may take, given the API's route patterns, the
// tenants with labels of their own and the projections.
func Labels(routes, tenants, projections []string) Allowed {
	return Allowed{
		"route":      OneOf(append(slices.Clone(routes), "unmatched")...),
		"method":     OneOf("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"),
		"code":       func(v string) bool { return statusCode.MatchString(v) || v == "other" },
		"class":      OneOf("1xx", "2xx", "3xx", "4xx", "5xx", "other"),
		"tier":       OneOf("standard", "premium", "enterprise", "none"),
		"tenant":     OneOf(append(slices.Clone(tenants), "other")...),
		"reason":     OneOf("rate", "in_flight", "other"),
		"outcome":    OneOf("ok", "conflict", "error"),
		"projection": OneOf(projections...),
		"pool":       OneOf("app", "relay", "sessions"),
		// go_info's Go version.
		"version": OneOf(runtime.Version()),
	}
}

// Check fails tb for every label value not allowed, and for every value
// containing one of forbidden (PHI the test sent).
func Check(tb testing.TB, f Families, allowed Allowed, forbidden ...string) {
	tb.Helper()
	for name, mf := range f {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				ok, known := allowed[lp.GetName()]
				switch {
				case !known:
					tb.Errorf("%s: label %q has no allowed set of values", name, lp.GetName())
				case !ok(lp.GetValue()):
					tb.Errorf("%s: label %s=%q is not an allowed value", name, lp.GetName(), lp.GetValue())
				}
				for _, s := range forbidden {
					if strings.Contains(strings.ToLower(lp.GetValue()), strings.ToLower(s)) {
						tb.Errorf("%s: label %s=%q carries %q", name, lp.GetName(), lp.GetValue(), s)
					}
				}
			}
		}
	}
}
