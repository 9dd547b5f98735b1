package phi

import (
	"context"

	"github.com/chartstream/chartstream"
)

// KeyProvider wraps and unwraps data keys under a per-tenant key-encryption
// key (KEK) that never leaves the provider. LocalKeyProvider is the
// development implementation; a cloud KMS implements it with Encrypt/Decrypt
// on a per-tenant key, or on one key with the tenant id as encryption
// context (AWS) or additional authenticated data (GCP).
//
// Contract for every implementation:
//   - Wrapped output is opaque, safe to store next to the data, and binds
//     the tenant: UnwrapKey under any other tenant fails with an error
//     matching ErrDecrypt.
//   - UnwrapKey returns an error matching ErrDecrypt for wrapped bytes that
//     do not authenticate, and ErrKeyDestroyed when the tenant's KEK has
//     been destroyed on purpose. Any other error (network, throttling,
//     permission) is treated as transient: the caller must fail the request,
//     never erase PHI because of it.
//   - Errors and logs never contain dek or unwrapped bytes.
//   - Methods are safe for concurrent use and honour ctx cancellation.
//
// The interface lives here, not in the event store, because it is the
// extension point the KMS adapters implement.
type KeyProvider interface {
	// WrapKey encrypts dek (a KeySize-byte data key) for tenant.
	WrapKey(ctx context.Context, tenant chartstream.TenantID, dek []byte) ([]byte, error)
	// UnwrapKey returns the data key that WrapKey wrapped for tenant.
	UnwrapKey(ctx context.Context, tenant chartstream.TenantID, wrapped []byte) ([]byte, error)
}
