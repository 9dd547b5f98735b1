package signing

import (
	"path/filepath"
	"testing"
)

func TestSignVerifyAndRefuse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k")
	if created, err := CreateKeyFiles(path); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if created, _ := CreateKeyFiles(path); created {
		t.Fatal("CreateKeyFiles overwrote an existing key")
	}
	s, err := LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("event")
	sig := s.Sign(msg)
	if err := v.Verify(msg, sig); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := CreateKeyFiles(other); err != nil {
		t.Fatal(err)
	}
	stranger, _ := LoadSigner(other)
	for name, bad := range map[string]string{
		"other message": s.Sign([]byte("evenT")),
		"unknown key":   stranger.Sign(msg),
		"no key id":     sig[len(sig)/2:],
		"empty":         "",
		"truncated":     sig[:len(sig)-4],
	} {
		if v.Verify(msg, bad) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadSigner(path + ".pub"); err == nil {
		t.Error("a public key file loaded as a signer")
	}
}
