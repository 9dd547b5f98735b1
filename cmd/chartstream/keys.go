package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream/internal/awskms"
	"github.com/chartstream/chartstream/internal/phi"
)

// The PHI key providers PHI_KEY_PROVIDER chooses from.
const (
	keyProviderLocal  = "local"
	keyProviderAWSKMS = "aws-kms"
)

// phiKeys chooses and configures the PHI key provider: every command that
// opens PHI (serve, work, all, verify, patient erase, projections) reads
// the same settings.
type phiKeys struct {
	// Provider is local or aws-kms (PHI_KEY_PROVIDER). Default local.
	Provider string
	// File is the local provider's master key (PHI_KEY_FILE). Required
	// with local.
	File string
	// KMS configures aws-kms: AWS_KMS_KEY_ID or
	// AWS_KMS_KEY_ALIAS_TEMPLATE (one required), AWS_REGION,
	// AWS_KMS_ENDPOINT. Credentials come from the AWS SDK's chain.
	KMS awskms.Config
}

// phiKeyFlags defines the key provider's flags.
func phiKeyFlags(fs *pflag.FlagSet, k *phiKeys) {
	stringFlag(fs, &k.Provider, "phi-key-provider", "PHI_KEY_PROVIDER", keyProviderLocal, "PHI key provider: local (a master key file) or aws-kms")
	stringFlag(fs, &k.File, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key file (local key provider)")
	stringFlag(fs, &k.KMS.KeyID, "aws-kms-key-id", "AWS_KMS_KEY_ID", "", "KMS key (id, ARN or alias) wrapping every tenant's keys (aws-kms)")
	stringFlag(fs, &k.KMS.KeyAliasTemplate, "aws-kms-key-alias-template", "AWS_KMS_KEY_ALIAS_TEMPLATE", "",
		"one KMS key per tenant, by alias: e.g. alias/chartstream-tenant-{tenant} (aws-kms)")
	stringFlag(fs, &k.KMS.Region, "aws-region", "AWS_REGION", "", "AWS region of the KMS key (aws-kms; default the SDK's)")
	stringFlag(fs, &k.KMS.Endpoint, "aws-kms-endpoint", "AWS_KMS_ENDPOINT", "", "KMS endpoint override: a VPC endpoint or an emulator (aws-kms)")
}

// Validate reports every problem with the key settings.
func (k phiKeys) Validate() error {
	switch k.Provider {
	case keyProviderLocal, "":
		if k.File == "" {
			return errors.New("PHI_KEY_FILE is required")
		}
		return nil
	case keyProviderAWSKMS:
		return k.KMS.Validate()
	default:
		return fmt.Errorf("PHI_KEY_PROVIDER must be %s or %s", keyProviderLocal, keyProviderAWSKMS)
	}
}

// open returns the configured key provider.
func (k phiKeys) open(ctx context.Context) (phi.KeyProvider, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	if k.Provider == keyProviderAWSKMS {
		return awskms.New(ctx, k.KMS)
	}
	return phi.OpenLocalKeyFile(k.File)
}
