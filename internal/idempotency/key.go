package idempotency

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/chartstream/chartstream"
)

// MaxKeyLength is the longest Idempotency-Key value accepted.
const MaxKeyLength = 255

// Key names one idempotent request: the client's Idempotency-Key header
// value, scoped to the caller's tenant and subject so that two users (or two
// hospitals) choosing the same value never see each other's responses.
type Key struct {
	// Tenant is the caller's tenant. Required.
	Tenant chartstream.TenantID
	// Subject is the authenticated caller (Principal.Subject). Required.
	Subject string
	// Value is the Idempotency-Key header value, 1 to 255 visible ASCII
	// characters.
	Value string
}

// Validate returns an EINVALID error when Value is not 1 to 255 visible
// ASCII characters (0x21 to 0x7E). A zero Tenant or an empty Subject is a
// wiring bug, not a client mistake, and yields a plain error (a 500).
func (k Key) Validate() error {
	if k.Tenant.IsZero() {
		return errors.New("idempotency: key has no tenant")
	}
	if k.Subject == "" {
		return errors.New("idempotency: key has no subject")
	}
	if !visibleASCII(k.Value) {
		return chartstream.Invalid(chartstream.FieldError{
			Field:  "Idempotency-Key",
			Reason: "must be 1 to 255 visible ASCII characters",
		})
	}
	return nil
}

func visibleASCII(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// redisKey hashes the subject and value so that no raw user input reaches
// Redis key space (where it would show in KEYS, MONITOR and slow logs) and
// keys have a bounded length.
func (k Key) redisKey(prefix string) string {
	return prefix + k.Tenant.String() + ":" + hash([]byte(k.Subject)) + ":" + hash([]byte(k.Value))
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
