package awskms_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/awskms"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/phi/phitest"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The provider is tested against local-kms, an AWS KMS emulator, started
// for each test (testkit.MustLocalKMS).

var _ phi.KeyProvider = (*awskms.Provider)(nil)

// mustProvider returns a provider on emulator k with cfg's key settings.
func mustProvider(t *testing.T, k *testkit.LocalKMS, cfg awskms.Config) *awskms.Provider {
	t.Helper()
	cfg.Endpoint, cfg.Region = k.Endpoint, k.Region
	p, err := awskms.New(context.Background(), cfg,
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mustKey creates a symmetric KMS key and returns its id.
func mustKey(t *testing.T, client *kms.Client) string {
	t.Helper()
	out, err := client.CreateKey(testkit.Context(t), &kms.CreateKeyInput{Description: aws.String("chartstream test")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.KeyId)
}

// perTenant is a provider with one key per tenant, and a function that
// makes a tenant and its key (named by the alias template).
func perTenant(t *testing.T) (*awskms.Provider, func(*testing.T) (chartstream.TenantID, string)) {
	t.Helper()
	p := mustProvider(t, testkit.MustLocalKMS(t), awskms.Config{KeyAliasTemplate: "alias/chartstream-test-{tenant}"})
	return p, func(t *testing.T) (chartstream.TenantID, string) {
		tenant := chartstream.NewTenantID()
		key := mustKey(t, p.Client())
		if _, err := p.Client().CreateAlias(testkit.Context(t), &kms.CreateAliasInput{AliasName: aws.String(p.KeyFor(tenant)), TargetKeyId: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
		return tenant, key
	}
}

func TestContractOneKeyForAllTenants(t *testing.T) {
	t.Parallel()
	k := testkit.MustLocalKMS(t)
	admin := mustProvider(t, k, awskms.Config{KeyID: "unused"})
	p := mustProvider(t, k, awskms.Config{KeyID: mustKey(t, admin.Client())})
	phitest.KeyProviderContract(t, phitest.Subject{Provider: p, Tenant: func(*testing.T) chartstream.TenantID { return chartstream.NewTenantID() }})
}

func TestContractOneKeyPerTenant(t *testing.T) {
	t.Parallel()
	p, newTenant := perTenant(t)
	phitest.KeyProviderContract(t, phitest.Subject{Provider: p, Tenant: func(t *testing.T) chartstream.TenantID {
		tenant, _ := newTenant(t)
		return tenant
	}})
}

// A tenant's key taken out of service on purpose (disabled, or scheduled
// for deletion) is a destroyed key: its data reads as erased. Back in
// service, the same wrapped keys open again.
func TestKeyOutOfServiceIsDestroyed(t *testing.T) {
	t.Parallel()
	p, newTenant := perTenant(t)
	tenant, key := newTenant(t)
	ctx := testkit.Context(t)
	dek, wrapped, err := p.GenerateDataKey(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	opens := func(step string) {
		t.Helper()
		if got, err := p.UnwrapKey(ctx, tenant, wrapped); err != nil || string(got) != string(dek) {
			t.Fatalf("%s: unwrap: %v", step, err)
		}
	}
	destroyed := func(step string) {
		t.Helper()
		if _, err := p.UnwrapKey(ctx, tenant, wrapped); !errors.Is(err, phi.ErrKeyDestroyed) {
			t.Fatalf("%s: err = %v; want ErrKeyDestroyed", step, err)
		}
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opens("in service")
	must(p.Client().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}))
	destroyed("disabled")
	must(p.Client().EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}))
	opens("enabled again")
	must(p.Client().ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)}))
	destroyed("pending deletion")
	must(p.Client().CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(key)}))
	must(p.Client().EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}))
	opens("deletion cancelled")
}

// What KMS cannot answer for now (a tenant whose key is not provisioned, a
// key it does not know) is transient: never taken for corruption or an
// erasure.
func TestMissingKeysAreTransient(t *testing.T) {
	t.Parallel()
	p, newTenant := perTenant(t)
	ctx := testkit.Context(t)
	dek, _ := phi.NewDataKey()
	unprovisioned := chartstream.NewTenantID()
	if _, err := p.WrapKey(ctx, unprovisioned, dek); err == nil || errors.Is(err, phi.ErrKeyDestroyed) || errors.Is(err, phi.ErrDecrypt) {
		t.Errorf("wrap for a tenant without a key: err = %v; want a transient error", err)
	}
	tenant, key := newTenant(t)
	wrapped, err := p.WrapKey(ctx, tenant, dek)
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes naming a key KMS does not have.
	unknown := strings.Replace(string(wrapped), key, "00000000-0000-4000-8000-000000000000", 1)
	if unknown == string(wrapped) {
		t.Fatal("the wrapped key does not name its KMS key")
	}
	if _, err := p.UnwrapKey(ctx, tenant, []byte(unknown)); err == nil || errors.Is(err, phi.ErrKeyDestroyed) || errors.Is(err, phi.ErrDecrypt) {
		t.Errorf("unwrap naming an unknown key: err = %v; want a transient error", err)
	}
}

func TestConfigRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]awskms.Config{
		"no key":              {},
		"both":                {KeyID: "k", KeyAliasTemplate: "alias/x-{tenant}"},
		"template not alias":  {KeyAliasTemplate: "x-{tenant}"},
		"template, no tenant": {KeyAliasTemplate: "alias/x"},
		"negative timeout":    {KeyID: "k", Timeout: -1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
