package phi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

func mustDataKey(tb testing.TB) []byte {
	tb.Helper()
	dek, err := NewDataKey()
	if err != nil {
		tb.Fatal(err)
	}
	return dek
}

func TestNewDataKey(t *testing.T) {
	t.Parallel()
	a, b := mustDataKey(t), mustDataKey(t)
	if len(a) != KeySize || len(b) != KeySize {
		t.Fatalf("key sizes %d, %d; want %d", len(a), len(b), KeySize)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two data keys are equal")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	dek := mustDataKey(t)
	aad := EventAAD(chartstream.NewTenantID(), uuid.New())
	for _, plaintext := range [][]byte{nil, {}, []byte(`{"name":"Ada"}`), bytes.Repeat([]byte("x"), 1<<16)} {
		sealed, err := Seal(dek, plaintext, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plaintext)+sealOverhead || sealed[0] != formatV1 {
			t.Fatalf("sealed len %d version %d; want len %d version %d", len(sealed), sealed[0], len(plaintext)+sealOverhead, formatV1)
		}
		got, err := Open(dek, sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip changed %d-byte plaintext", len(plaintext))
		}
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	t.Parallel()
	c, err := NewCipher(mustDataKey(t))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Seal([]byte("same"), nil), c.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("sealing twice gave identical output: nonce reused")
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	dek := mustDataKey(t)
	tenant, event := chartstream.NewTenantID(), uuid.New()
	aad := EventAAD(tenant, event)
	sealed, err := Seal(dek, []byte(`{"name":"Ada"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	with := func(i int, b byte) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= b
		return c
	}
	tests := []struct {
		name   string
		dek    []byte
		sealed []byte
		aad    []byte
	}{
		{"wrong key", mustDataKey(t), sealed, aad},
		{"other event", dek, sealed, EventAAD(tenant, uuid.New())},
		{"other tenant", dek, sealed, EventAAD(chartstream.NewTenantID(), event)},
		{"no aad", dek, sealed, nil},
		{"unknown version", dek, with(0, 0xff), aad},
		{"flipped nonce bit", dek, with(1, 1), aad},
		{"flipped ciphertext bit", dek, with(14, 0x80), aad},
		{"flipped tag bit", dek, with(len(sealed)-1, 1), aad},
		{"truncated", dek, sealed[:len(sealed)-1], aad},
		{"shorter than overhead", dek, sealed[:sealOverhead-1], aad},
		{"empty", dek, nil, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Open(tt.dek, tt.sealed, tt.aad)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v; want ErrDecrypt", err)
			}
			if got != nil {
				t.Fatal("plaintext returned with error")
			}
		})
	}
}

func TestWrongKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		key := bytes.Repeat([]byte{0xAB}, n)
		if _, err := NewCipher(key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewCipher(%d bytes) err = %v; want ErrInvalidKey", n, err)
		}
		if _, err := Seal(key, []byte("x"), nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Seal(%d-byte key) err = %v; want ErrInvalidKey", n, err)
		}
		_, err := Open(key, make([]byte, 64), nil)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Open(%d-byte key) err = %v; want ErrInvalidKey", n, err)
		}
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "abab") {
			t.Errorf("error shows key bytes: %v", err)
		}
	}
}

func TestEventAADBindsBothIDs(t *testing.T) {
	t.Parallel()
	tenant, event := chartstream.NewTenantID(), uuid.New()
	aad := EventAAD(tenant, event)
	if len(aad) != 32 || !bytes.Equal(aad[:16], tenant[:]) || !bytes.Equal(aad[16:], event[:]) {
		t.Fatalf("EventAAD = %x; want tenant || event", aad)
	}
}

// assertRedacted checks that no fmt verb nor slog handler prints secret.
func assertRedacted(t *testing.T, v any, secret []byte) {
	t.Helper()
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("k", "v", v)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("k", "v", v)
	outputs := []string{logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, v))
	}
	for _, hexed := range []string{hex.EncodeToString(secret), fmt.Sprint(secret)} {
		for _, out := range outputs {
			if strings.Contains(strings.ToLower(out), hexed) {
				t.Fatalf("key material printed: %q", out)
			}
		}
	}
}

func TestCipherNeverPrintsKey(t *testing.T) {
	t.Parallel()
	dek := mustDataKey(t)
	c, err := NewCipher(dek)
	if err != nil {
		t.Fatal(err)
	}
	assertRedacted(t, c, dek)
	assertRedacted(t, *c, dek)
	if got := fmt.Sprint(c); got != "phi.Cipher([redacted])" {
		t.Fatalf("Sprint = %q", got)
	}
}

// benchPHI is a realistic ~300-byte PHI part of a patient.registered event.
const benchPHI = (`{"given_name":"Adaline","family_name":"Okonkwo-Smithson","birth_date":"1957-03-14",` +
	`"phone":"+44 20 7946 0958","email":"adaline.okonkwo@example.org","address":{"line":["12 Harbour Row",` +
	`"Flat 3"],"city":"Portsmouth","postal_code":"PO1 3AX","country":"GB"},"notes":"prefers morning visits"}`)

func BenchmarkCipherSeal(b *testing.B) {
	c, err := NewCipher(mustDataKey(b))
	if err != nil {
		b.Fatal(err)
	}
	aad := EventAAD(chartstream.NewTenantID(), uuid.New())
	plaintext := []byte(benchPHI)
	b.SetBytes(int64(len(plaintext)))
	b.ReportAllocs()
	for b.Loop() {
		c.Seal(plaintext, aad)
	}
}

func BenchmarkCipherOpen(b *testing.B) {
	c, err := NewCipher(mustDataKey(b))
	if err != nil {
		b.Fatal(err)
	}
	aad := EventAAD(chartstream.NewTenantID(), uuid.New())
	sealed := c.Seal([]byte(benchPHI), aad)
	b.SetBytes(int64(len(benchPHI)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenWithRawKey shows what a DEKCache saves: key expansion per call.
func BenchmarkOpenWithRawKey(b *testing.B) {
	dek := mustDataKey(b)
	aad := EventAAD(chartstream.NewTenantID(), uuid.New())
	sealed, err := Seal(dek, []byte(benchPHI), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchPHI)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(dek, sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}
