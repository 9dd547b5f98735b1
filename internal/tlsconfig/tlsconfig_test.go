package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// mustDev creates a development CA and server certificate in a temporary
// directory.
func mustDev(t *testing.T) DevFiles {
	t.Helper()
	files, _, err := EnsureDev(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// serve accepts TLS connections with cfg on loopback and completes their
// handshakes until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// handshake dials addr with client and returns the server's leaf.
func handshake(addr string, client *tls.Config) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, client)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestEnsureDevCreatesOnceAndCertifiesLoopback(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	files, wrote, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{files.CACert, files.CAKey, files.Cert, files.Key}; !slices.Equal(wrote, want) {
		t.Fatalf("wrote %v, want %v", wrote, want)
	}
	for _, f := range []string{files.CAKey, files.Key} {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, info.Mode().Perm(), err)
		}
	}
	pool, err := CAPool(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := readCert(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range DevHosts {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.org"}); err == nil {
		t.Error("server certificate also valid for example.org")
	}

	caBefore, _ := os.ReadFile(files.CACert)
	if _, wrote, err := EnsureDev(dir); err != nil || len(wrote) != 0 {
		t.Fatalf("second run wrote %v (%v), want nothing", wrote, err)
	}
	// A lost server certificate is issued again by the same CA.
	if err := os.Remove(files.Cert); err != nil {
		t.Fatal(err)
	}
	if _, wrote, err := EnsureDev(dir); err != nil || !slices.Equal(wrote, []string{files.Cert, files.Key}) {
		t.Fatalf("after removing the certificate wrote %v (%v), want it and its key", wrote, err)
	}
	if caAfter, _ := os.ReadFile(files.CACert); string(caAfter) != string(caBefore) {
		t.Fatal("the CA was replaced")
	}
}

// The API refuses TLS 1.0 and 1.1 and TLS 1.2 without an AEAD suite, and
// serves TLS 1.2 and 1.3.
func TestServerRefusesOldVersionsAndWeakSuites(t *testing.T) {
	t.Parallel()
	files := mustDev(t)
	cfg, err := Server(files.Cert, files.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The AEAD-only suites alone would refuse TLS 1.0 and 1.1 (they have
	// none); the version floor says so explicitly.
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion %#x, want TLS 1.2 or later", cfg.MinVersion)
	}
	addr := serve(t, cfg)
	roots, err := CAPool(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	client := func(minV, maxV uint16, suites ...uint16) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: minV, MaxVersion: maxV, CipherSuites: suites}
	}
	for name, c := range map[string]*tls.Config{
		"TLS 1.0":          client(tls.VersionTLS10, tls.VersionTLS10),
		"TLS 1.1":          client(tls.VersionTLS10, tls.VersionTLS11),
		"TLS 1.2 with CBC": client(tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA),
	} {
		if _, err := handshake(addr, c); err == nil {
			t.Errorf("%s: handshake succeeded, want a refusal", name)
		}
	}
	for name, c := range map[string]*tls.Config{
		"TLS 1.2": client(tls.VersionTLS12, tls.VersionTLS12),
		"TLS 1.3": client(tls.VersionTLS13, tls.VersionTLS13),
	} {
		if _, err := handshake(addr, c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := handshake(addr, &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Error("a client that does not trust the dev CA completed the handshake")
	}
}

// A renewed certificate is served from the next handshake on, without a
// restart; a pair that does not load leaves the previous one in service.
func TestServerReloadsAChangedCertificate(t *testing.T) {
	t.Parallel()
	files := mustDev(t)
	r := &reloader{certFile: files.Cert, keyFile: files.Key} // every 0: look on each handshake
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, &tls.Config{MinVersion: MinVersion, GetCertificate: r.certificate})
	roots, _ := CAPool(files.CACert)
	client := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: MinVersion}
	first, err := handshake(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(files.Cert); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureDev(filepath.Dir(files.Cert)); err != nil {
		t.Fatal(err)
	}
	second, err := handshake(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the renewed certificate is not served")
	}
	if err := os.WriteFile(files.Cert, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := handshake(addr, client)
	if err != nil {
		t.Fatalf("a broken certificate file took the server down: %v", err)
	}
	if third.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatal("a certificate that does not load replaced the served one")
	}
}

func TestServerFailsAtStartWithoutAPair(t *testing.T) {
	t.Parallel()
	files := mustDev(t)
	if _, err := Server(files.Cert, filepath.Join(t.TempDir(), "missing.key"), nil); err == nil {
		t.Error("a missing key: no error")
	}
	if _, err := Server(files.Cert, files.CAKey, nil); err == nil {
		t.Error("a key that is not the certificate's: no error")
	}
	if err := CheckPair("TLS", files.Cert, ""); err == nil {
		t.Error("CheckPair accepted a certificate without a key")
	}
	if err := CheckPair("TLS", "", files.Key); err == nil {
		t.Error("CheckPair accepted a key without a certificate")
	}
	if err := CheckPair("TLS", "", ""); err != nil {
		t.Errorf("CheckPair refused no TLS at all: %v", err)
	}
}
