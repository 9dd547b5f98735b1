// Package phitest holds the contract every phi.KeyProvider passes: the
// local dev provider and the KMS adapters run the same suite.
package phitest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
)

// Subject is a provider under test. Tenant returns a tenant the provider
// can wrap keys for (with per-tenant KMS keys, one whose key exists).
type Subject struct {
	Provider phi.KeyProvider
	Tenant   func(t *testing.T) chartstream.TenantID
}

// dataKeyGenerator is a provider that also makes data keys itself (a KMS's
// GenerateDataKey); the suite holds its output to the same contract.
type dataKeyGenerator interface {
	GenerateDataKey(ctx context.Context, tenant chartstream.TenantID) (dek, wrapped []byte, err error)
}

// KeyProviderContract runs phi.KeyProvider's contract against s.
func KeyProviderContract(t *testing.T, s Subject) {
	t.Helper()
	p := s.Provider
	wrap := func(t *testing.T, tenant chartstream.TenantID) (dek, wrapped []byte) {
		t.Helper()
		dek, err := phi.NewDataKey()
		if err != nil {
			t.Fatal(err)
		}
		if wrapped, err = p.WrapKey(context.Background(), tenant, dek); err != nil {
			t.Fatal(err)
		}
		return dek, wrapped
	}
	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		tenant := s.Tenant(t)
		dek, wrapped := wrap(t, tenant)
		if bytes.Contains(wrapped, dek) {
			t.Fatal("the wrapped key holds the data key in the clear")
		}
		got, err := p.UnwrapKey(context.Background(), tenant, wrapped)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("unwrap: %v (equal %t)", err, bytes.Equal(got, dek))
		}
	})
	t.Run("refuses what does not authenticate", func(t *testing.T) {
		t.Parallel()
		tenant := s.Tenant(t)
		dek, wrapped := wrap(t, tenant)
		// The last byte: every scheme authenticates it. (local-kms, the KMS
		// emulator, does not authenticate the key id heading its blobs, as
		// AWS does; a flip there would test the emulator.)
		tampered := bytes.Clone(wrapped)
		tampered[len(tampered)-1] ^= 1
		for name, tt := range map[string]struct {
			tenant  chartstream.TenantID
			wrapped []byte
		}{
			"another tenant": {s.Tenant(t), wrapped},
			"tampered":       {tenant, tampered},
			"truncated":      {tenant, wrapped[:10]},
			"cut short":      {tenant, wrapped[:len(wrapped)-1]},
			"empty":          {tenant, nil},
		} {
			_, err := p.UnwrapKey(context.Background(), tt.tenant, tt.wrapped)
			if !errors.Is(err, phi.ErrDecrypt) {
				t.Errorf("%s: err = %v; want ErrDecrypt", name, err)
			}
			if err != nil && strings.Contains(strings.ToLower(err.Error()), hex.EncodeToString(dek)) {
				t.Errorf("%s: the error shows the data key", name)
			}
		}
	})
	t.Run("refuses bad input", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		dek, wrapped := wrap(t, s.Tenant(t))
		if _, err := p.WrapKey(ctx, s.Tenant(t), dek[:16]); !errors.Is(err, phi.ErrInvalidKey) {
			t.Errorf("16-byte data key: err = %v; want ErrInvalidKey", err)
		}
		if _, err := p.WrapKey(ctx, chartstream.TenantID{}, dek); err == nil {
			t.Error("zero tenant: wrapped anyway")
		}
		if _, err := p.UnwrapKey(ctx, chartstream.TenantID{}, wrapped); err == nil {
			t.Error("zero tenant: unwrapped anyway")
		}
	})
	t.Run("honours cancellation", func(t *testing.T) {
		t.Parallel()
		tenant := s.Tenant(t)
		dek, wrapped := wrap(t, tenant)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// Done at once or refused for the cancellation; never mistaken for
		// corruption or a destroyed key.
		if _, err := p.WrapKey(ctx, tenant, dek); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("wrap: err = %v; want nil or context.Canceled", err)
		}
		if _, err := p.UnwrapKey(ctx, tenant, wrapped); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("unwrap: err = %v; want nil or context.Canceled", err)
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		tenant := s.Tenant(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				dek, wrapped := wrap(t, tenant)
				if got, err := p.UnwrapKey(context.Background(), tenant, wrapped); err != nil || !bytes.Equal(got, dek) {
					t.Errorf("concurrent unwrap: %v", err)
				}
			})
		}
		wg.Wait()
	})
	if g, ok := p.(dataKeyGenerator); ok {
		t.Run("generated data keys", func(t *testing.T) {
			t.Parallel()
			tenant := s.Tenant(t)
			dek, wrapped, err := g.GenerateDataKey(context.Background(), tenant)
			if err != nil || len(dek) != phi.KeySize {
				t.Fatalf("generate: %d bytes, %v", len(dek), err)
			}
			if got, err := p.UnwrapKey(context.Background(), tenant, wrapped); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("unwrap a generated key: %v", err)
			}
			if _, err := p.UnwrapKey(context.Background(), s.Tenant(t), wrapped); !errors.Is(err, phi.ErrDecrypt) {
				t.Fatalf("a generated key under another tenant: err = %v; want ErrDecrypt", err)
			}
		})
	}
}
