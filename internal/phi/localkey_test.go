package phi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
)

// The event store depends on KeyProvider; the dev provider must satisfy it.
var _ KeyProvider = (*LocalKeyProvider)(nil)

// MustLocalKeyProvider creates a fresh key file in a temporary directory and
// opens it.
func MustLocalKeyProvider(tb testing.TB) *LocalKeyProvider {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "master.key")
	if _, err := CreateLocalKeyFile(path); err != nil {
		tb.Fatal(err)
	}
	p, err := OpenLocalKeyFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func writeKeyFile(t *testing.T, contents string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(contents), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

// Beyond the contract (contract_test.go): a key wrapped under one master
// key does not open under another, every byte of it is authenticated, and an unopened provider refuses to
// derive keys from an empty secret.
func TestLocalKeyProviderIsBoundToItsMasterKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := MustLocalKeyProvider(t)
	tenant := chartstream.NewTenantID()
	wrapped, err := p.WrapKey(ctx, tenant, mustDataKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MustLocalKeyProvider(t).UnwrapKey(ctx, tenant, wrapped); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other master key: err = %v; want ErrDecrypt", err)
	}
	for i := range wrapped {
		tampered := bytes.Clone(wrapped)
		tampered[i] ^= 1
		if _, err := p.UnwrapKey(ctx, tenant, tampered); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d flipped: err = %v; want ErrDecrypt", i, err)
		}
	}
	var unopened LocalKeyProvider
	if _, err := unopened.WrapKey(ctx, tenant, mustDataKey(t)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("zero LocalKeyProvider: err = %v; want ErrInvalidKey", err)
	}
}

// TestKEKDerivationIsStable unwraps a key wrapped by an earlier build (and
// checked independently with Python's cryptography package against the
// documented HKDF info, AAD and layout). If it fails, the derivation or the
// format changed and every stored DEK would become unreadable.
func TestKEKDerivationIsStable(t *testing.T) {
	t.Parallel()
	path := writeKeyFile(t, strings.Repeat("00112233445566778899aabbccddeeff", 2)+"\n", 0o600)
	p, err := OpenLocalKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := chartstream.ParseTenantID("6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b")
	if err != nil {
		t.Fatal(err)
	}
	wrapped, _ := hex.DecodeString(goldenWrapped)
	dek, err := p.UnwrapKey(context.Background(), tenant, wrapped)
	if err != nil {
		t.Fatalf("golden wrapped key no longer unwraps: %v", err)
	}
	if want := strings.Repeat("42", KeySize); hex.EncodeToString(dek) != want {
		t.Fatalf("golden key unwrapped to the wrong value")
	}
}

const goldenWrapped = "017c6bfb23e0396c885420464bbbb26c5b46215cc6593b5c8a73bf15d6d9786b1b6e5b0748213ea2a661ac0b21ee236bda2e15ddd01a1853e5d5131de8"

func TestOpenLocalKeyFileEncodings(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0x5a}, KeySize)
	for name, contents := range map[string]string{
		"hex":                hex.EncodeToString(key),
		"upper hex":          strings.ToUpper(hex.EncodeToString(key)),
		"base64":             base64.StdEncoding.EncodeToString(key),
		"unpadded base64":    base64.RawStdEncoding.EncodeToString(key),
		"hex and whitespace": "\n  " + hex.EncodeToString(key) + "\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := OpenLocalKeyFile(writeKeyFile(t, contents, 0o600))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.master, key) {
				t.Fatal("decoded master key differs")
			}
		})
	}
}

func TestOpenLocalKeyFileRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		contents string
		mode     os.FileMode
	}{
		{"empty", "", 0o600},
		{"16-byte hex key", strings.Repeat("ab", 16), 0o600},
		{"33-byte hex key", strings.Repeat("ab", 33), 0o600},
		{"24-byte base64 key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 24)), 0o600},
		{"not an encoding", strings.Repeat("zq", 32), 0o600},
		{"raw binary", string(bytes.Repeat([]byte{0xab}, KeySize)), 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := OpenLocalKeyFile(writeKeyFile(t, tt.contents, tt.mode))
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v; want ErrInvalidKey", err)
			}
			for _, secret := range []string{"abab", "zq", "q6ur"} { // hex, the text, base64 of 0xab
				if strings.Contains(strings.ToLower(err.Error()), secret) {
					t.Fatalf("error shows key material: %v", err)
				}
			}
		})
	}
	if _, err := OpenLocalKeyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v; want os.ErrNotExist", err)
	}
}

func TestOpenLocalKeyFileRefusesSharedFile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	key := strings.Repeat("ab", KeySize)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if _, err := OpenLocalKeyFile(writeKeyFile(t, key, mode)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v; want a refusal", mode, err)
		}
	}
	if _, err := OpenLocalKeyFile(writeKeyFile(t, key, 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestCreateLocalKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "master.key")
	created, err := CreateLocalKeyFile(path)
	if err != nil || !created {
		t.Fatalf("created = %v, err = %v; want true, nil", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %04o; want 0600", info.Mode().Perm())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// A second call must never replace the key: that would orphan all PHI.
	created, err = CreateLocalKeyFile(path)
	if err != nil || created {
		t.Fatalf("second call: created = %v, err = %v; want false, nil", created, err)
	}
	second, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("existing key file was overwritten")
	}
	if _, err := OpenLocalKeyFile(path); err != nil {
		t.Fatalf("created file does not open: %v", err)
	}

	if _, err := CreateLocalKeyFile(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Fatal("missing parent directory: no error")
	}
}

func TestLocalKeyProviderNeverPrintsKey(t *testing.T) {
	t.Parallel()
	p := MustLocalKeyProvider(t)
	assertRedacted(t, p, p.master)
	assertRedacted(t, *p, p.master)
}
