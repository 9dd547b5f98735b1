package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// DevKey is the development signing key: an ECDSA P-256 private key used
// with ES256. It is safe for concurrent use and never prints key material.
type DevKey struct {
	private *ecdsa.PrivateKey
	kid     string
}

// CreateDevKey writes a fresh P-256 private key (PKCS #8 PEM, mode 0600) to
// path if no file exists there; an existing file is left untouched, so it is
// safe to call on every start. The file appears atomically: a concurrent
// caller or a crash never leaves a partial key. Errors are file system errors
// or key generation failures.
func CreateDevKey(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("auth: stat dev key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("auth: generate dev key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("auth: encode dev key: %w", err)
	}
	// os.CreateTemp makes the file 0600; linking it into place fails if
	// another process won the race, and then its key stands.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devkey-*")
	if err != nil {
		return fmt.Errorf("auth: create dev key: %w", err)
	}
	defer os.Remove(tmp.Name())
	werr := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("auth: write dev key: %w", werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("auth: install dev key: %w", err)
	}
	return nil
}

// LoadDevKey reads a P-256 private key written by CreateDevKey (PKCS #8, or
// SEC 1 "EC PRIVATE KEY"). On Unix it refuses a file accessible by group or
// others, as ssh does, because the key mints tokens for any tenant. Errors
// never contain key bytes.
func LoadDevKey(path string) (*DevKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("auth: dev key file %s has mode %04o; it must not be accessible by group or others (chmod 600)",
			path, info.Mode().Perm())
	}
	raw, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read dev key: %w", err)
	}
	defer clear(raw)
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("auth: dev key file %s: no PEM block", path)
	}
	defer clear(block.Bytes)
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, perr := x509.ParsePKCS8PrivateKey(block.Bytes)
		if perr != nil {
			return nil, fmt.Errorf("auth: dev key file %s: not a PKCS #8 key", path)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth: dev key file %s: %T is not an EC key", path, k)
		}
		key = ek
	case "EC PRIVATE KEY":
		if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("auth: dev key file %s: not a SEC 1 EC key", path)
		}
	default:
		return nil, fmt.Errorf("auth: dev key file %s: unexpected PEM block %q", path, block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: dev key file %s: key must be on P-256", path)
	}
	kid, err := thumbprint(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key file %s: %w", path, err)
	}
	return &DevKey{private: key, kid: kid}, nil
}

// KeyID returns the key's "kid": its RFC 7638 JWK thumbprint, so the same
// key always has the same id and no registry of ids is needed.
func (k *DevKey) KeyID() string { return k.kid }

// Public returns the public half, which verifies the key's tokens.
func (k *DevKey) Public() *ecdsa.PublicKey { return &k.private.PublicKey }

// String identifies the key by id only; it keeps %v and %+v from printing
// the private scalar.
func (k *DevKey) String() string { return "auth.DevKey{kid: " + k.kid + ", private: [redacted]}" }

// GoString does the same for %#v.
func (k *DevKey) GoString() string { return k.String() }

// thumbprint computes the RFC 7638 thumbprint of a P-256 public key: SHA-256
// over the canonical JSON of its required members, in lexical order.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	point, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
	if err != nil || len(point) != 65 {
		return "", errors.New("cannot encode P-256 public key")
	}
	b64 := base64.RawURLEncoding.EncodeToString
	canonical := `{"crv":"P-256","kty":"EC","x":"` + b64(point[1:33]) + `","y":"` + b64(point[33:]) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:]), nil
}
