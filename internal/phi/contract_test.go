package phi_test

import (
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/phi/phitest"
)

// The dev provider passes the contract every KeyProvider passes (the KMS
// adapters run the same suite).
func TestLocalKeyProviderContract(t *testing.T) {
	t.Parallel()
	phitest.KeyProviderContract(t, phitest.Subject{
		Provider: phi.MustLocalKeyProvider(t),
		Tenant:   func(*testing.T) chartstream.TenantID { return chartstream.NewTenantID() },
	})
}
