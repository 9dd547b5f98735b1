// Package signing holds the platform's Ed25519 keys: the relay signs every
// event message it publishes with one, and consumers verify with its public
// half, so that a message published by anyone else (whoever else can write
// to the stream's subjects) is refused. Keys are PEM files (PKCS #8 private,
// PKIX public); a key's id is a short digest of its public half, carried
// with each signature so keys can be rotated.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Signer signs with a private key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// Verifier checks signatures against a set of public keys.
type Verifier struct {
	keys map[string]ed25519.PublicKey
	// seen remembers what verified lately, for consumers that verify the
	// same message again.
	seen *seen
}

// KeyID is the id of a public key: the first 8 bytes of its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// ErrInvalid is a signature that is missing, malformed, by an unknown key,
// or does not match what was signed.
var ErrInvalid = errors.New("signing: invalid signature")

// Sign returns the signature of msg as "<key id>:<base64>".
func (s *Signer) Sign(msg []byte) string {
	return s.id + ":" + base64.RawStdEncoding.EncodeToString(ed25519.Sign(s.key, msg))
}

// Public returns a Verifier for this signer's own public key.
func (s *Signer) Public() *Verifier {
	pub := s.key.Public().(ed25519.PublicKey)
	return &Verifier{keys: map[string]ed25519.PublicKey{s.id: pub}, seen: newSeen()}
}

// Verify checks sig, as Sign made it, over msg: ErrInvalid if it does not
// hold.
func (v *Verifier) Verify(msg []byte, sig string) error {
	id, b64, ok := strings.Cut(sig, ":")
	if !ok {
		return ErrInvalid
	}
	pub, known := v.keys[id]
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if !known || err != nil || len(raw) != ed25519.SignatureSize {
		return ErrInvalid
	}
	if !v.seen.verify(digest(id, raw, msg), func() bool { return ed25519.Verify(pub, msg, raw) }) {
		return ErrInvalid
	}
	return nil
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// LoadSigner reads a PKCS #8 PEM private key file.
func LoadSigner(path string) (*Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM private key", filepath.Base(path))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", filepath.Base(path), err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an Ed25519 key", filepath.Base(path))
	}
	return NewSigner(ed), nil
}

// LoadVerifier reads one or more PKIX PEM public keys from each file (the
// old and the new key while rotating).
func LoadVerifier(paths ...string) (*Verifier, error) {
	v := &Verifier{keys: map[string]ed25519.PublicKey{}, seen: newSeen()}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("verification key: %w", err)
		}
		for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "PUBLIC KEY" {
				continue
			}
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("verification key %s: %w", filepath.Base(path), err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("verification key %s: not an Ed25519 key", filepath.Base(path))
			}
			v.keys[KeyID(pub)] = pub
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("verification key: no Ed25519 public key found")
	}
	return v, nil
}

// CreateKeyFiles writes a new key pair to path (private, 0600) and
// path+".pub" unless path exists already. It reports whether it created
// them.
func CreateKeyFiles(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return false, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return false, err
	}
	if err := os.WriteFile(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
