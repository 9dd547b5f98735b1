package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The tenant CLI against the real database, as the owner role
// (DATABASE_ADMIN_URL from the environment). Each test uses fresh slugs.

func freshSlug() string { return "cli-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16] }

// tenantCLI runs `chartstream tenant args...` and returns its trimmed output.
func tenantCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	testkit.Env(t, "DATABASE_ADMIN_URL")
	out, err := execute(testkit.Context(t), append([]string{"tenant"}, args...)...)
	return strings.TrimSpace(out), err
}

func mustTenantCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tenantCLI(t, args...)
	if err != nil {
		t.Fatalf("tenant %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func bySlug(t *testing.T, slug string) (tenants.Tenant, error) {
	t.Helper()
	return tenants.NewAdmin(testkit.MustAdminPool(t)).BySlug(testkit.Context(t), slug)
}

// listed returns the tenant with slug from `tenant list --json`.
func listed(t *testing.T, slug string) tenants.Tenant {
	t.Helper()
	var all []tenants.Tenant
	if err := json.Unmarshal([]byte(mustTenantCLI(t, "list", "--json")), &all); err != nil {
		t.Fatalf("tenant list --json: %v", err)
	}
	for _, tn := range all {
		if tn.Slug == slug {
			return tn
		}
	}
	t.Fatalf("tenant list --json lacks %s", slug)
	return tenants.Tenant{}
}

func TestTenantCreate(t *testing.T) {
	t.Parallel()
	slug := freshSlug()
	out := mustTenantCLI(t, "create", "--slug", slug, "--name", "North Clinic", "--tier", "premium")
	id, err := chartstream.ParseTenantID(out)
	if err != nil {
		t.Fatalf("create printed %q, want a tenant id", out)
	}
	got, err := bySlug(t, slug)
	if err != nil {
		t.Fatal(err)
	}
	want := tenants.Tenant{ID: id, Slug: slug, Name: "North Clinic", Tier: chartstream.TierPremium, Status: chartstream.TenantActive, CreatedAt: got.CreatedAt}
	if got != want {
		t.Errorf("stored %+v, want %+v", got, want)
	}

	out, err = tenantCLI(t, "create", "--slug", slug, "--name", "Other Clinic")
	if err == nil || !strings.Contains(err.Error(), "taken") || out != "" {
		t.Errorf("duplicate slug: printed %q, error %v; want no output and an error saying the slug is taken", out, err)
	}
	if out := mustTenantCLI(t, "create", "--slug", slug, "--name", "Other Clinic", "--if-not-exists"); out != id.String() {
		t.Errorf("--if-not-exists printed %q, want the existing id %s", out, id)
	}
	if got, err := bySlug(t, slug); err != nil || got.Name != "North Clinic" {
		t.Errorf("after --if-not-exists: %+v, %v; want the original tenant unchanged", got, err)
	}
}

func TestTenantCreateDefaultsToStandard(t *testing.T) {
	t.Parallel()
	slug := freshSlug()
	mustTenantCLI(t, "create", "--slug", slug, "--name", "South Clinic")
	if got := listed(t, slug); got.Tier != chartstream.TierStandard || got.Status != chartstream.TenantActive {
		t.Errorf("listed %+v, want an active standard tenant", got)
	}
}

func TestTenantCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		slug, tname, tier string
		want              string
	}{
		{"bad slug", "Bad Slug!", "Clinic", "premium", "slug must be"},
		{"slug too short", "a", "Clinic", "premium", "slug must be"},
		{"bad tier", freshSlug(), "Clinic", "gold", "tier must be standard, premium or enterprise"},
		{"blank name", freshSlug(), "   ", "standard", "name must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := tenantCLI(t, "create", "--slug", tt.slug, "--name", tt.tname, "--tier", tt.tier)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line containing %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q on failure", out)
			}
			if got, err := bySlug(t, tt.slug); chartstream.ErrorCode(err) != chartstream.ENOTFOUND {
				t.Errorf("after a failed create, BySlug(%q) = %+v, %v; want not found", tt.slug, got, err)
			}
		})
	}
}

func TestTenantSuspendAndActivate(t *testing.T) {
	t.Parallel()
	slug := freshSlug()
	id := mustTenantCLI(t, "create", "--slug", slug, "--name", "East Clinic")

	if out := mustTenantCLI(t, "suspend", slug); out != id+" suspended" {
		t.Errorf("suspend printed %q, want %q", out, id+" suspended")
	}
	if got := listed(t, slug); got.Status != chartstream.TenantSuspended || got.ID.String() != id {
		t.Errorf("after suspend, listed %+v, want %s suspended", got, id)
	}
	// By id this time.
	if out := mustTenantCLI(t, "activate", id); out != id+" active" {
		t.Errorf("activate printed %q, want %q", out, id+" active")
	}
	if got := listed(t, slug); got.Status != chartstream.TenantActive {
		t.Errorf("after activate, listed %+v, want active", got)
	}
	// The table lists it too.
	if out := mustTenantCLI(t, "list"); !strings.Contains(out, slug) || !strings.HasPrefix(out, "ID") {
		t.Errorf("tenant list does not show %s under a header:\n%s", slug, out)
	}
}

func TestTenantSetStatusUnknown(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"suspend", freshSlug()}, {"activate", uuid.NewString()}} {
		if out, err := tenantCLI(t, args...); err == nil || !strings.Contains(err.Error(), "no such tenant") || out != "" {
			t.Errorf("tenant %s: printed %q, error %v; want no such tenant", strings.Join(args, " "), out, err)
		}
	}
	if _, err := tenantCLI(t, "suspend"); err == nil {
		t.Error("tenant suspend without an argument succeeded")
	}
}
