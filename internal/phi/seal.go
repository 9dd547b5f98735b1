package phi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// KeySize is the length in bytes of every key this package uses: data keys,
// tenant KEKs and the local master key (AES-256).
const KeySize = 32

// formatV1 is the first byte of every sealed value. It lets a later format
// (another AEAD, a key id prefix) coexist with ciphertext already stored,
// which can never be rewritten because event hashes cover it.
const formatV1 byte = 1

// sealOverhead is the version byte plus GCM's 12-byte nonce and 16-byte tag.
const sealOverhead = 1 + 12 + 16

// NewDataKey returns a fresh random 32-byte data key (DEK) for one data
// subject. Store it only wrapped (KeyProvider.WrapKey). The error is always
// nil since Go 1.24, where crypto/rand cannot fail; it is kept so a
// hardware-backed source could be swapped in without changing callers.
func NewDataKey() ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("phi: generate data key: %w", err)
	}
	return dek, nil
}

// EventAAD returns the additional authenticated data for the PHI of one
// event: the tenant id followed by the event id, 32 bytes. Sealing with it
// binds the ciphertext to that event, so a row copied to another event or
// tenant fails to open with ErrDecrypt. Changing this layout makes every
// stored ciphertext unreadable; add a new format version instead.
func EventAAD(tenant chartstream.TenantID, event uuid.UUID) []byte {
	aad := make([]byte, 0, 32)
	aad = append(aad, tenant[:]...)
	return append(aad, event[:]...)
}

// Cipher seals and opens values under one AES-256 key. It holds the expanded
// key, not the raw bytes, and is safe for concurrent use; build it once per
// key (DEKCache keeps them) because key expansion costs more than sealing a
// small PHI object. Only NewCipher makes a usable one.
type Cipher struct {
	aead cipher.AEAD
}

// NewCipher returns a Cipher for a 32-byte key. A key of any other length
// yields an error matching ErrInvalidKey. The Cipher does not keep key, so
// the caller may clear it afterwards.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: want %d bytes, got %d", ErrInvalidKey, KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("phi: new cipher: %w", err)
	}
	// Random 96-bit nonces are safe for up to 2^32 messages per key; a DEK
	// seals one patient's events and a KEK one tenant's DEKs, far below it.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("phi: new gcm: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, binding aad, and returns
// version byte || 12-byte random nonce || ciphertext and tag. Sealing the same
// plaintext twice gives different output.
func (c *Cipher) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1, len(plaintext)+sealOverhead)
	out[0] = formatV1
	return c.aead.Seal(out, nil, plaintext, aad)
}

// Open reverses Seal. Wrong key, wrong aad, an unknown version byte or any
// modified or truncated byte yields an error matching ErrDecrypt and no
// plaintext.
func (c *Cipher) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("%w: sealed value too short (%d bytes)", ErrDecrypt, len(sealed))
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrDecrypt, sealed[0])
	}
	plaintext, err := c.aead.Open(nil, nil, sealed[1:], aad)
	if err != nil {
		// The GCM error says nothing useful and nothing secret; the
		// sentinel is what callers branch on.
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// String never shows key material. Value receivers cover a copied Cipher.
func (Cipher) String() string { return "phi.Cipher([redacted])" }

// Format makes every fmt verb, %#v and %d included, print the redacted
// form, so no printer ever walks into the AEAD's expanded key.
func (c Cipher) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// Seal encrypts plaintext under dek (32 bytes) with aad; see Cipher.Seal
// for the format. It expands the key on every call: on hot paths keep a
// Cipher (DEKCache) instead. A dek of the wrong length yields ErrInvalidKey.
func Seal(dek, plaintext, aad []byte) ([]byte, error) {
	c, err := NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return c.Seal(plaintext, aad), nil
}

// Open decrypts what Seal produced under the same dek and aad. It returns
// ErrInvalidKey for a dek of the wrong length and ErrDecrypt for anything
// that does not authenticate.
func Open(dek, sealed, aad []byte) ([]byte, error) {
	c, err := NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return c.Open(sealed, aad)
}
