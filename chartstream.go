// Package chartstream holds the platform's vocabulary: tenants, principals,
// event streams and the error type every layer speaks. It performs no I/O.
//
// The flow of a clinical command is:
//
//	HTTP (api) -> command handler (commands/...) -> aggregate decide
//	-> event store append (eventstore) -> relay (workers) -> JetStream
//	-> projector (projections/...) -> read model -> query (api)
package chartstream

import (
	"database/sql/driver"
	"fmt"

	"github.com/google/uuid"
)

// TenantID identifies a hospital or clinic. Every piece of clinical data
// belongs to exactly one tenant, and every function that touches such data
// takes the tenant as an explicit parameter.
type TenantID uuid.UUID

// ParseTenantID parses the canonical UUID form of a tenant id. It returns an
// EINVALID error for anything else, including the nil UUID.
func ParseTenantID(s string) (TenantID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return TenantID{}, Errorf(EINVALID, "tenant id must be a UUID")
	}
	return TenantID(id), nil
}

// NewTenantID returns a fresh random tenant id.
func NewTenantID() TenantID { return TenantID(uuid.New()) }

// String returns the canonical UUID form.
func (t TenantID) String() string { return uuid.UUID(t).String() }

// IsZero reports whether t is the zero (nil) id, which never names a tenant.
func (t TenantID) IsZero() bool { return t == TenantID{} }

// Value implements driver.Valuer so a TenantID can be passed to SQL as a uuid.
func (t TenantID) Value() (driver.Value, error) {
	if t.IsZero() {
		return nil, fmt.Errorf("chartstream: zero tenant id")
	}
	return t.String(), nil
}

// Scan implements sql.Scanner for uuid columns.
func (t *TenantID) Scan(src any) error {
	var id uuid.UUID
	if err := id.Scan(src); err != nil {
		return err
	}
	*t = TenantID(id)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (t TenantID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TenantID) UnmarshalText(b []byte) error {
	id, err := ParseTenantID(string(b))
	if err != nil {
		return err
	}
	*t = id
	return nil
}

// Tier is a tenant's service tier; it sizes rate limits and bulkheads.
type Tier string

// The tiers a tenant can have.
const (
	TierStandard   Tier = "standard"
	TierPremium    Tier = "premium"
	TierEnterprise Tier = "enterprise"
)

// Valid reports whether t is one of the known tiers.
func (t Tier) Valid() bool {
	switch t {
	case TierStandard, TierPremium, TierEnterprise:
		return true
	}
	return false
}

// TenantStatus says whether a tenant may use the platform.
type TenantStatus string

// The statuses a tenant can have.
const (
	TenantActive    TenantStatus = "active"
	TenantSuspended TenantStatus = "suspended"
)

// Role is what a principal may do within its tenant.
type Role string

// The roles the platform knows.
const (
	RoleClinician   Role = "clinician"
	RoleNurse       Role = "nurse"
	RoleTenantAdmin Role = "tenant_admin"
	RoleAuditor     Role = "auditor"
	RoleAnalyst     Role = "analyst"
)

// Principal is the authenticated caller: a user (or service) acting within
// exactly one tenant.
type Principal struct {
	Subject string
	Tenant  TenantID
	Roles   []Role
	// TokenID is the JWT id, used for revocation. May be empty.
	TokenID string
}

// HasRole reports whether p holds any of the given roles.
func (p Principal) HasRole(roles ...Role) bool {
	for _, have := range p.Roles {
		for _, want := range roles {
			if have == want {
				return true
			}
		}
	}
	return false
}
