package phi

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/chartstream/chartstream"
)

// kekInfoPrefix is the HKDF info label for tenant KEKs. The version lets a
// future derivation coexist with keys wrapped under this one.
const kekInfoPrefix = "chartstream/kek/v1/"

// LocalKeyProvider is the development KeyProvider: one 32-byte master key
// read from a file, from which each tenant's KEK is derived with
// HKDF-SHA256(master, info = "chartstream/kek/v1/" + tenant id). Wrapped keys
// are Seal output under the tenant KEK with the tenant id as additional
// data. It cannot destroy a single tenant's KEK, so it never returns
// ErrKeyDestroyed. It is safe for concurrent use and never prints the key.
// The zero value refuses to wrap; use OpenLocalKeyFile.
type LocalKeyProvider struct {
	master []byte
}

// OpenLocalKeyFile reads the master key from path: 32 bytes, hex- or
// base64-encoded (standard alphabet, padded or not), surrounding whitespace
// ignored. On Unix it refuses a file readable or writable by group or others,
// as ssh does, because that key decrypts every tenant's PHI. Errors for bad
// contents match ErrInvalidKey and give lengths only, never key bytes.
func OpenLocalKeyFile(path string) (*LocalKeyProvider, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("phi: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("phi: stat key file: %w", err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("phi: key file %s has mode %04o; it must not be accessible by group or others (chmod 600)",
			path, info.Mode().Perm())
	}
	// A key file is under 100 bytes; the limit keeps a wrong path (a log,
	// a device) from being read whole.
	raw, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("phi: read key file: %w", err)
	}
	master, err := decodeMasterKey(raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("phi: key file %s: %w", path, err)
	}
	return &LocalKeyProvider{master: master}, nil
}

// decodeMasterKey accepts hex or base64. Decoder errors are dropped, not
// wrapped: encoding/hex quotes the offending character, which is key data.
func decodeMasterKey(raw []byte) ([]byte, error) {
	text := bytes.TrimSpace(raw)
	encodings := []struct {
		decodedLen func(int) int
		decode     func(dst, src []byte) (int, error)
	}{
		{hex.DecodedLen, hex.Decode},
		{base64.StdEncoding.DecodedLen, base64.StdEncoding.Decode},
		{base64.RawStdEncoding.DecodedLen, base64.RawStdEncoding.Decode},
	}
	for _, enc := range encodings {
		key := make([]byte, enc.decodedLen(len(text)))
		n, err := enc.decode(key, text)
		if err == nil && n == KeySize {
			return key[:n], nil
		}
		clear(key)
	}
	return nil, fmt.Errorf("%w: want %d bytes encoded as hex or base64 (%d or 44 characters), got %d characters",
		ErrInvalidKey, KeySize, 2*KeySize, len(text))
}

// CreateLocalKeyFile writes a fresh random master key, hex-encoded, to path
// with mode 0600 if no file exists there; an existing file is left untouched
// (overwriting it would make all stored PHI unreadable), so `make up` can call
// it every time. It reports whether it created the file. The parent directory
// must exist.
func CreateLocalKeyFile(path string) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("phi: create key file: %w", err)
	}
	master, err := NewDataKey()
	if err == nil {
		encoded := []byte(hex.EncodeToString(master) + "\n")
		clear(master)
		_, err = f.Write(encoded)
		clear(encoded)
	}
	if err == nil {
		// The key is the only copy; make sure it is on disk before
		// anything gets encrypted under it.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A partial file would later fail to open, but better none at all.
		_ = os.Remove(path)
		return false, fmt.Errorf("phi: write key file: %w", err)
	}
	return true, nil
}

// WrapKey seals dek (KeySize bytes) under tenant's KEK. It fails with
// ErrInvalidKey for a dek of another length, and for the zero tenant, which
// names no tenant.
func (p *LocalKeyProvider) WrapKey(_ context.Context, tenant chartstream.TenantID, dek []byte) ([]byte, error) {
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: data key must be %d bytes, got %d", ErrInvalidKey, KeySize, len(dek))
	}
	kek, err := p.tenantKEK(tenant)
	if err != nil {
		return nil, err
	}
	return kek.Seal(dek, tenant[:]), nil
}

// UnwrapKey opens what WrapKey produced for the same tenant. Bytes wrapped
// for another tenant, or under another master key, or modified in any way
// yield an error matching ErrDecrypt.
func (p *LocalKeyProvider) UnwrapKey(_ context.Context, tenant chartstream.TenantID, wrapped []byte) ([]byte, error) {
	kek, err := p.tenantKEK(tenant)
	if err != nil {
		return nil, err
	}
	dek, err := kek.Open(wrapped, tenant[:])
	if err != nil {
		return nil, fmt.Errorf("phi: unwrap data key: %w", err)
	}
	return dek, nil
}

// tenantKEK derives rather than stores per-tenant keys: derivation costs
// microseconds and unwrapping happens only on DEKCache misses.
func (p *LocalKeyProvider) tenantKEK(tenant chartstream.TenantID) (*Cipher, error) {
	if tenant.IsZero() {
		return nil, errors.New("phi: zero tenant id")
	}
	if len(p.master) != KeySize {
		// A zero LocalKeyProvider would otherwise derive from an empty,
		// publicly known secret.
		return nil, fmt.Errorf("%w: LocalKeyProvider not opened with OpenLocalKeyFile", ErrInvalidKey)
	}
	kek, err := hkdf.Key(sha256.New, p.master, nil, kekInfoPrefix+tenant.String(), KeySize)
	if err != nil {
		return nil, fmt.Errorf("phi: derive tenant key: %w", err)
	}
	defer clear(kek)
	return NewCipher(kek)
}

// String never shows the master key.
func (LocalKeyProvider) String() string { return "phi.LocalKeyProvider([redacted])" }

// Format makes every fmt verb print the redacted form.
func (p LocalKeyProvider) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }
