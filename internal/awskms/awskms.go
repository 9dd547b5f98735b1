// Package awskms is the phi.KeyProvider on AWS KMS (aws-sdk-go-v2): each
// tenant's data keys are wrapped by a KMS key, one for all tenants or one
// per tenant, always under the encryption context {"chartstream:tenant":
// <tenant id>}, so that a key wrapped for one tenant cannot be unwrapped
// for another, even under the same KMS key. The KMS key never leaves KMS.
package awskms

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
)

// ContextKey is the encryption context's key that names the tenant.
const ContextKey = "chartstream:tenant"

// TenantPlaceholder is replaced by the tenant id in KeyAliasTemplate.
const TenantPlaceholder = "{tenant}"

// Config configures the provider.
type Config struct {
	// KeyID is the KMS key wrapping every tenant's keys (AWS_KMS_KEY_ID):
	// a key id, key ARN, alias name (alias/...) or alias ARN. Either it or
	// KeyAliasTemplate is required.
	KeyID string
	// KeyAliasTemplate names one key per tenant by alias
	// (AWS_KMS_KEY_ALIAS_TEMPLATE), TenantPlaceholder standing for the
	// tenant id, e.g. "alias/chartstream-tenant-{tenant}": erasing a
	// tenant is then destroying its key. Each tenant's alias must exist
	// before the tenant records PHI.
	KeyAliasTemplate string
	// Region is the key's AWS region (AWS_REGION). Default the SDK's
	// (environment, shared config).
	Region string
	// Endpoint overrides the KMS endpoint (AWS_KMS_ENDPOINT): a VPC
	// endpoint, or an emulator in tests. Default the region's.
	Endpoint string
	// Timeout bounds each KMS call, retries included. Default 5s.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.KeyID == "" && c.KeyAliasTemplate == "":
		errs = append(errs, errors.New("AWS_KMS_KEY_ID or AWS_KMS_KEY_ALIAS_TEMPLATE is required for the aws-kms key provider"))
	case c.KeyID != "" && c.KeyAliasTemplate != "":
		errs = append(errs, errors.New("AWS_KMS_KEY_ID and AWS_KMS_KEY_ALIAS_TEMPLATE exclude each other: one key for all tenants, or one per tenant"))
	case c.KeyAliasTemplate != "" && (!strings.HasPrefix(c.KeyAliasTemplate, "alias/") || !strings.Contains(c.KeyAliasTemplate, TenantPlaceholder)):
		errs = append(errs, fmt.Errorf("AWS_KMS_KEY_ALIAS_TEMPLATE must start with alias/ and contain %s", TenantPlaceholder))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("the KMS timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Provider wraps and unwraps data keys with AWS KMS. It is safe for
// concurrent use.
type Provider struct {
	client *kms.Client
	cfg    Config
}

// New returns a provider using the SDK's default credential chain
// (environment, shared files, IRSA or the instance role); opts adjust the
// SDK's loading (tests pass static credentials). It makes no call to KMS.
func New(ctx context.Context, cfg Config, opts ...func(*config.LoadOptions) error) (*Provider, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("awskms: no AWS region: set AWS_REGION")
	}
	client := kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Provider{client: client, cfg: cfg}, nil
}

// Client is the KMS client (tests administer the emulator's keys with it).
func (p *Provider) Client() *kms.Client { return p.client }

// KeyFor is the KMS key (id or alias) that wraps tenant's keys.
func (p *Provider) KeyFor(tenant chartstream.TenantID) string {
	if p.cfg.KeyID != "" {
		return p.cfg.KeyID
	}
	return strings.ReplaceAll(p.cfg.KeyAliasTemplate, TenantPlaceholder, tenant.String())
}

func encryptionContext(tenant chartstream.TenantID) map[string]string {
	return map[string]string{ContextKey: tenant.String()}
}

// WrapKey encrypts dek (phi.KeySize bytes) under tenant's KMS key (KMS
// Encrypt). A dek of another length is phi.ErrInvalidKey; KMS's errors
// (throttling, a missing alias, a disabled key) are returned wrapped, as
// transient.
func (p *Provider) WrapKey(ctx context.Context, tenant chartstream.TenantID, dek []byte) ([]byte, error) {
	if len(dek) != phi.KeySize {
		return nil, fmt.Errorf("%w: data key must be %d bytes, got %d", phi.ErrInvalidKey, phi.KeySize, len(dek))
	}
	if tenant.IsZero() {
		return nil, errors.New("awskms: zero tenant id")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	out, err := p.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId: aws.String(p.KeyFor(tenant)), Plaintext: dek, EncryptionContext: encryptionContext(tenant),
	})
	if err != nil {
		return nil, fmt.Errorf("awskms: encrypt under %s: %w", p.KeyFor(tenant), err)
	}
	return encodeWrapped(aws.ToString(out.KeyId), out.CiphertextBlob)
}

// GenerateDataKey returns a fresh data key made by KMS (GenerateDataKey,
// AES-256) and the same key wrapped for tenant, as WrapKey would wrap it.
// The event store prefers it to making a key and wrapping it.
func (p *Provider) GenerateDataKey(ctx context.Context, tenant chartstream.TenantID) (dek, wrapped []byte, err error) {
	if tenant.IsZero() {
		return nil, nil, errors.New("awskms: zero tenant id")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	out, err := p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(p.KeyFor(tenant)), KeySpec: types.DataKeySpecAes256, EncryptionContext: encryptionContext(tenant),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("awskms: generate data key under %s: %w", p.KeyFor(tenant), err)
	}
	if len(out.Plaintext) != phi.KeySize {
		clear(out.Plaintext)
		return nil, nil, fmt.Errorf("%w: KMS returned a %d-byte data key", phi.ErrInvalidKey, len(out.Plaintext))
	}
	if wrapped, err = encodeWrapped(aws.ToString(out.KeyId), out.CiphertextBlob); err != nil {
		clear(out.Plaintext)
		return nil, nil, err
	}
	return out.Plaintext, wrapped, nil
}

// UnwrapKey decrypts what WrapKey or GenerateDataKey returned for tenant,
// with the KMS key that wrapped it (KMS Decrypt). Per phi.KeyProvider's
// contract: bytes that do not authenticate, or were wrapped for another
// tenant, are phi.ErrDecrypt; a KMS key that is disabled or pending
// deletion is phi.ErrKeyDestroyed (its tenant's data reads as erased until
// it is enabled again); anything else (throttling, network, permission, a
// key KMS no longer knows) is returned wrapped, as transient.
func (p *Provider) UnwrapKey(ctx context.Context, tenant chartstream.TenantID, wrapped []byte) ([]byte, error) {
	if tenant.IsZero() {
		return nil, errors.New("awskms: zero tenant id")
	}
	keyARN, blob, err := decodeWrapped(wrapped)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	out, err := p.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId: aws.String(keyARN), CiphertextBlob: blob, EncryptionContext: encryptionContext(tenant),
	})
	if err != nil {
		return nil, p.unwrapError(ctx, keyARN, err)
	}
	if len(out.Plaintext) != phi.KeySize {
		clear(out.Plaintext)
		return nil, fmt.Errorf("awskms: unwrapped %d bytes, not a data key: %w", len(out.Plaintext), phi.ErrDecrypt)
	}
	return out.Plaintext, nil
}

// unwrapError maps a Decrypt error by its type, never its text.
func (p *Provider) unwrapError(ctx context.Context, keyARN string, err error) error {
	var (
		invalid   *types.InvalidCiphertextException
		incorrect *types.IncorrectKeyException
		disabled  *types.DisabledException
		state     *types.KMSInvalidStateException
	)
	switch {
	case errors.As(err, &invalid), errors.As(err, &incorrect):
		// Tampered, truncated, wrapped for another tenant (the encryption
		// context differs) or under another key.
		return fmt.Errorf("awskms: unwrap data key: %w", phi.ErrDecrypt)
	case errors.As(err, &disabled):
		return fmt.Errorf("awskms: KMS key %s is disabled: %w", keyARN, phi.ErrKeyDestroyed)
	case errors.As(err, &state):
		// Pending deletion, or a passing state (a key being created or
		// updated, an unavailable custom key store): ask which.
		if st, ok := p.keyState(ctx, keyARN); ok && destroyedStates[st] {
			return fmt.Errorf("awskms: KMS key %s is %s: %w", keyARN, st, phi.ErrKeyDestroyed)
		}
	}
	return fmt.Errorf("awskms: decrypt with %s: %w", keyARN, err)
}

// destroyedStates are the KMS key states in which a tenant's data counts
// as erased: the key was taken out of service on purpose.
var destroyedStates = map[types.KeyState]bool{
	types.KeyStateDisabled:               true,
	types.KeyStatePendingDeletion:        true,
	types.KeyStatePendingReplicaDeletion: true,
}

func (p *Provider) keyState(ctx context.Context, keyARN string) (types.KeyState, bool) {
	out, err := p.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
	if err != nil || out.KeyMetadata == nil {
		return "", false
	}
	return out.KeyMetadata.KeyState, true
}

// wrappedVersion starts every wrapped key: version 1 is the KMS key's ARN
// (length-prefixed, so Decrypt names the exact key, even after an alias
// moved to a new key) followed by KMS's ciphertext blob.
const wrappedVersion = 1

func encodeWrapped(keyARN string, blob []byte) ([]byte, error) {
	if keyARN == "" || len(keyARN) > 0xffff || len(blob) == 0 {
		return nil, errors.New("awskms: KMS answered without a key ARN or ciphertext")
	}
	out := make([]byte, 0, 3+len(keyARN)+len(blob))
	out = append(out, wrappedVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(keyARN)))
	out = append(out, keyARN...)
	return append(out, blob...), nil
}

func decodeWrapped(wrapped []byte) (keyARN string, blob []byte, err error) {
	if len(wrapped) < 3 || wrapped[0] != wrappedVersion {
		return "", nil, fmt.Errorf("awskms: not a wrapped key of this provider: %w", phi.ErrDecrypt)
	}
	n := int(binary.BigEndian.Uint16(wrapped[1:3]))
	if len(wrapped) <= 3+n {
		return "", nil, fmt.Errorf("awskms: truncated wrapped key: %w", phi.ErrDecrypt)
	}
	return string(wrapped[3 : 3+n]), wrapped[3+n:], nil
}
